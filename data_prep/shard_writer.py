"""Writes one shard: groups of rows, as the shard format's parquet, atomically."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.common.shard_format import RAW_SHAPE, schema
from data_prep.common.storage import DatasetDir

ROWS_PER_GROUP = 128
COMPRESSION = "snappy"


@dataclass
class Rows:
    """A group of decoded rows: raw or pixel images as one (N,256,256,3) array, or JPEG bytes."""

    ids: list[str]
    labels: list[int]
    images: np.ndarray | list[bytes]
    heights: list[int] | None = None
    widths: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def to_table(rows: Rows, fmt: str) -> pa.Table:
    target = schema(fmt)
    ids = pa.array(rows.ids, pa.string())
    labels = pa.array(rows.labels, pa.int32())
    if fmt == "raw":
        images = np.ascontiguousarray(rows.images, dtype=np.uint8)
        per_image = int(np.prod(RAW_SHAPE))
        offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int32) * per_image)
        values = pa.Array.from_buffers(pa.uint8(), images.size, [None, pa.py_buffer(images)])  # no copy
        storage = pa.ListArray.from_arrays(offsets, values)
        image_col = pa.ExtensionArray.from_storage(target.field("image").type, storage)
        return pa.Table.from_arrays([ids, labels, image_col], schema=target)
    if fmt == "pixels":
        images = np.ascontiguousarray(rows.images, dtype=np.uint8)
        image_col = pa.FixedSizeBinaryArray.from_buffers(target.field("image").type, len(rows),
                                                         [None, pa.py_buffer(images)])  # no copy
        return pa.Table.from_arrays([ids, labels, image_col], schema=target)
    return pa.Table.from_arrays(
        [
            ids,
            labels,
            pa.array(rows.images, pa.binary()),
            pa.array(rows.heights, pa.int32()),
            pa.array(rows.widths, pa.int32()),
        ],
        schema=target,
    )


def write_shard(dataset: DatasetDir, name: str, fmt: str, groups: Iterable[Rows]) -> int:
    """Write row groups to ``name`` atomically; returns the number of rows written."""
    written = 0
    with dataset.atomic_writer(name) as out:
        with pq.ParquetWriter(out, schema(fmt), compression=COMPRESSION) as writer:
            for rows in groups:
                if len(rows):
                    writer.write_table(to_table(rows, fmt), row_group_size=ROWS_PER_GROUP)
                    written += len(rows)
    return written
