"""The dataset contract: per-shard records, ``manifest.json``, ``SHA256SUMS`` and verification.

Each finished shard gets a small record under ``_records/`` the moment it is renamed into
place. Records make a job resumable (a shard is skipped when its record and its bytes agree)
and let many machines write disjoint ``--shards`` slices into one directory: whichever run
finds every record present writes the manifest. The manifest carries no timestamp, so the
same command gives a byte-identical manifest and dataset checksum anywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.fs as pafs

from data_prep import __version__
from data_prep.common.errors import DataPrepError
from data_prep.common.storage import S3_HINT, DatasetDir

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
SHARD_DIR = "shards"
RECORD_DIR = "_records"
MANIFEST_VERSION = 1


def shard_name(index: int) -> str:
    return f"{SHARD_DIR}/shard-{index:06d}.parquet"


def record_name(index: int) -> str:
    return f"{RECORD_DIR}/shard-{index:06d}.json"


def canonical_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def digest_of(obj: Any) -> str:
    """sha256 of an object's canonical JSON: identifies a job spec independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass
class ShardRecord:
    """What one shard holds and how it came to be; ``job`` is the digest of the shard's spec."""

    index: int
    file: str
    job: str
    rows: int
    bytes: int
    sha256: str
    decoded_bytes: int
    seen: int
    rejected: list[dict[str, str]] = field(default_factory=list)
    converted: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, dataset: DatasetDir, index: int) -> ShardRecord | None:
        if not dataset.exists(record_name(index)):
            return None
        try:
            return cls(**json.loads(dataset.read_bytes(record_name(index))))
        except (ValueError, TypeError):
            return None  # a damaged record only means the shard is rebuilt

    def save(self, dataset: DatasetDir) -> None:
        dataset.write_bytes(record_name(self.index), canonical_json(asdict(self)))


def sums_text(shards: list[dict[str, Any]]) -> str:
    """The ``sha256sum -c`` listing of the shards, sorted by file name."""
    return "".join(f"{s['sha256']}  {s['file']}\n" for s in sorted(shards, key=lambda s: s["file"]))


def build_manifest(
    kind: str, fmt: str, params: dict[str, Any], records: list[ShardRecord]
) -> dict[str, Any]:
    shards = [{"file": r.file, "rows": r.rows, "bytes": r.bytes, "sha256": r.sha256} for r in records]
    rejected = [item for r in records for item in r.rejected]
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": "data-prep",
        "tool_version": __version__,
        "kind": kind,
        "format": fmt,
        "params": params,
        "shards": shards,
        "totals": {
            "shards": len(records),
            "images": sum(r.rows for r in records),
            "files_seen": sum(r.seen for r in records),
            "disk_bytes": sum(r.bytes for r in records),
            "decoded_bytes": sum(r.decoded_bytes for r in records),
        },
        "rejected": rejected,
        "converted": [item for r in records for item in r.converted],
        # The dataset checksum is the sha256 of the SHA256SUMS listing itself, so anyone can
        # recompute it with `sha256sum SHA256SUMS` after `sha256sum -c SHA256SUMS`.
        "dataset_sha256": hashlib.sha256(sums_text(shards).encode()).hexdigest(),
    }


def write_manifest(dataset: DatasetDir, manifest: dict[str, Any]) -> None:
    dataset.write_bytes(SUMS, sums_text(manifest["shards"]).encode())
    dataset.write_bytes(MANIFEST, canonical_json(manifest))


def load_manifest(location: str) -> tuple[DatasetDir, dict[str, Any]]:
    dataset = DatasetDir(location)
    try:
        present = dataset.exists(MANIFEST)
        raw = dataset.read_bytes(MANIFEST) if present else b""
    except OSError as exc:  # network, credentials, permissions
        hint = S3_HINT if location.startswith("s3://") else "check that it is readable"
        raise DataPrepError(f"cannot read {location}/{MANIFEST}: {exc}; {hint}") from exc
    if not present and location.startswith("s3://"):
        bucket = dataset.root.split("/")[0]
        if dataset.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise DataPrepError(f"cannot read {location}: bucket {bucket!r} does not exist (or these credentials "
                                f"cannot see it); {S3_HINT}")
    if not present:
        raise DataPrepError(
            f"{location} has no {MANIFEST}: it is not a finished data-prep dataset "
            "(run `data-prep synth` or `data-prep imagenet` to make one, or finish an "
            "interrupted one by running the same command again)"
        )
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise DataPrepError(f"{location}/{MANIFEST} is not valid JSON: {exc}") from exc
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise DataPrepError(
            f"{location}/{MANIFEST} has manifest_version {manifest.get('manifest_version')!r}; "
            f"this data-prep reads version {MANIFEST_VERSION}"
        )
    return dataset, manifest


@dataclass
class VerifyReport:
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.extra)

    def problems(self) -> list[str]:
        return (
            [f"missing: {f}" for f in self.missing]
            + [f"altered: {f}" for f in self.altered]
            + [f"extra: {f}" for f in self.extra]
        )


def verify(location: str, on_shard=None) -> VerifyReport:
    """Re-hash every shard against the manifest; also flag files the manifest does not list."""
    dataset, manifest = load_manifest(location)
    report = VerifyReport()
    listed = {s["file"]: s for s in manifest["shards"]}
    for name, entry in listed.items():
        if not dataset.exists(name):
            report.missing.append(name)
        elif dataset.size(name) != entry["bytes"] or dataset.sha256(name) != entry["sha256"]:
            report.altered.append(name)
        report.checked += 1
        if on_shard:
            on_shard(entry["rows"])
    report.extra = [f for f in dataset.list_files(SHARD_DIR) if f not in listed]
    expected_sums = sums_text(manifest["shards"]).encode()
    if not dataset.exists(SUMS):
        report.missing.append(SUMS)
    elif dataset.read_bytes(SUMS) != expected_sums:
        report.altered.append(SUMS)
    if hashlib.sha256(expected_sums).hexdigest() != manifest.get("dataset_sha256"):
        report.altered.append(f"{MANIFEST} (dataset_sha256 does not match its shard list)")
    return report
