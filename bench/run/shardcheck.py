"""Before a run: is every shard the manifest lists there, whole, and of the shape the pipeline
reads? Cheap by default (sizes and parquet footers); ``full`` also re-hashes every shard
against the manifest (what `data-prep verify` does), which catches damage inside a file.

A bad shard stops the run with an error naming it and the fix; with ``skip_bad`` it is left out
and recorded, so the bundle accounts for every image of the dataset: predicted or skipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import BenchError
from data_prep.common.manifest import SHARD_DIR
from data_prep.common.shard_format import COLUMNS, PIXEL_BYTES, RAW_SHAPE
from data_prep.common.storage import DatasetDir


RAY_TENSOR_TYPES = ("ray.data.arrow_tensor", "ray.data.arrow_tensor_v2")  # V2: large_list storage


@dataclass(frozen=True)
class BadShard:
    file: str
    images: int  # what the manifest says it holds: all of them are unaccounted for if skipped
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_type_problem(field: pa.Field, fmt: str) -> str | None:
    """Why the ``image`` column cannot be what a ``fmt`` dataset holds, or None."""
    kind = field.type
    if fmt == "jpeg":
        return None if pa.types.is_binary(kind) else f"image column is {kind}, a JPEG dataset holds binary"
    if fmt == "pixels":
        wanted = pa.binary(PIXEL_BYTES)
        return None if kind == wanted else f"image column is {kind}, a pixels dataset holds {wanted}"
    name, shape = None, None
    if isinstance(kind, pa.ExtensionType):
        name, shape, kind = kind.extension_name, json.loads(kind.__arrow_ext_serialize__()), kind.storage_type
    elif field.metadata and b"ARROW:extension:name" in field.metadata:
        name = field.metadata[b"ARROW:extension:name"].decode()
        shape = json.loads(field.metadata.get(b"ARROW:extension:metadata", b"null"))
    if name not in RAY_TENSOR_TYPES or not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return f"image column is {field.type}, not Ray's tensor type (ray.data.arrow_tensor)"
    if kind.value_type != pa.uint8():
        return f"image pixels are {kind.value_type}, not uint8"
    if list(shape or []) != list(RAW_SHAPE):
        return f"images are shaped {shape}, not {list(RAW_SHAPE)}"
    return None


def check_shard(directory: DatasetDir, shard: dict[str, Any], fmt: str, full: bool) -> str | None:
    """The first thing wrong with one shard, or None."""
    name = shard["file"]
    if not directory.exists(name):
        return "missing"
    size = directory.size(name)
    if size != shard["bytes"]:
        return f"{size:,} bytes, the manifest says {shard['bytes']:,} (truncated or replaced)"
    try:
        metadata = pq.read_metadata(directory.path(name), filesystem=directory.fs)
        schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        return f"not a readable parquet file ({exc})"
    missing = set(COLUMNS) - set(schema.names)
    if missing:
        return f"no {', '.join(sorted(missing))} column(s); it has {', '.join(schema.names)}"
    problem = image_type_problem(schema.field("image"), fmt)
    if problem:
        return problem
    if metadata.num_rows != shard["rows"]:
        return f"{metadata.num_rows:,} rows, the manifest says {shard['rows']:,}"
    if full and directory.sha256(name) != shard["sha256"]:
        return "sha256 differs from the manifest (damaged inside the file)"
    return None


def check(uri: str, manifest: dict[str, Any], full: bool = False, skip_bad: bool = False) -> list[BadShard]:
    """Bad shards (to skip, when ``skip_bad``); raises BenchError naming the first one otherwise.
    A parquet file in shards/ that the manifest does not list is an error either way: it is
    not part of the dataset, and the run reads only the manifest's files."""
    directory = DatasetDir(uri)
    shards = manifest.get("shards") or []
    if not shards or not manifest.get("totals", {}).get("images"):
        raise BenchError(f"{uri} holds no images (its manifest lists {len(shards)} shards); rebuild it with data-prep")
    listed = {s["file"] for s in shards}
    unlisted = [f for f in directory.list_files(SHARD_DIR, ".parquet") if f not in listed]
    if unlisted:
        raise BenchError(f"{uri}/{unlisted[0]} is not in the manifest ({len(unlisted)} such file(s)): the files and "
                         f"the manifest disagree; move it away, or rebuild the dataset with data-prep")
    bad = [BadShard(s["file"], s["rows"], reason) for s in shards
           if (reason := check_shard(directory, s, manifest["format"], full))]
    if bad and not skip_bad:
        first = bad[0]
        raise BenchError(f"{uri}/{first.file}: {first.reason} ({len(bad)} bad shard(s) of {len(manifest['shards'])}); "
                         f"rebuild the dataset with the data-prep command that made it (it redoes only bad shards), "
                         f"or pass --skip-bad-shards to run without them and record the skip")
    if len(bad) == len(manifest["shards"]):
        raise BenchError(f"{uri}: every shard is bad ({bad[0].file}: {bad[0].reason}); nothing to run")
    return bad


def node_problem(uri: str, sizes: dict[str, int]) -> str | None:
    """On one node of a cluster: can it read the shards there, with the manifest's ``sizes``?
    One listing of the shard directory, and one shard's parquet footer opened. None if so."""
    import pyarrow.fs as pafs

    from bench.results.secrets import scrub_uri

    try:
        directory = DatasetDir(uri)
        found = {info.base_name: info.size for info in directory.fs.get_file_info(
            pafs.FileSelector(directory.path(SHARD_DIR), allow_not_found=True)) if info.type == pafs.FileType.File}
    except (OSError, pa.ArrowException) as exc:
        return f"cannot list {scrub_uri(uri)}/{SHARD_DIR} ({str(exc).splitlines()[0]})"
    absent = [name for name in sizes if name.rpartition("/")[2] not in found]
    if absent:
        return f"sees {len(sizes) - len(absent)} of {len(sizes)} shards under {scrub_uri(uri)} (not {absent[0]})"
    wrong = [name for name, size in sizes.items() if found[name.rpartition("/")[2]] != size]
    if wrong:
        return f"{scrub_uri(uri)}/{wrong[0]} has {found[wrong[0].rpartition('/')[2]]:,} bytes there, the manifest says {sizes[wrong[0]]:,}"
    first = next(iter(sizes))
    try:
        pq.read_metadata(directory.path(first), filesystem=directory.fs)
    except (OSError, pa.ArrowException) as exc:
        return f"cannot read {scrub_uri(uri)}/{first} ({str(exc).splitlines()[0]})"
    return None
