"""A run: a dataset, a Ray cluster (or none), a launcher that drives the pipeline's stages, the
checks on what came out, and the bundle it leaves."""
