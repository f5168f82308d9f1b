"""Deterministic procedural images: gradients, shapes and texture, not pure noise.

Only integer arithmetic is used (no sin/cos/float rounding), so the same seed gives the same
pixels on every CPU and numpy build; each image depends only on (seed, index), so any slice of
shards can be generated anywhere and still match the full set.
"""

from __future__ import annotations

import numpy as np

SIDE = 256
_Y, _X = np.mgrid[0:SIDE, 0:SIDE].astype(np.int32)


def image_id(index: int) -> str:
    """Stable id of the synthetic image number ``index``."""
    return f"synth-{index:09d}"


def synth_image(seed: int, index: int) -> np.ndarray:
    """Return image ``index`` of the set generated from ``seed`` as (256, 256, 3) uint8."""
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    base = rng.integers(0, 256, size=3, dtype=np.int32)
    slope = rng.integers(-160, 161, size=(2, 3), dtype=np.int32)
    img = (base[:, None, None] * 256 + slope[0][:, None, None] * _X + slope[1][:, None, None] * _Y) >> 8
    img = np.ascontiguousarray(np.clip(img, 0, 255).transpose(1, 2, 0))

    for _ in range(int(rng.integers(3, 9))):
        _draw_shape(rng, img)

    # Coarse texture (8x8 blocks) plus fine grain: photographs have both, and it gives JPEG
    # sizes in the range of real 256x256 crops instead of the tiny files flat colours give.
    coarse = rng.integers(-20, 21, size=(SIDE // 8, SIDE // 8, 3), dtype=np.int32)
    img += np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    img += rng.integers(-6, 7, size=(SIDE, SIDE, 3), dtype=np.int32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_shape(rng: np.random.Generator, img: np.ndarray) -> None:
    """Paint one random rectangle, ellipse or stripe band onto ``img`` (int32, HWC) in place.

    Only the shape's bounding box is touched, which keeps generation cheap.
    """
    kind = int(rng.integers(0, 3))
    colour = rng.integers(0, 256, size=3, dtype=np.int32)
    cy, cx = (int(v) for v in rng.integers(0, SIDE, size=2))
    ry, rx = (int(v) for v in rng.integers(12, SIDE // 2, size=2))
    box = (slice(max(cy - ry, 0), cy + ry + 1), slice(max(cx - rx, 0), cx + rx + 1))
    if kind == 0:
        img[box] = colour
        return
    ys, xs = _Y[box], _X[box]
    if kind == 1:
        # Integer ellipse test: (dy/ry)^2 + (dx/rx)^2 <= 1, scaled by (rx*ry)^2.
        mask = ((ys - cy) * rx) ** 2 + ((xs - cx) * ry) ** 2 <= (rx * ry) ** 2
    else:
        period = int(rng.integers(6, 40))
        mask = ((xs + ys * int(rng.integers(-2, 3))) // period) % 2 == 0
    img[box][mask] = colour


# --- the synthetic dataset as shard jobs ------------------------------------------------------

DEFAULT_ROWS_PER_SHARD = 1000


def generate(location: str, images: int, *, size: str | None = None, seed: int = 0, fmt: str = "raw",
             rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, shards: str | None = None, workers: int = 1,
             show_progress: bool = True, address: str | None = None):
    """Build a synthetic dataset (or the shard slice ``shards``) at ``location``.

    The one place that turns a request into dataset parameters, so `data-prep synth` and
    bench's cache of named sizes make the same directory; with ``address``, the shards are made
    on that Ray cluster's nodes. Returns (outcome, images in the slice).
    """
    from data_prep import jobs

    params = {"kind": "synth", "size": size, "images": images, "seed": seed, "format": fmt,
              "rows_per_shard": rows_per_shard}
    planned = plan(images, seed, fmt, rows_per_shard)
    selected = jobs.parse_slice(shards, len(planned))
    outcome = jobs.run(location, "synth", fmt, params, planned, selected, build_shard, workers, show_progress,
                       address=address)
    return outcome, sum(planned[i].rows for i in selected)

def plan(images: int, seed: int, fmt: str, rows_per_shard: int):
    """One job per shard of ``rows_per_shard`` consecutive images."""
    from data_prep.jobs import ShardJob

    return [
        ShardJob(
            index=i,
            spec={"kind": "synth", "format": fmt, "seed": seed, "start": start,
                  "stop": min(start + rows_per_shard, images)},
            rows=min(start + rows_per_shard, images) - start,
        )
        for i, start in enumerate(range(0, images, rows_per_shard))
    ]


def _row_groups(spec: dict):
    from data_prep.common.images import encode_jpeg
    from data_prep.common.shard_format import DECODED_FORMATS
    from data_prep.shard_writer import ROWS_PER_GROUP, Rows

    for start in range(spec["start"], spec["stop"], ROWS_PER_GROUP):
        indices = range(start, min(start + ROWS_PER_GROUP, spec["stop"]))
        pixels = [synth_image(spec["seed"], i) for i in indices]
        rows = Rows(ids=[image_id(i) for i in indices], labels=[-1] * len(indices), images=[])
        if spec["format"] in DECODED_FORMATS:
            rows.images = np.stack(pixels)
        else:
            rows.images = [encode_jpeg(p) for p in pixels]
            rows.heights = rows.widths = [SIDE] * len(indices)
        yield rows


def build_shard(location: str, job):
    """Generate, write and record one synthetic shard (runs in a worker process)."""
    from data_prep.common.manifest import ShardRecord
    from data_prep.shard_writer import write_shard
    from data_prep.common.storage import DatasetDir

    dataset = DatasetDir(location)
    rows = write_shard(dataset, job.file, job.spec["format"], _row_groups(job.spec))
    record = ShardRecord(
        index=job.index, file=job.file, job=job.digest, rows=rows, bytes=dataset.size(job.file),
        sha256=dataset.sha256(job.file), decoded_bytes=rows * SIDE * SIDE * 3, seen=rows,
    )
    record.save(dataset)
    return record
