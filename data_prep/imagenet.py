"""ILSVRC2012 as shard jobs: directory trees or the official tar archives, with labels.

Accepted layouts under SRC (see ``data-prep imagenet --help``):
- ``train/<wnid>/*.JPEG`` and/or ``val/<wnid>/*.JPEG`` (class folders), or a flat ``val/``
  with ``LOC_val_solution.csv`` or the devkit (``ILSVRC2012_validation_ground_truth.txt`` +
  ``meta.mat``, as a folder or ``ILSVRC2012_devkit_t12.tar.gz``);
- ``ILSVRC2012_img_train.tar`` (a tar of per-class tars) and/or ``ILSVRC2012_img_val.tar``.

Labels are the standard 0..999 indices: the position of the wnid in the sorted list of the
1000 leaf synsets (from ``LOC_synset_mapping.txt``, ``meta.mat`` or the train class folders).
Items are located by path or by (tar, byte offset, size), so workers read tars in parallel.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.common.errors import DataPrepError
from data_prep.common.images import RejectedImage, as_stored_jpeg, decode_rgb, resize_center_crop
from data_prep.jobs import ShardJob
from data_prep.common.manifest import ShardRecord
from data_prep.common.shard_format import DECODED_FORMATS
from data_prep.shard_writer import ROWS_PER_GROUP, Rows, write_shard
from data_prep.common.storage import DatasetDir

SPLITS = ("val", "train", "all")
TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
SOLUTION_CSV = "LOC_val_solution.csv"
SYNSET_MAPPING = "LOC_synset_mapping.txt"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_TAR = "ILSVRC2012_devkit_t12.tar.gz"
_WNID = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class Item:
    id: str  # e.g. "val/ILSVRC2012_val_00000001"; also the name reported on rejection
    label: int
    where: tuple  # ("file", relpath) or ("tar", relpath, offset, size)


# --- finding the files ------------------------------------------------------------------------

def _find(src: Path, name: str) -> Path | None:
    """``name`` directly in SRC, in val/, or anywhere one or two levels down (devkit/data)."""
    for candidate in (src / name, src / "val" / name):
        if candidate.is_file():
            return candidate
    for candidate in sorted(src.glob(f"*/{name}")) + sorted(src.glob(f"*/*/{name}")):
        return candidate
    return None


def _member_id(split: str, name: str) -> str:
    return f"{split}/{posixpath.splitext(name)[0]}"


def _scan_tree(src: Path, split: str) -> list[tuple[str, str | None, tuple]]:
    """(id, wnid or None, where) for every file under SRC/split, in sorted order."""
    root = src / split
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        if path.name == SOLUTION_CSV:
            continue
        parent = path.parent.name
        wnid = parent if _WNID.match(parent) else None
        inner = path.relative_to(root).as_posix()
        found.append((_member_id(split, inner), wnid, ("file", rel)))
    return found


def _scan_train_tar(src: Path, tar_path: Path) -> list[tuple[str, str | None, tuple]]:
    rel = tar_path.relative_to(src).as_posix()
    found = []
    with tarfile.open(tar_path, "r:") as outer:
        for member in outer:
            if not member.isfile():
                continue
            wnid = posixpath.splitext(posixpath.basename(member.name))[0]
            if not member.name.endswith(".tar") or not _WNID.match(wnid):
                found.append((_member_id("train", member.name), None, ("tar", rel, member.offset_data, member.size)))
                continue
            with tarfile.open(fileobj=outer.extractfile(member), mode="r:") as inner:
                for image in inner:
                    if image.isfile():
                        where = ("tar", rel, member.offset_data + image.offset_data, image.size)
                        found.append((_member_id("train", f"{wnid}/{image.name}"), wnid, where))
    return sorted(found)


def _scan_flat_tar(src: Path, tar_path: Path, split: str) -> list[tuple[str, str | None, tuple]]:
    rel = tar_path.relative_to(src).as_posix()
    with tarfile.open(tar_path, "r:") as archive:
        return sorted(
            (_member_id(split, m.name), None, ("tar", rel, m.offset_data, m.size))
            for m in archive
            if m.isfile()
        )


# --- labels -----------------------------------------------------------------------------------

def _devkit_files(src: Path) -> tuple[bytes, bytes] | None:
    """(ground truth text, meta.mat bytes) from a devkit folder or its tar.gz, if present."""
    truth = _find(src, GROUND_TRUTH)
    meta = _find(src, "meta.mat")
    if truth and meta:
        return truth.read_bytes(), meta.read_bytes()
    archive = _find(src, DEVKIT_TAR)
    if archive:
        with tarfile.open(archive, "r:gz") as tar:
            names = {posixpath.basename(m.name): m for m in tar if m.isfile()}
            if GROUND_TRUTH in names and "meta.mat" in names:
                return tar.extractfile(names[GROUND_TRUTH]).read(), tar.extractfile(names["meta.mat"]).read()
    return None


def _meta_mat_wnids(meta: bytes) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid for the 1000 leaf synsets (as torchvision's ImageNet reads it)."""
    from scipy.io import loadmat

    synsets = loadmat(io.BytesIO(meta), squeeze_me=True)["synsets"]
    return {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}


def _val_truth(src: Path) -> tuple[dict[str, str], list[str]]:
    """Validation image id -> wnid, and the leaf wnids the ground truth knows of."""
    solution = _find(src, SOLUTION_CSV)
    if solution:
        with solution.open(newline="") as handle:
            truth = {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(handle)}
        return truth, []
    devkit = _devkit_files(src)
    if devkit:
        truth_text, meta = devkit
        wnids = _meta_mat_wnids(meta)
        truth = {
            f"ILSVRC2012_val_{n:08d}": wnids[int(line)]
            for n, line in enumerate(truth_text.decode().split(), start=1)
        }
        return truth, sorted(wnids.values())
    return {}, []


def _class_list(src: Path, seen_wnids: set[str], devkit_wnids: list[str]) -> list[str]:
    mapping = _find(src, SYNSET_MAPPING)
    if mapping:
        return sorted(line.split()[0] for line in mapping.read_text().splitlines() if line.strip())
    if devkit_wnids:
        return devkit_wnids
    return sorted(seen_wnids)


# --- the plan ---------------------------------------------------------------------------------

@dataclass
class Plan:
    jobs: list[ShardJob]
    params: dict
    classes: int
    unlabeled: int


def plan(src_text: str, fmt: str, split: str, rows_per_shard: int) -> Plan:
    src = Path(src_text).resolve()
    if not src.is_dir():
        raise DataPrepError(f"{src_text} is not a directory; pass the folder holding train/, val/ or the ILSVRC2012 tars")
    splits = ("val", "train") if split == "all" else (split,)
    raw: list[tuple[str, str | None, tuple]] = []
    for name in splits:
        tar_path = src / (TRAIN_TAR if name == "train" else VAL_TAR)
        if (src / name).is_dir():
            raw += _scan_tree(src, name)
        elif tar_path.is_file():
            raw += _scan_train_tar(src, tar_path) if name == "train" else _scan_flat_tar(src, tar_path, name)
        else:
            raise DataPrepError(
                f"{src_text} is not an ImageNet layout for --split {split}: expected {name}/ "
                f"(class folders or flat images) or {tar_path.name} in it"
            )
    if not raw:
        raise DataPrepError(f"{src_text} holds no image files for --split {split}")

    truth, devkit_wnids = _val_truth(src) if "val" in splits else ({}, [])
    items_wnids = []
    for item_id, wnid, where in raw:
        if wnid is None and item_id.startswith("val/"):
            wnid = truth.get(posixpath.basename(item_id))
        items_wnids.append((item_id, wnid, where))
    classes = _class_list(src, {w for _, w, _ in items_wnids if w}, devkit_wnids)
    index = {wnid: i for i, wnid in enumerate(classes)}
    items = [Item(item_id, index.get(wnid, -1), where) for item_id, wnid, where in items_wnids]

    jobs = []
    for shard, start in enumerate(range(0, len(items), rows_per_shard)):
        chunk = items[start : start + rows_per_shard]
        spec = {"kind": "imagenet", "format": fmt, "items": [[i.id, i.label, list(i.where)] for i in chunk]}
        jobs.append(ShardJob(index=shard, spec=spec, rows=len(chunk), context={"src": str(src)}))
    params = {"kind": "imagenet", "format": fmt, "split": split, "rows_per_shard": rows_per_shard,
              "files": len(items), "classes": len(classes)}
    return Plan(jobs, params, len(classes), sum(1 for i in items if i.label < 0))


def source_samples(planned: Plan, count: int = 16) -> list[list]:
    """Where a few of the plan's items are, spread over it: what each node must see in SRC."""
    items = [item[2] for job in planned.jobs for item in job.spec["items"]]
    step = max(1, len(items) // count)
    return items[::step][:count] + items[-1:]


def source_problem(src: str, samples: list[list]) -> str | None:
    """On one node: does SRC hold what the plan reads (files, or tars at least as long as the
    members read from them)? None if so."""
    for where in samples:
        path = Path(src, where[1])
        try:
            size = path.stat().st_size
        except OSError:
            return f"cannot see {path}"
        if where[0] == "tar" and size < where[2] + where[3]:
            return f"{path} is shorter ({size:,} bytes) than the driver's copy"
    return None


# --- building one shard (in a worker) ---------------------------------------------------------

class _Reader:
    """Reads item bytes, keeping each tar open for the whole shard."""

    def __init__(self, src: str):
        self.src = src
        self.handles: dict[str, object] = {}

    def read(self, where: list) -> bytes:
        if where[0] == "file":
            return Path(self.src, where[1]).read_bytes()
        _, rel, offset, size = where
        handle = self.handles.get(rel) or self.handles.setdefault(rel, open(os.path.join(self.src, rel), "rb"))
        handle.seek(offset)
        return handle.read(size)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def build_shard(location: str, job: ShardJob) -> ShardRecord:
    fmt = job.spec["format"]
    rejected: list[dict[str, str]] = []
    converted: list[dict[str, str]] = []
    decoded = 0
    reader = _Reader(job.context["src"])

    def groups():
        nonlocal decoded
        items = job.spec["items"]
        for start in range(0, len(items), ROWS_PER_GROUP):
            rows = Rows(ids=[], labels=[], images=[], heights=[], widths=[])
            for item_id, label, where in items[start : start + ROWS_PER_GROUP]:
                try:
                    data = reader.read(where)
                    if fmt in DECODED_FORMATS:
                        image, changes = decode_rgb(data)
                        pixels = resize_center_crop(image)
                        rows.images.append(pixels)
                        height, width = pixels.shape[:2]
                    else:
                        stored, height, width, changes = as_stored_jpeg(data)
                        rows.images.append(stored)
                except (RejectedImage, OSError) as exc:
                    rejected.append({"file": item_id, "reason": str(exc)})
                    continue
                if changes:
                    converted.append({"file": item_id, "change": "; ".join(changes)})
                rows.ids.append(item_id)
                rows.labels.append(label)
                rows.heights.append(height)
                rows.widths.append(width)
                decoded += height * width * 3
            if fmt in DECODED_FORMATS:
                rows.images = np.stack(rows.images) if rows.images else np.zeros((0, 256, 256, 3), np.uint8)
            yield rows

    dataset = DatasetDir(location)
    try:
        written = write_shard(dataset, job.file, fmt, groups())
    finally:
        reader.close()
    record = ShardRecord(
        index=job.index, file=job.file, job=job.digest, rows=written, bytes=dataset.size(job.file),
        sha256=dataset.sha256(job.file), decoded_bytes=decoded, seen=len(job.spec["items"]),
        rejected=rejected, converted=converted,
    )
    record.save(dataset)
    return record
