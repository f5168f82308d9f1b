"""Measurements: cases declared as data, run side by side by one harness, reported as ratios."""
