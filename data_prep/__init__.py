"""data_prep: turn ImageNet or a deterministic synthetic stand-in into checksummed parquet shards."""

__version__ = "0.1.0"
