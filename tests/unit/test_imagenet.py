"""data-prep imagenet on a small messy fake ILSVRC2012, as a tree and as the official tars."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps
from torchvision.transforms import CenterCrop, Compose, Resize

import fake_imagenet as fake
from data_prep.cli import app
from data_prep.common.shard_format import image_array_to_numpy


def prepare(runner, src: Path, out: Path, *args: str) -> dict:
    result = runner.invoke(app, ["imagenet", str(src), "--out", str(out), "-q", "--workers", "1", *args])
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


def rows_by_id(out: Path, manifest: dict) -> dict[str, dict]:
    table = pa.concat_tables([pq.read_table(out / s["file"]) for s in manifest["shards"]])
    columns = {name: table.column(name).to_pylist() for name in table.column_names if name != "image"}
    decoded = manifest["format"] in ("raw", "pixels")
    images = image_array_to_numpy(table.column("image")) if decoded else table.column("image").to_pylist()
    return {
        row_id: {**{k: v[i] for k, v in columns.items()}, "image": images[i]}
        for i, row_id in enumerate(columns["id"])
    }


def reference_pixels(data: bytes) -> np.ndarray:
    """Independent reference: torchvision's own Resize(256) + CenterCrop(256) on the PIL image."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return np.asarray(Compose([Resize(256), CenterCrop(256)])(image))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return fake.make_tree(tmp_path_factory.mktemp("imagenet-tree"))


def test_counts_add_up_and_bad_files_are_named(runner, tree, tmp_path):
    m = prepare(runner, tree, tmp_path / "out", "--split", "all", "--rows-per-shard", "4")
    seen = len(fake.train_files()) + len(fake.val_files())
    assert m["totals"]["files_seen"] == seen
    assert m["totals"]["images"] + len(m["rejected"]) == seen
    assert {r["file"] for r in m["rejected"]} == fake.CORRUPT
    assert all(r["reason"] for r in m["rejected"])
    converted = {c["file"]: c["change"] for c in m["converted"]}
    assert "CMYK" in converted["train/n01440764/n01440764_3"]
    assert "PNG" in converted["train/n01443537/n01443537_4"]
    assert "EXIF orientation 6" in converted["train/n01443537/n01443537_5"]
    assert sum(s["rows"] for s in m["shards"]) == m["totals"]["images"]


@pytest.mark.parametrize("fmt", ["raw", "pixels"])
def test_pixels_and_labels_match_an_independent_reference(runner, tree, tmp_path, fmt):
    out = tmp_path / "out"
    m = prepare(runner, tree, out, "--split", "all", "--format", fmt)
    assert m["format"] == fmt
    rows = rows_by_id(out, m)
    sources = {**fake.train_files(), **fake.val_files()}
    for rel, data in sources.items():
        row_id = rel.rsplit(".", 1)[0]
        if row_id in fake.CORRUPT:
            assert row_id not in rows
            continue
        row = rows[row_id]
        assert np.array_equal(row["image"], reference_pixels(data)), row_id
        wnid = rel.split("/")[1] if rel.startswith("train/") else fake.VAL_TRUTH[int(row_id[-8:])]
        assert row["label"] == fake.WNIDS.index(wnid), row_id


def test_jpeg_format_keeps_plain_jpegs_byte_for_byte(runner, tree, tmp_path):
    out = tmp_path / "out"
    m = prepare(runner, tree, out, "--split", "train", "--format", "jpeg")
    rows = rows_by_id(out, m)
    converted = {c["file"] for c in m["converted"]}
    for rel, data in fake.train_files().items():
        row_id = rel.rsplit(".", 1)[0]
        if row_id in fake.CORRUPT:
            continue
        stored = rows[row_id]["image"]
        if row_id in converted:
            image = Image.open(io.BytesIO(stored))
            assert image.format == "JPEG" and image.mode == "RGB"
        else:
            assert stored == data, row_id
        decoded = Image.open(io.BytesIO(stored))
        assert (rows[row_id]["width"], rows[row_id]["height"]) == decoded.size


def test_official_tars_give_the_same_dataset_as_the_tree(runner, tree, tmp_path):
    # The tar fixture labels val through the devkit (meta.mat + ground truth), whose class ids are
    # deliberately not in sorted-wnid order; the tree uses LOC_val_solution.csv.
    tars = fake.make_tars(tmp_path / "tars")
    (tars / "LOC_synset_mapping.txt").write_text(fake.synset_mapping())
    from_tree = prepare(runner, tree, tmp_path / "a", "--split", "all")
    from_tars = prepare(runner, tars, tmp_path / "b", "--split", "all")
    assert from_tars["dataset_sha256"] == from_tree["dataset_sha256"]
    assert from_tars["rejected"] == from_tree["rejected"]


def test_devkit_labels_without_a_mapping_file(runner, tmp_path):
    tars = fake.make_tars(tmp_path / "tars")
    m = prepare(runner, tars, tmp_path / "out", "--split", "val")
    rows = rows_by_id(tmp_path / "out", m)
    for n, wnid in fake.VAL_TRUTH.items():
        row_id = f"val/ILSVRC2012_val_{n:08d}"
        if row_id not in fake.CORRUPT:
            assert rows[row_id]["label"] == fake.WNIDS.index(wnid)


def test_val_without_ground_truth_gets_unknown_labels(runner, tmp_path):
    src = fake.make_tree(tmp_path / "src", with_csv=False)
    result = runner.invoke(app, ["imagenet", str(src), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "no ground truth" in result.output
    m = json.loads((tmp_path / "out/manifest.json").read_text())
    assert set(rows_by_id(tmp_path / "out", m)[r]["label"] for r in rows_by_id(tmp_path / "out", m)) == {-1}


def test_rerun_skips_complete_shards(runner, tree, tmp_path):
    prepare(runner, tree, tmp_path / "out", "--split", "all", "--rows-per-shard", "5")
    again = runner.invoke(app, ["imagenet", str(tree), "--out", str(tmp_path / "out"), "--split", "all",
                                "--rows-per-shard", "5", "--workers", "1"])
    assert again.exit_code == 0
    assert "built 0 shard(s), kept 3 already complete" in again.output


def test_a_folder_that_is_not_imagenet_is_a_clear_error(cli, tmp_path):
    (tmp_path / "photos").mkdir()
    proc = cli("data-prep", "imagenet", str(tmp_path / "photos"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "is not an ImageNet layout" in proc.stderr and "Traceback" not in proc.stderr
