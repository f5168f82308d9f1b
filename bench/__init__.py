"""bench: the Ray Data batch-inference benchmark, its telemetry and its result bundles."""

__version__ = "0.1.0"
