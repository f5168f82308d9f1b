"""data-prep synth: determinism, manifest and checksums, slices, resume, Ray compatibility."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_prep import jobs, synth
from data_prep.cli import app
from data_prep.common.shard_format import (
    image_array_to_numpy,
    pixels_to_numpy,
    read_rows,
)
from data_prep.shard_writer import ROWS_PER_GROUP
from PIL import Image
from typer.testing import CliRunner


def make(runner, out: Path, *args: str) -> dict:
    result = runner.invoke(app, ["synth", "--out", str(out), "-q", *args])
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


def test_image_is_deterministic_and_structured():
    a, b = synth.synth_image(7, 3), synth.synth_image(7, 3)
    assert a.dtype == np.uint8 and a.shape == (256, 256, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, synth.synth_image(7, 4))
    assert not np.array_equal(a, synth.synth_image(8, 3))
    # Not noise: neighbouring pixels are strongly correlated, unlike uniform random data.
    flat = a.astype(np.float64).mean(axis=2)
    assert np.corrcoef(flat[:, :-1].ravel(), flat[:, 1:].ravel())[0, 1] > 0.5
    # Realistic JPEG size for a 256x256 crop: far from both flat colour and pure noise.
    size = len(_jpeg(a))
    assert 8_000 < size < 60_000


def _jpeg(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_pixels_do_not_depend_on_the_platform():
    # Integer-only generation: this digest must be the same on every machine. If it changes,
    # every published dataset checksum changes with it.
    digest = hashlib.sha256(synth.synth_image(0, 0).tobytes()).hexdigest()
    assert digest == "1a9c862463c76af830c6ddfbca984785ee97b9b5c2474eaebafbcbb51a577597"


def test_manifest_checksums_match_sha256sum(runner, tmp_path):
    out = tmp_path / "d"
    m = make(runner, out, "--images", "250", "--rows-per-shard", "100", "--workers", "1")
    assert m["totals"]["images"] == 250 and m["totals"]["shards"] == 3
    assert [s["rows"] for s in m["shards"]] == [100, 100, 50]
    assert m["totals"]["decoded_bytes"] == 250 * 256 * 256 * 3
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 3
    listing = subprocess.run(["sha256sum", "SHA256SUMS"], cwd=out, capture_output=True, text=True).stdout
    assert listing.split()[0] == m["dataset_sha256"]
    for shard in m["shards"]:
        assert (out / shard["file"]).stat().st_size == shard["bytes"]


def test_same_command_gives_identical_bytes_whatever_the_parallelism(runner, tmp_path):
    a = make(runner, tmp_path / "a", "--images", "150", "--rows-per-shard", "50", "--workers", "1")
    b = make(runner, tmp_path / "b", "--images", "150", "--rows-per-shard", "50", "--workers", "2")
    assert a == b
    assert (tmp_path / "a/manifest.json").read_bytes() == (tmp_path / "b/manifest.json").read_bytes()
    for shard in a["shards"]:
        assert (tmp_path / "a" / shard["file"]).read_bytes() == (tmp_path / "b" / shard["file"]).read_bytes()


def test_rows_match_the_generator_when_read_back_with_plain_pyarrow(runner, tmp_path):
    m = make(runner, tmp_path / "d", "--images", "20", "--rows-per-shard", "10", "--seed", "5")
    table = pq.read_table(tmp_path / "d" / m["shards"][1]["file"])
    images = image_array_to_numpy(table.column("image"))
    assert table.column("id").to_pylist() == [synth.image_id(i) for i in range(10, 20)]
    assert table.column("label").to_pylist() == [-1] * 10
    for offset, image in enumerate(images):
        assert np.array_equal(image, synth.synth_image(5, 10 + offset))


@pytest.fixture(scope="module")
def shard_of_260(tmp_path_factory) -> Path:
    """One shard whose row groups hold 128, 128 and 4 rows."""
    out = tmp_path_factory.mktemp("rows") / "d"
    m = make(CliRunner(), out, "--images", "260", "--rows-per-shard", "260", "--seed", "5")
    assert ROWS_PER_GROUP == 128 and pq.ParquetFile(out / m["shards"][0]["file"]).num_row_groups == 3
    return out / m["shards"][0]["file"]


@pytest.mark.parametrize("rows", [slice(0, 64), slice(-64, None), slice(120, 140), slice(250, 400), slice(5, 5)],
                         ids=["first", "last", "across-groups", "past-the-end", "empty"])
def test_read_rows_gives_exactly_the_rows_asked_for(shard_of_260, rows):
    batch = read_rows(shard_of_260, rows)
    indices = list(range(260))[rows]
    assert batch["id"].tolist() == [synth.image_id(i) for i in indices]
    assert batch["image"].shape == (len(indices), 256, 256, 3)
    for image, index in zip(batch["image"], indices):
        assert np.array_equal(image, synth.synth_image(5, index))


def test_jpeg_format_stores_decodable_jpegs_with_sizes(runner, tmp_path):
    m = make(runner, tmp_path / "j", "--images", "12", "--format", "jpeg", "--rows-per-shard", "5")
    assert m["format"] == "jpeg" and m["totals"]["images"] == 12
    table = pq.read_table(tmp_path / "j" / m["shards"][0]["file"])
    assert table.schema.field("image").type == "binary"
    for i, (data, h, w) in enumerate(zip(*(table.column(c).to_pylist() for c in ("image", "height", "width")))):
        decoded = np.asarray(Image.open(io.BytesIO(data)))
        assert decoded.shape == (h, w, 3) == (256, 256, 3)
        # Lossy, but close to the raw pixels.
        assert np.abs(decoded.astype(int) - synth.synth_image(0, i)).mean() < 8
    # JPEG is several times smaller on disk than raw.
    assert m["totals"]["disk_bytes"] / 12 < 256 * 256 * 3 / 4


def test_pixels_format_stores_each_images_raw_bytes_as_one_value(runner, tmp_path):
    m = make(runner, tmp_path / "p", "--images", "12", "--format", "pixels", "--rows-per-shard", "5", "--seed", "3")
    assert m["format"] == "pixels" and m["totals"]["images"] == 12
    table = pq.read_table(tmp_path / "p" / m["shards"][1]["file"])
    assert table.schema.field("image").type == pa.binary(256 * 256 * 3)
    # The bytes are the generator's pixels, row-major HWC, checked with plain pyarrow and numpy.
    for offset, value in enumerate(table.column("image").to_pylist()):
        assert value == synth.synth_image(3, 5 + offset).tobytes()
    # Our readers give the very array a raw dataset gives.
    raw = make(runner, tmp_path / "r", "--images", "12", "--rows-per-shard", "5", "--seed", "3")
    for ours, theirs in zip(m["shards"], raw["shards"]):
        pixels, reference = (read_rows(tmp_path / d / s["file"], slice(0, None)) for d, s in (("p", ours), ("r", theirs)))
        assert np.array_equal(pixels["image"], reference["image"]) and pixels["id"].tolist() == reference["id"].tolist()


def test_pixels_to_numpy_takes_rays_bytes_and_refuses_wrong_sizes():
    images = np.stack([synth.synth_image(0, i) for i in range(3)])
    as_ray_gives_them = np.array([image.tobytes() for image in images], dtype=object)
    assert np.array_equal(pixels_to_numpy(as_ray_gives_them), images)
    assert np.array_equal(pixels_to_numpy(as_ray_gives_them.astype(f"S{256 * 256 * 3}")), images)
    short = as_ray_gives_them.copy()
    short[1] = short[1][:-1]
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        pixels_to_numpy(short)


def test_slices_written_separately_complete_the_same_dataset(runner, tmp_path):
    whole = make(runner, tmp_path / "whole", "--images", "90", "--rows-per-shard", "30")
    sliced = tmp_path / "sliced"
    first = runner.invoke(app, ["synth", "--out", str(sliced), "-q", "--images", "90", "--rows-per-shard", "30", "--shards", "1:3"])
    assert first.exit_code == 0, first.output
    assert not (sliced / "manifest.json").exists()  # shard 0 is still missing
    assert "this slice is done" in first.output
    second = make(runner, sliced, "--images", "90", "--rows-per-shard", "30", "--shards", "0:1")
    assert second == whole


def test_rerun_resumes_rebuilding_only_damaged_or_missing_shards(runner, tmp_path):
    out = tmp_path / "d"
    m = make(runner, out, "--images", "60", "--rows-per-shard", "20")
    (out / m["shards"][0]["file"]).unlink()
    with open(out / m["shards"][1]["file"], "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    (out / "shards" / "shard-000002.parquet.abcd1234.tmp").write_bytes(b"half a shard")
    result = runner.invoke(app, ["synth", "--out", str(out), "--images", "60", "--rows-per-shard", "20"])
    assert result.exit_code == 0, result.output
    assert "built 2 shard(s), kept 1 already complete" in result.output
    assert not list(out.glob("shards/*.tmp"))
    assert json.loads((out / "manifest.json").read_text()) == m


def test_a_directory_holding_another_dataset_is_refused(cli, tmp_path):
    out = tmp_path / "d"
    cli("data-prep", "synth", "--out", str(out), "--images", "10", "-q", check=True)
    proc = cli("data-prep", "synth", "--out", str(out), "--images", "11", "-q")
    assert proc.returncode == 2
    assert "already holds a different dataset" in proc.stderr


def test_plan_covers_every_image_once():
    planned = synth.plan(2_345, 0, "raw", 1000)
    assert [j.rows for j in planned] == [1000, 1000, 345]
    assert planned[2].spec["start"] == 2000 and planned[2].spec["stop"] == 2345
    assert len({j.digest for j in planned}) == 3


@pytest.mark.parametrize("text, expected", [(None, range(0, 10)), ("2:5", range(2, 5)), (":3", range(0, 3)), ("7:", range(7, 10))])
def test_parse_slice(text, expected):
    assert jobs.parse_slice(text, 10) == expected


@pytest.mark.parametrize("text", ["5", "3:2", "0:11", "a:b"])
def test_parse_slice_rejects_nonsense(text):
    with pytest.raises(Exception, match="--shards"):
        jobs.parse_slice(text, 10)


def test_the_ray_free_tensor_type_writes_the_same_bytes_as_rays(tmp_path):
    # The one-process launcher writes raw shards where Ray is not installed; they must be the very
    # files Ray's type makes.
    from data_prep import shard_writer
    from data_prep.common import shard_format
    from data_prep.common.storage import DatasetDir

    rows = shard_writer.Rows(ids=["a", "b"], labels=[1, 2],
                             images=np.stack([synth.synth_image(0, 0), synth.synth_image(0, 1)]))
    digests = []
    for name, tensor_type in (("ray", shard_format.tensor_type),
                              ("standin", lambda: shard_format._RayTensorStandIn(shard_format.RAW_SHAPE))):
        original = shard_format.tensor_type
        shard_format.tensor_type = tensor_type
        try:
            shard_writer.write_shard(DatasetDir(str(tmp_path)), f"{name}.parquet", "raw", [rows])
        finally:
            shard_format.tensor_type = original
        digests.append(hashlib.sha256((tmp_path / f"{name}.parquet").read_bytes()).hexdigest())
    assert type(shard_format.tensor_type()).__name__ == "ArrowTensorType"
    assert digests[0] == digests[1]
