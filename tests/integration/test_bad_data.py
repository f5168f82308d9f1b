"""Bad data: each kind of damage gets an error naming the shard and the fix, or, with
--skip-bad-shards, a recorded skip that the bundle accounts for. Nothing is silently dropped."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bench.config import RunConfig
from bench.errors import BenchError
from bench.results import bundle
from bench.run import runner

from helpers import synth_dataset

IMAGES = 24  # three shards of eight


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return synth_dataset(tmp_path_factory.mktemp("pristine") / "tiny", IMAGES)


@pytest.fixture
def data(pristine, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def shard(data: Path, index: int = 1) -> Path:
    return sorted(data.glob("shards/*.parquet"))[index]


def replace_shard(data: Path, index: int, table: pa.Table) -> None:
    """Another tool's shard with a manifest that agrees with it (sizes, digest, rows)."""
    path = shard(data, index)
    pq.write_table(table, path)
    manifest = json.loads((data / "manifest.json").read_text())
    entry = next(s for s in manifest["shards"] if s["file"] == f"shards/{path.name}")
    manifest["totals"]["images"] += table.num_rows - entry["rows"]
    entry.update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), rows=table.num_rows)
    (data / "manifest.json").write_text(json.dumps(manifest))


def tensor_table(rows: int, shape: tuple[int, ...], dtype: pa.DataType) -> pa.Table:
    import numpy as np
    from ray.data.extensions import ArrowTensorArray

    pixels = np.zeros((rows, *shape), dtype=dtype.to_pandas_dtype())
    return pa.table({"id": [f"x{i}" for i in range(rows)], "label": pa.array([0] * rows, pa.int32()),
                     "image": ArrowTensorArray.from_numpy(pixels)})


def run(data: Path, out: Path, **kwargs) -> Path:
    return runner.run(None, str(data), RunConfig(batch_size=8, precision="fp32"), None, out, show_progress=False,
                      telemetry_interval_s=None, **kwargs)


def damage_truncated(data: Path) -> None:
    path = shard(data)
    path.write_bytes(path.read_bytes()[:-1000])


def damage_footer(data: Path) -> None:  # same size, unreadable footer
    path = shard(data)
    raw = bytearray(path.read_bytes())
    raw[-200:-8] = bytes(192)
    path.write_bytes(bytes(raw))


def damage_schema(data: Path) -> None:
    replace_shard(data, 1, pa.table({"id": ["a"], "label": pa.array([0], pa.int32()), "pixels": [b"x"]}))


def damage_dtype(data: Path) -> None:
    replace_shard(data, 1, tensor_table(2, (256, 256, 3), pa.float32()))


def damage_shape(data: Path) -> None:
    replace_shard(data, 1, tensor_table(2, (128, 128, 3), pa.uint8()))


def damage_missing(data: Path) -> None:
    shard(data).unlink()


def damage_rows(data: Path) -> None:  # the manifest claims more rows than the file holds
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["shards"][1]["rows"] += 1
    (data / "manifest.json").write_text(json.dumps(manifest))


CASES = {
    "truncated": (damage_truncated, "bytes, the manifest says"),
    "footer": (damage_footer, "not a readable parquet file"),
    "schema": (damage_schema, "no image column(s)"),
    "dtype": (damage_dtype, "image pixels are float, not uint8"),
    "shape": (damage_shape, "images are shaped [128, 128, 3], not [256, 256, 3]"),
    "missing": (damage_missing, "missing"),
    "rows": (damage_rows, "rows, the manifest says"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_shard_stops_the_run_naming_it_and_the_fix(ray_local, data, tmp_path, case):
    damage, reason = CASES[case]
    damage(data)
    with pytest.raises(BenchError) as caught:
        run(data, tmp_path / "bundle")
    message = str(caught.value)
    assert "shards/shard-000001.parquet" in message and reason in message and "--skip-bad-shards" in message
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("case", ["truncated", "shape"])
def test_skip_bad_shards_records_the_skip_and_accounts_for_every_image(ray_local, data, tmp_path, case):
    damage, reason = CASES[case]
    damage(data)
    manifest = json.loads((data / "manifest.json").read_text())
    path = run(data, tmp_path / "bundle", skip_bad_shards=True)
    result = json.loads((path / bundle.RESULT).read_text())
    assert result["images"] == 16 and result["dataset_images"] == manifest["totals"]["images"]
    assert [s["file"] for s in result["skipped_shards"]] == ["shards/shard-000001.parquet"]
    skipped = result["skipped_shards"][0]
    assert reason in skipped["reason"] and skipped["images"] == manifest["shards"][1]["rows"]
    assert result["images"] + skipped["images"] == result["dataset_images"]
    ids = set(pq.read_table(path / bundle.PREDICTIONS, columns=["id"]).column("id").to_pylist())
    assert ids == {f"synth-{i:09d}" for i in (*range(0, 8), *range(16, 24))}
    assert bundle.verify(path).ok
    # A doctored count that no longer accounts for the dataset is caught.
    result["dataset_images"] += 1
    (path / bundle.RESULT).write_text(bundle.dumps(result))
    bundle.write_sums(path)
    assert any("do not account for the dataset" in p for p in bundle.verify(path).problems)


def test_damage_inside_a_shard_fails_loudly_or_is_named_with_verify_data(ray_local, data, tmp_path):
    path = shard(data)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 4096] = bytes(b ^ 0xFF for b in raw[middle : middle + 4096])  # same size, footer intact
    path.write_bytes(bytes(raw))
    try:  # Without --verify-data, damaged pixels may decode (snappy does not checksum): then they are
        made = run(data, tmp_path / "plain")  # predicted like any image. Either way, nothing is lost.
        assert json.loads((made / bundle.RESULT).read_text())["images"] == IMAGES
    except BenchError as exc:
        assert "data-prep verify" in str(exc) and not (tmp_path / "plain").exists()
    with pytest.raises(BenchError, match="shard-000001.parquet: sha256 differs from the manifest"):
        run(data, tmp_path / "verified", verify_data=True)
    skipped = run(data, tmp_path / "skipped", verify_data=True, skip_bad_shards=True)
    assert json.loads((skipped / bundle.RESULT).read_text())["images"] == 16


def test_an_empty_dataset_and_an_unlisted_file_are_refused(ray_local, data, tmp_path):
    (data / "shards" / "stray.parquet").write_bytes(shard(data, 0).read_bytes())
    with pytest.raises(BenchError, match="shards/stray.parquet is not in the manifest"):
        run(data, tmp_path / "a", skip_bad_shards=True)
    (data / "shards" / "stray.parquet").unlink()
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["shards"], manifest["totals"]["images"] = [], 0
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BenchError, match="holds no images"):
        run(data, tmp_path / "b")


def test_the_cli_prints_one_line_naming_the_shard(data):
    from helpers import run_cli

    damage_truncated(data)
    proc = run_cli("bench", "run", "--data", str(data), "-q", "--out", str(data.parent / "b"))
    assert proc.returncode == 2, proc.stderr
    assert "shards/shard-000001.parquet" in proc.stderr and "Traceback" not in proc.stderr


def test_a_pixels_dataset_must_hold_fixed_size_pixel_values():
    from bench.run.shardcheck import image_type_problem

    assert image_type_problem(pa.field("image", pa.binary(256 * 256 * 3)), "pixels") is None
    for wrong in (pa.binary(), pa.binary(256 * 256)):
        assert "a pixels dataset holds fixed_size_binary[196608]" in image_type_problem(pa.field("image", wrong), "pixels")
    # A pixels column in a dataset whose manifest says raw is refused too.
    assert "not Ray's tensor type" in image_type_problem(pa.field("image", pa.binary(256 * 256 * 3)), "raw")
