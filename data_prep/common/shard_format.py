"""The shard format, data_prep's contract with its readers: the parquet schema of a shard and
how its columns are read back as the pipeline's arrays.

Raw shards match the reference benchmark's data: column ``image`` holds 256x256x3 uint8
arrays as Ray's tensor extension type (``ray.data.arrow_tensor``), so ``ray.data.read_parquet``
yields ``(N, 256, 256, 3)`` uint8 batches. Without Ray, pyarrow still reads the column as its
storage type (a list of uint8), which ``image_array_to_numpy`` reshapes.

Pixel shards hold the same 256x256x3 uint8 pixels, one fixed-size binary value per image: a
list<uint8> column is decoded value by value, a fixed-size binary one is copied (ten times less
CPU per image: docs/performance.md). Ray reads it as an object array of bytes, which
``pixels_to_numpy`` turns into the same array.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RAW_SHAPE = (256, 256, 3)
PIXEL_BYTES = int(np.prod(RAW_SHAPE))
FORMATS = ("raw", "pixels", "jpeg")
DECODED_FORMATS = ("raw", "pixels")  # hold decoded 256x256x3 pixels, not JPEG bytes
COLUMNS = ["id", "label", "image"]  # what every reader of a shard selects, in this order


class _RayTensorStandIn(pa.ExtensionType):
    """Ray's fixed-shape tensor type as it is written to parquet (name, shape metadata, list
    storage), for writing raw shards where Ray is not installed; the tests check that it writes
    byte-identical files to Ray's own type."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        super().__init__(pa.list_(pa.uint8()), "ray.data.arrow_tensor")

    def __arrow_ext_serialize__(self) -> bytes:
        return json.dumps(list(self.shape)).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls(tuple(json.loads(serialized)))


def tensor_type() -> pa.DataType:
    """Ray's tensor type when Ray is installed (so Ray reads the shards as tensors), else a
    byte-identical stand-in. Imported here: reading shards never needs Ray."""
    try:
        from ray.data.extensions import ArrowTensorType
    except ImportError:
        return _RayTensorStandIn(RAW_SHAPE)
    return ArrowTensorType(RAW_SHAPE, pa.uint8())


def schema(fmt: str) -> pa.Schema:
    if fmt == "raw":
        return pa.schema([("id", pa.string()), ("label", pa.int32()), ("image", tensor_type())])
    if fmt == "pixels":
        return pa.schema([("id", pa.string()), ("label", pa.int32()), ("image", pa.binary(PIXEL_BYTES))])
    return pa.schema(
        [
            ("id", pa.string()),
            ("label", pa.int32()),
            ("image", pa.binary()),
            ("height", pa.int32()),
            ("width", pa.int32()),
        ]
    )


def image_array_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,256,256,3) uint8 from a raw or pixel ``image`` column (raw with or without Ray's type
    registered)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_binary(column.type):
        return pixels_to_numpy(column)
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.reshape((len(column), *RAW_SHAPE))


def pixels_to_numpy(images: pa.FixedSizeBinaryArray | np.ndarray) -> np.ndarray:
    """(N,256,256,3) uint8 from a pixel shard's ``image`` column: a pyarrow array (a view of
    its buffer, read-only) or the object array of bytes that Ray's numpy batches hold (a copy)."""
    if isinstance(images, pa.Array):
        if images.null_count or images.type.byte_width != PIXEL_BYTES:
            raise ValueError(f"pixel images must be {PIXEL_BYTES:,} bytes each, not null; got {images.type}")
        data = np.frombuffer(images.buffers()[1], np.uint8, len(images) * PIXEL_BYTES, images.offset * PIXEL_BYTES)
        return data.reshape((len(images), *RAW_SHAPE))
    if images.dtype.kind == "S" and images.dtype.itemsize == PIXEL_BYTES:
        return np.ascontiguousarray(images).view(np.uint8).reshape((len(images), *RAW_SHAPE))
    wrong = [i for i, image in enumerate(images) if not isinstance(image, bytes) or len(image) != PIXEL_BYTES]
    if wrong:
        raise ValueError(f"pixel images must be {PIXEL_BYTES:,} bytes each; rows {wrong[:5]} are not")
    return np.frombuffer(b"".join(images), np.uint8).reshape((len(images), *RAW_SHAPE))


def table_to_batch(table: pa.Table) -> dict[str, np.ndarray]:
    """A shard's rows as the pipeline's stages take them (what Ray Data's numpy batches hold):
    ids, labels, and (N,256,256,3) uint8 pixels for raw and pixel shards or JPEG bytes for jpeg
    ones."""
    images = table.column("image")
    return {"id": table.column("id").to_numpy(zero_copy_only=False), "label": table.column("label").to_numpy(),
            "image": images.to_numpy(zero_copy_only=False) if pa.types.is_binary(images.type)
            else image_array_to_numpy(images)}


def read_rows(path, rows: slice, filesystem=None) -> dict[str, np.ndarray]:
    """Rows ``rows`` of one shard (a slice; negative bounds count from the end) as a batch,
    decoding only the row groups that hold them."""
    with pq.ParquetFile(path, filesystem=filesystem) as shard:
        start, stop, _ = rows.indices(shard.metadata.num_rows)
        groups, first_row, offset = [], 0, 0
        for index in range(shard.num_row_groups):
            group_rows = shard.metadata.row_group(index).num_rows
            if first_row < stop and first_row + group_rows > start:
                if not groups:
                    offset = start - first_row  # the first wanted row's place in the first group read
                groups.append(index)
            first_row += group_rows
        table = shard.read_row_groups(groups, columns=COLUMNS)
    return table_to_batch(table.slice(offset, max(0, stop - start)))
