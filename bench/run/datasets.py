"""Find the dataset a run reads: a named synthetic size (made once, cached) or a given path/URI.

This is the only place ``bench`` touches ``data_prep``, and only through its dataset contract
(manifest, verification, synthetic generation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.run import shardcheck
from bench.run.shardcheck import BadShard
from data_prep import synth
from data_prep.common.cores import usable_cores
from data_prep.common.manifest import load_manifest
from data_prep.common.sizes import SIZES, images_for
from data_prep.common.storage import DatasetDir


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", Path.home() / ".cache" / "raybench" / "data"))


@dataclass(frozen=True)
class Dataset:
    uri: str
    manifest: dict[str, Any]
    size: str | None  # the named size, when there is one
    bad: list[BadShard] = field(default_factory=list)  # left out of the run (--skip-bad-shards)

    @property
    def images(self) -> int:
        """Images the run will read: the manifest's, less those of skipped shards."""
        return self.manifest["totals"]["images"] - sum(b.images for b in self.bad)

    @cached_property
    def directory(self) -> DatasetDir:
        return DatasetDir(self.uri)  # once: an s3:// one may resolve the bucket's region over the network

    @property
    def shard_files(self) -> list[str]:
        """The shards to read, as paths on ``filesystem`` (never a directory listing)."""
        skipped = {b.file for b in self.bad}
        return [self.directory.path(s["file"]) for s in self.manifest["shards"] if s["file"] not in skipped]

    @property
    def filesystem(self):
        return self.directory.fs

    @property
    def sha256(self) -> str:
        return self.manifest["dataset_sha256"]


def synthetic(images: int, fmt: str = "raw", show_progress: bool = True) -> Dataset:
    """A cached synthetic dataset of exactly ``images`` images in format ``fmt`` (the named
    sizes' generator)."""
    location = str(cache_root() / f"synth-n{images}-{fmt}")
    if not DatasetDir(location).exists("manifest.json"):
        synth.generate(location, images, fmt=fmt, workers=usable_cores(), show_progress=show_progress)
    _, manifest = load_manifest(location)
    return Dataset(location, manifest, None, shardcheck.check(location, manifest))


def cluster_data_needed(size: str) -> str:
    """Why a named size is not made on the driver's disk on a multi-node cluster, and the
    commands that make it where every node reads it."""
    return (f"{size} on a cluster of several nodes needs data that every node can read, and this machine's cache "
            f"({cache_root()}) is only this node's. Make it on the cluster, then run on it:\n"
            f"  data-prep synth {size} --out s3://BUCKET/synth-{size} --address auto\n"
            f"  bench run --data s3://BUCKET/synth-{size} --address auto\n"
            f"(or a directory every node mounts at the same path, in place of s3://BUCKET)")


def resolve(size: str | None, data: str | None, workers: int | None = None, show_progress: bool = True,
            verify_data: bool = False, skip_bad: bool = False) -> Dataset:
    """The dataset, checked by bench.run.shardcheck (``verify_data``: re-hash every shard)."""
    if data:
        _, manifest = load_manifest(data)
        return Dataset(data, manifest, manifest["params"].get("size"),
                       shardcheck.check(data, manifest, verify_data, skip_bad))
    size = size or "mini"
    images = images_for(size)
    location = str(cache_root() / f"synth-{size}-raw")
    directory = DatasetDir(location)
    if not directory.exists("manifest.json"):
        # Exactly what `data-prep synth SIZE` makes, so the cache and a hand-made set agree.
        synth.generate(location, images, size=size, workers=workers or usable_cores(),
                       show_progress=show_progress)
    _, manifest = load_manifest(location)
    return Dataset(location, manifest, size, shardcheck.check(location, manifest, verify_data, skip_bad))


__all__ = ["Dataset", "SIZES", "cache_root", "resolve"]
