"""Find the dataset a run reads: a named synthetic size (made once, cached) or a given path/URI.

This is the only place ``bench`` touches ``data_prep``, and only through its dataset contract
(manifest, verification, synthetic generation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep import synth
from data_prep.manifest import load_manifest
from data_prep.sizes import SIZES, images_for
from data_prep.storage import DatasetDir


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", Path.home() / ".cache" / "raybench" / "data"))


@dataclass(frozen=True)
class Dataset:
    uri: str
    manifest: dict[str, Any]
    size: str | None  # the named size, when there is one

    @property
    def images(self) -> int:
        return self.manifest["totals"]["images"]

    @property
    def sha256(self) -> str:
        return self.manifest["dataset_sha256"]


def check_shards_present(dataset: DatasetDir, manifest: dict[str, Any]) -> None:
    """Cheap check before a run: every shard exists with its recorded size (`data-prep verify`
    re-hashes; a run only needs to know that nothing is missing or truncated)."""
    from data_prep.errors import DataPrepError

    for shard in manifest["shards"]:
        if not dataset.exists(shard["file"]) or dataset.size(shard["file"]) != shard["bytes"]:
            raise DataPrepError(
                f"{dataset.location}/{shard['file']} is missing or has the wrong size; run "
                f"`data-prep verify {dataset.location}` and rebuild the dataset with the command that made it"
            )


def synthetic(images: int, show_progress: bool = True) -> Dataset:
    """A cached synthetic dataset of exactly ``images`` images (the named sizes' generator)."""
    location = str(cache_root() / f"synth-n{images}-raw")
    if not DatasetDir(location).exists("manifest.json"):
        synth.generate(location, images, workers=os.cpu_count() or 1, show_progress=show_progress)
    directory, manifest = load_manifest(location)
    check_shards_present(directory, manifest)
    return Dataset(location, manifest, None)


def resolve(size: str | None, data: str | None, workers: int | None = None, show_progress: bool = True) -> Dataset:
    if data:
        directory, manifest = load_manifest(data)
        check_shards_present(directory, manifest)
        return Dataset(data, manifest, manifest["params"].get("size"))
    size = size or "mini"
    images = images_for(size)
    location = str(cache_root() / f"synth-{size}-raw")
    directory = DatasetDir(location)
    if not directory.exists("manifest.json"):
        # Exactly what `data-prep synth SIZE` makes, so the cache and a hand-made set agree.
        synth.generate(location, images, size=size, workers=workers or os.cpu_count() or 1,
                       show_progress=show_progress)
    directory, manifest = load_manifest(location)
    check_shards_present(directory, manifest)
    return Dataset(location, manifest, size)


__all__ = ["Dataset", "SIZES", "cache_root", "resolve"]
