"""bench run end to end on tiny synthetic data (CPU): exactness, reproducibility, bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bench.config import RunConfig
from bench.errors import BenchError
from bench.results import bundle, compare
from bench.results.result import REQUIRED
from bench.run import runner
from bench.telemetry import collector

from helpers import bundle_logits, plain_pytorch_logits, relative_error

IMAGES = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from helpers import run_cli

    out = tmp_path_factory.mktemp("data") / "tiny"
    run_cli("data-prep", "synth", "--images", str(IMAGES), "--rows-per-shard", "8", "--out", str(out), "-q", check=True)
    return out


@pytest.fixture(scope="module")
def bundles(ray_local, data, tmp_path_factory):
    """Our pipeline at fp32 and the seed pipeline on the same data, with logits kept; a rerun;
    our pipeline with its device defaults (bf16 where the CPU has it natively, else int8); and
    int8 on every CPU."""
    root = tmp_path_factory.mktemp("bundles")
    made = {}
    for name, pipeline, precision, batch_size in [("fast", "fast", "fp32", 8), ("seed", "seed", None, 8),
                                                   ("fast_again", "fast", "fp32", 8), ("default", "fast", None, None),
                                                   ("int8", "fast", "int8", 8)]:
        config = RunConfig(pipeline=pipeline, save_logits=True, batch_size=batch_size, precision=precision)
        made[name] = runner.run(None, str(data), config, None, root / name, show_progress=False)
    return made


@pytest.mark.parametrize("name", ["fast", "seed"])
def test_logits_match_a_plain_pytorch_loop(bundles, data, name):
    assert relative_error(bundle_logits(bundles[name]), plain_pytorch_logits(data)) < 1e-4


def test_a_pixels_dataset_gives_the_raw_datasets_logits_bit_for_bit(ray_local, bundles, tmp_path):
    from helpers import run_cli

    pixels = tmp_path / "pixels"
    run_cli("data-prep", "synth", "--images", str(IMAGES), "--rows-per-shard", "8", "--format", "pixels",
            "--out", str(pixels), "-q", check=True)
    config = RunConfig(pipeline="fast", save_logits=True, batch_size=8, precision="fp32")
    path = runner.run(None, str(pixels), config, None, tmp_path / "bundle", show_progress=False)
    assert json.loads((path / bundle.RESULT).read_text())["dataset"]["format"] == "pixels"
    ours, raw = bundle_logits(path), bundle_logits(bundles["fast"])
    assert ours.keys() == raw.keys()
    assert all(np.array_equal(ours[ident], raw[ident]) for ident in raw)



def test_jpeg_decoded_by_the_model_actors_gives_the_cpu_tasks_logits_and_records_its_cost(ray_local, tmp_path):
    # On a CPU the actors decode with libjpeg-turbo, which gives Pillow's pixels for the
    # synthetic 256x256 JPEGs: the same logits, bit for bit, and a measured cost of zero.
    from helpers import run_cli

    jpeg = tmp_path / "jpeg"
    run_cli("data-prep", "synth", "--images", str(IMAGES), "--rows-per-shard", "8", "--format", "jpeg",
            "--out", str(jpeg), "-q", check=True)
    paths = {}
    for on_device in (False, True):
        config = RunConfig(pipeline="fast", save_logits=True, batch_size=8, precision="fp32", decode_on_device=on_device)
        paths[on_device] = runner.run(None, str(jpeg), config, None, tmp_path / f"on-device-{on_device}",
                                      show_progress=False)
    assert "MapBatches(keep_encoded)->MapBatches(Predictor)" in (paths[True] / bundle.STATS).read_text()  # bytes
    assert "MapBatches(preprocess)->MapBatches(Predictor)" in (paths[False] / bundle.STATS).read_text()  # crops
    on_device, on_cpu = bundle_logits(paths[True]), bundle_logits(paths[False])
    assert len(on_device) == IMAGES and on_device.keys() == on_cpu.keys()
    assert all(np.array_equal(on_device[ident], on_cpu[ident]) for ident in on_cpu)
    result = json.loads((paths[True] / bundle.RESULT).read_text())
    assert result["config"]["decode_on_device"] is True and result["precision_cost"] is None
    cost = result["decoding_cost"]
    assert cost["against"] == "decoding on the CPU" and cost["images"] == 8  # the first shard's first 64 rows
    assert cost["top1_agreement"] == 1.0 and cost["rel_logit_error_max"] == 0.0
    assert json.loads((paths[False] / bundle.RESULT).read_text())["decoding_cost"] is None


@pytest.mark.parametrize("pipeline, error", [("fast", "needs JPEG data, and this dataset holds raw data: make a JPEG"),
                                             ("seed", "needs --pipeline fast")])
def test_decoding_on_the_device_is_refused_where_it_cannot_apply(ray_local, data, tmp_path, pipeline, error):
    with pytest.raises(BenchError, match=error):  # the reference's refusal comes as the config is made
        runner.run(None, str(data), RunConfig(pipeline=pipeline, decode_on_device=True), None, tmp_path / "bundle",
                   show_progress=False)
    assert not (tmp_path / "bundle").exists()  # refused before anything ran

# How far each reduced precision may move the logits of the seeded random ResNet-50 (relative
# L2 per image). Random weights are a hard case for int8: measured 3-6% here.
TOLERANCE = {"bf16": 0.05, "int8": 0.1}


@pytest.mark.parametrize("name", ["default", "int8"])
def test_reduced_precision_stays_close_and_its_recorded_cost_is_true(bundles, data, name):
    result = json.loads((bundles[name] / bundle.RESULT).read_text())
    assert result["config"]["precision"] != "fp32"
    reference = plain_pytorch_logits(data)
    got = bundle_logits(bundles[name])
    ids = sorted(reference)
    ref, out = np.stack([reference[k] for k in ids]), np.stack([got[k] for k in ids])
    relative = np.linalg.norm(out - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert 0 < relative.max() < TOLERANCE[result["config"]["precision"]]
    cost = result["precision_cost"]
    assert cost["precision"] == result["config"]["precision"] and cost["against"] == "fp32"
    # The recorded cost was measured on the first shard's images: recompute it independently.
    first_shard = pq.read_table(sorted(data.glob("shards/*.parquet"))[0], columns=["id"]).column("id").to_pylist()
    assert cost["images"] == len(first_shard)
    ours = relative[[ids.index(k) for k in first_shard]]
    assert cost["rel_logit_error_mean"] == pytest.approx(ours.mean(), rel=0.25)
    assert cost["rel_logit_error_max"] == pytest.approx(ours.max(), rel=0.25)


def test_int8_records_its_calibration_apart_from_the_images_its_cost_is_measured_on(bundles, data):
    from bench.stages import quantize

    int8 = json.loads((bundles["int8"] / bundle.RESULT).read_text())["int8"]
    shards = sorted(data.glob("shards/*.parquet"))
    last_shard = pq.read_table(shards[-1], columns=["id"]).column("id").to_pylist()
    first_shard = pq.read_table(shards[0], columns=["id"]).column("id").to_pylist()
    assert int8["calibration_ids"] == last_shard[-quantize.CALIBRATION_IMAGES:]
    assert not set(int8["calibration_ids"]) & set(first_shard)
    assert int8["engine"] == quantize.ENGINE and len(int8["state_sha256"]) == 64
    fp32 = json.loads((bundles["fast"] / bundle.RESULT).read_text())
    assert fp32["int8"] is None


def test_fp32_runs_record_no_precision_cost(bundles):
    assert json.loads((bundles["fast"] / bundle.RESULT).read_text())["precision_cost"] is None


def test_seed_and_default_agree_and_reruns_reproduce(bundles):
    results = {k: json.loads((v / bundle.RESULT).read_text()) for k, v in bundles.items()}
    assert compare.top1_agreement(bundles["seed"], bundles["fast"]) == 1.0
    assert results["fast"]["predictions_sha256"] == results["fast_again"]["predictions_sha256"]
    assert results["fast"]["predictions_sha256"] == results["seed"]["predictions_sha256"]
    assert results["fast"]["weights_sha256"] == results["seed"]["weights_sha256"]


def test_bundle_has_the_promised_interface(bundles, data):
    result = json.loads((bundles["fast"] / bundle.RESULT).read_text())
    manifest = json.loads((data / "manifest.json").read_text())
    for key in REQUIRED:
        assert key in result
    assert result["images"] == IMAGES
    assert result["dataset_sha256"] == manifest["dataset_sha256"]
    assert result["throughput_img_s"] == pytest.approx(IMAGES / result["timings"]["wall_s"])
    assert result["throughput_img_s_excl_metadata"] >= result["throughput_img_s"]
    assert [s["operator"] for s in result["stages"]]  # per-stage figures from Ray Data's stats
    ids = pq.read_table(bundles["fast"] / bundle.PREDICTIONS, columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == [f"synth-{i:09d}" for i in range(IMAGES)]
    env = json.loads((bundles["fast"] / bundle.ENV).read_text())
    assert env["packages"]["ray"] and env["packages"]["torch"] and env["nodes"]
    # SHA256SUMS is in `sha256sum -c` format.
    import subprocess

    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=bundles["fast"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_verify_catches_tampering(bundles, tmp_path):
    assert bundle.verify(bundles["fast"]).ok

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(bundles["fast"], target)
        return target

    changed = copy("changed")
    with open(changed / bundle.PREDICTIONS, "r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert "predictions.parquet: sha256 does not match SHA256SUMS" in bundle.verify(changed).problems

    missing = copy("missing")
    (missing / bundle.STATS).unlink()
    assert "ray_data_stats.txt: missing" in bundle.verify(missing).problems

    extra = copy("extra")
    (extra / "notes.txt").write_text("hi")
    assert "notes.txt: extra file not listed in SHA256SUMS" in bundle.verify(extra).problems

    renamed = copy("renamed")
    (renamed / bundle.STATS).rename(renamed / "stats.txt")
    problems = bundle.verify(renamed).problems
    assert "ray_data_stats.txt: missing" in problems and "stats.txt: extra file not listed in SHA256SUMS" in problems

    edited = copy("edited")  # SHA256SUMS edited by hand: its lines no longer match the files
    sums = (edited / bundle.SUMS).read_text().splitlines()
    sums = [("0" * 64 + line[64:]) if line.endswith("  result.json") else line for line in sums]
    (edited / bundle.SUMS).write_text("\n".join(sums) + "\n")
    assert "result.json: sha256 does not match SHA256SUMS" in bundle.verify(edited).problems

    # A doctored figure with SHA256SUMS regenerated to match is still caught: it no longer adds up.
    doctored = copy("doctored")
    result = json.loads((doctored / bundle.RESULT).read_text())
    result["throughput_img_s"] *= 3
    (doctored / bundle.RESULT).write_text(bundle.dumps(result))
    bundle.write_sums(doctored)
    problems = bundle.verify(doctored).problems
    assert any("throughput_img_s" in p and "is not images / timings.wall_s" in p for p in problems), problems


def test_compare_reports_differences(ray_local, bundles, data, tmp_path):
    other = runner.run(None, str(data), RunConfig(weights_seed=1, batch_size=8), None, tmp_path / "other", show_progress=False)
    report = compare.compare([bundles["fast"], bundles["seed"], other])
    rows = report["rows"]
    assert [r["same_data"] for r in rows] == [True, True, True]
    assert [r["same_weights"] for r in rows] == [True, True, False]
    assert rows[1]["top1_agreement"] == 1.0 and rows[1]["same_predictions"]
    assert rows[0]["ratio_to_first"] == 1.0
    # fast at fp32 with logits kept, against the defaults (precision resolved) with another seed
    assert rows[2]["config_differences"] == ["precision", "save_logits", "weights_seed"]
    assert [r["env_differences"] for r in rows] == [[], [], []]


def test_exactly_once_check_names_lost_and_duplicated_images(tmp_path):
    expected = pa.array(["a", "b", "c", "d"])
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "b", "x"]}), path)
    with pytest.raises(BenchError) as caught:
        runner.check_exactly_once(expected, path)
    message = str(caught.value)
    assert "2 missing (c, d)" in message and "1 duplicated (b)" in message and "1 unknown (x)" in message
    pq.write_table(pa.table({"id": ["d", "c", "b", "a"]}), path)
    runner.check_exactly_once(expected, path)  # any order is fine


def test_predictions_checksum_is_canonical(tmp_path):
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["x", "y"], "top1": [1, 2], "other": [0.1, 0.2]}), a)
    pq.write_table(pa.table({"id": ["y", "x"], "top1": [2, 1]}), b)
    pq.write_table(pa.table({"id": ["y", "x"], "top1": [2, 3]}), c)
    assert bundle.predictions_sha256(a) == bundle.predictions_sha256(b) != bundle.predictions_sha256(c)
    import hashlib

    assert bundle.predictions_sha256(a) == hashlib.sha256(b"x\t1\ny\t2\n").hexdigest()


def test_labelled_data_gives_accuracy(ray_local, tmp_path):
    from data_prep.cli import app
    from typer.testing import CliRunner

    import fake_imagenet

    src = fake_imagenet.make_tree(tmp_path / "src")
    result = CliRunner().invoke(app, ["imagenet", str(src), "--out", str(tmp_path / "data"), "--split", "all", "-q"])
    assert result.exit_code == 0, result.output
    path = runner.run(None, str(tmp_path / "data"), RunConfig(batch_size=4), None, tmp_path / "b", show_progress=False)
    result = json.loads((path / bundle.RESULT).read_text())
    table = pq.read_table(path / bundle.PREDICTIONS, columns=["label", "top1", "top5"]).to_pylist()
    assert result["accuracy"]["labelled_images"] == len(table) == 11
    assert result["accuracy"]["top1"] == pytest.approx(sum(r["top1"] == r["label"] for r in table) / 11)
    assert result["accuracy"]["top5"] == pytest.approx(sum(r["label"] in r["top5"] for r in table) / 11)


def test_a_cpu_run_records_plausible_host_and_object_store_telemetry(bundles):
    path = bundles["fast"]
    result = json.loads((path / bundle.RESULT).read_text())
    rows = pq.read_table(path / bundle.TELEMETRY).to_pylist()
    events = result["events"]
    assert events["start"] <= events["first_predictions"] <= events["end"]
    cpu = [r["value"] for r in rows if r["metric"] == "cpu_pct"]
    store = [r["value"] for r in rows if r["source"] == "object_store" and r["metric"] == "used_bytes"]
    assert cpu and all(0 <= v <= 100 for v in cpu) and max(cpu) > 0
    assert store and max(store) > 0  # the images passed through the object store
    assert all(events["start"] - 5 <= r["ts"] <= events["end"] + 5 for r in rows)
    # a CPU-only node samples at 2 Hz (GPU nodes at 10 Hz): spaced by the interval, none missed
    ticks = sorted(r["ts"] for r in rows if r["metric"] == "cpu_pct")
    assert ticks[0] <= events["start"], "the node was sampling before the timed run began"
    assert min(b - a for a, b in zip(ticks, ticks[1:])) >= 0.8 * collector.HOST_ONLY_INTERVAL_S
    assert len(cpu) >= (events["end"] - events["start"]) / collector.HOST_ONLY_INTERVAL_S - 2
    summary = result["telemetry"]
    assert len(summary["nodes"]) == 1 and summary["object_store_peak_bytes"] == max(store)
    assert summary["gpus"] == [] and summary["energy_j"] is None
    # "No GPU" and "no NVML" are told apart: NVML's own word on this node, as pynvml gives it here.
    import pynvml

    try:
        pynvml.nvmlInit()
        status = "ok"
        pynvml.nvmlShutdown()
    except pynvml.NVMLError_LibraryNotFound:
        status = "library not found"
    except pynvml.NVMLError:
        status = "error"
    assert [(n["node"], n["status"]) for n in summary["nvml"]] == [(summary["nodes"][0]["node"], status)]
    listed = (path / bundle.SUMS).read_text()
    assert "report.html" in listed and "telemetry.parquet" in listed


def read_blocks_and_tasks(path: Path) -> tuple[int, int]:
    """(tasks, blocks) of the parquet read, from the bundle's Ray Data stats."""
    import re

    stats = (path / bundle.STATS).read_text()
    found = re.search(r"ReadFiles\w*: (\d+) tasks executed, (\d+) blocks produced", stats)
    assert found, stats[:2000]
    return int(found[1]), int(found[2])


def test_the_read_block_size_cuts_reads_into_smaller_blocks_and_loses_nothing(ray_local, bundles, data, tmp_path):
    tasks, blocks = read_blocks_and_tasks(bundles["fast"])  # 8-image shards of ~1.5 MB: one block each
    assert blocks == tasks
    path = runner.run(None, str(data), RunConfig(batch_size=8, read_block_mib=1), None, tmp_path / "b",
                      show_progress=False)
    result = json.loads((path / bundle.RESULT).read_text())
    tasks, blocks = read_blocks_and_tasks(path)
    assert blocks > tasks and result["config"]["read_block_mib"] == 1
    assert result["predictions_sha256"] == json.loads((bundles["fast"] / bundle.RESULT).read_text())["predictions_sha256"]



# Ours builds the model in each actor; the reference ships the driver's, as its script did.
MODEL_PHASES = {"fast": ["process up", "stages loading", "torch imported", "constructor started", "model built",
                         "weights loaded and verified", "on the device", "first batch in", "first forward done",
                         "first batch out"],
                "seed": ["process up", "stages loading", "torch imported", "constructor started", "model received",
                         "on the device", "first batch in", "first forward done", "first batch out"]}


def test_the_bundle_holds_a_start_up_lane_per_process_marked_in_that_process(bundles):
    import os

    import ray

    for name in ("fast", "seed"):
        result = bundle.load(bundles[name])
        lanes = {lane["lane"]: lane for lane in result.startup["lanes"] if lane["lane"] == "driver"}
        actors = [lane for lane in result.startup["lanes"] if lane["lane"] == "model stage"]
        driver = lanes["driver"]
        assert driver["pid"] == os.getpid()
        in_order = [phase for phase, _ in next(lane for lane in result.startup_lanes() if lane["lane"] == "driver")["phases"]]
        assert in_order[-3:] == ["timer started", "dataset planned", "first predictions"]
        assert driver["marks"]["timer started"] == result.events["start"]
        assert driver["marks"]["first predictions"] == result.events["first_predictions"]
        assert actors, "every model actor that computed a batch hands on its lane"
        alive = {node["NodeID"] for node in ray.nodes()}
        for actor in actors:
            assert actor["pid"] != os.getpid() and actor["node"] in alive  # marked in the actor's own process
            times = [actor["marks"][phase] for phase in MODEL_PHASES[name]]
            assert times == sorted(times), dict(zip(MODEL_PHASES[name], times))
            assert set(actor["marks"]) == set(MODEL_PHASES[name])
            # The actor's first batch went out before the driver had any predictions.
            assert actor["marks"]["first batch out"] <= result.events["first_predictions"]
        # Each process that preprocessed hands on its lane too.
        preprocessing = [lane for lane in result.startup["lanes"] if lane["lane"] == "preprocessing"]
        assert preprocessing and all(
            result.events["start"] <= lane["marks"]["first block read"] <= lane["marks"]["first block preprocessed"]
            <= result.events["first_predictions"] for lane in preprocessing)
        relative = {lane["lane"]: dict(lane["phases"]) for lane in result.startup_lanes()}
        assert relative["driver"]["timer started"] == 0.0
        assert result.startup_s == pytest.approx(relative["driver"]["first predictions"])
        assert 0 < result.timings["first_predictions_images"] <= IMAGES
    # The fast pipeline warms the workers up before its timer; the reference keeps its cold start.
    fast, seed = bundle.load(bundles["fast"]), bundle.load(bundles["seed"])
    assert fast.config["warm_up"] is True and fast.startup["warmup"]["tasks"] >= 1
    assert fast.startup["warmup"]["imports"] == ["ray.data", "bench.stages.crops"]
    assert seed.config["warm_up"] is False and seed.startup["warmup"] is None
    assert "warm-up done" in fast.startup["lanes"][0]["marks"] and "warm-up done" not in seed.startup["lanes"][0]["marks"]
    assert "model in the object store" in seed.startup["lanes"][0]["marks"]
    assert "model in the object store" not in fast.startup["lanes"][0]["marks"]
    # The predictions file never holds the lanes' column.
    assert "startup" not in pq.read_schema(bundles["fast"] / bundle.PREDICTIONS).names
