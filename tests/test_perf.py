"""`bench perf` on tiny data: every figure it promises, each consistent with the bundles and
measurements it came from. Benchmarks stay out of assertions: no ratio is required to be big."""

from __future__ import annotations

import json
import subprocess

import pytest

from bench.results import bundle
from bench.measure import perf
from bench.measure.timing import images_per_second
from helpers import synth_dataset

IMAGES = 24


@pytest.mark.slow
def test_perf_reports_side_by_side_ratios_from_its_own_bundles(cli, tmp_path):
    data = synth_dataset(tmp_path / "tiny", IMAGES)
    out = tmp_path / "perf"
    proc = cli("bench", "perf", "--data", str(data), "--memory-scale", "2", "--min-seconds", "0.3", "--out", str(out),
               "--json", env={"BENCH_DATA_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout)  # the one JSON object, alone on stdout: progress and notices go to stderr

    for key in ("preprocess_speedup_raw", "e2e_over_ceiling", "e2e_over_seed", "micro_overhead_s", "device"):
        assert key in figures
    assert json.loads((out / perf.PERF).read_text()) == figures
    runs = {name: json.loads((out / "runs" / name / bundle.RESULT).read_text())
            for name in ("default-first", "seed", "default", "default-x2")}
    assert all(bundle.verify(out / "runs" / name).ok for name in runs)
    assert runs["seed"]["pipeline"] == "reference" and runs["default"]["pipeline"] == "fast"
    assert runs["seed"]["dataset_sha256"] == runs["default"]["dataset_sha256"] == figures["dataset_sha256"]
    assert runs["default-x2"]["images"] == 2 * IMAGES == figures["memory"]["images"][1]
    defaults = [runs[name]["throughput_img_s"] for name in ("default-first", "default")]
    assert figures["e2e"]["default_img_s_before_after_seed"] == pytest.approx(defaults)
    assert figures["e2e_over_seed"] == pytest.approx(sum(defaults) / 2 / runs["seed"]["throughput_img_s"])
    assert figures["same_predictions_default_runs"] is True  # the default pipeline reproduces itself
    assert figures["e2e_over_ceiling"] == pytest.approx(runs["default-x2"]["throughput_img_s"] / figures["model_only_img_s"])
    ceilings = figures["model_only_img_s_samples"]
    assert len(ceilings) == 1 + len(runs) and all(c > 0 for c in ceilings)  # before the runs, then after each
    assert figures["model_only_img_s"] == pytest.approx(sum(ceilings) / len(ceilings))
    small_wall = sum(runs[name]["timings"]["wall_s"] for name in ("default-first", "default")) / 2
    large_wall = runs["default-x2"]["timings"]["wall_s"]
    if large_wall > small_wall:  # tiny runs: noise may make the larger one no slower
        assert figures["streaming"]["img_s"] == pytest.approx(IMAGES / (large_wall - small_wall))
    raw = figures["preprocess"]["raw"]
    assert figures["preprocess_speedup_raw"] == pytest.approx(raw["ours_img_s"] / raw["reference_img_s"])
    assert figures["micro_overhead_s"] == pytest.approx(figures["micro"]["measured_s"] - figures["micro"]["ideal_s"])
    assert all(mb > 0 for mb in figures["memory"]["peak_worker_private_mb"])  # the sampler saw Ray's workers
    assert figures["device"].startswith("cpu")
    assert figures["default_config"]["calls_in_parallel"] == 2  # the ceiling ran as the CPU actors do
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and "runs/default/SHA256SUMS: OK" in check.stdout, check.stdout


def test_two_runs_split_into_startup_and_streaming_rate():
    # 10 s of start-up, then 50 img/s: 1,000 images take 30 s, 4,000 take 90 s
    split = perf.startup_and_rate(1000, 30.0, 4000, 90.0, ceiling_img_s=100.0)
    assert split == pytest.approx({"img_s": 50.0, "startup_s": 10.0, "over_ceiling": 0.5})


def test_no_split_when_the_larger_run_was_not_slower():
    split = perf.startup_and_rate(1000, 30.0, 4000, 29.0, ceiling_img_s=100.0)
    assert split == {"img_s": None, "startup_s": None, "over_ceiling": None}


def test_images_per_second_counts_timed_calls_only():
    calls = []
    rate = images_per_second(lambda: calls.append(1), images_per_call=10, min_seconds=0.05, min_calls=3)
    assert len(calls) >= 4  # at least one warm-up call plus three timed ones
    assert rate > 0


def test_perf_refuses_a_jpeg_dataset(ray_local, tmp_path):
    from bench.errors import BenchError

    data = synth_dataset(tmp_path / "jpeg", 4, 8, "--format", "jpeg")
    with pytest.raises(BenchError, match="holds JPEGs; bench perf needs a raw or pixels dataset"):
        perf.run(None, str(data), tmp_path / "perf", log=lambda line: None)


def test_perf_table_shows_the_figures_it_was_given(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    figures = {
        "device": "cpu: Test CPU (2 cores)", "images": 1024,
        "preprocess": {fmt: {"reference_img_s": 1000.0, "ours_img_s": 40000.0, "speedup": 40.0} for fmt in ("raw", "jpeg")},
        "e2e": {"seed_img_s": 6.0, "default_img_s": 30.0, "default_large_img_s": 45.0, "large_images": 16384},
        "e2e_over_seed": 5.0, "model_only_img_s": 50.0, "model_only_img_s_samples": [40.0, 50.0, 60.0],
        "e2e_over_ceiling": 0.9, "e2e_over_ceiling_small": 0.6,
        "streaming": {"img_s": 47.0, "startup_s": 11.3, "over_ceiling": 0.94},
        "micro": {"ideal_s": 2.0, "measured_s": 2.4}, "micro_overhead_s": 0.4,
        "memory": {"images": [1024, 16384], "peak_worker_private_mb": [1400.0, 1500.0], "growth": 1.07},
        "precision_cost": None,
    }
    monkeypatch.setattr(perf, "run", lambda *args, **kwargs: figures)
    shown = CliRunner().invoke(app, ["perf", "--out", str(tmp_path / "perf")], terminal_width=200, env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:5]]
            for line in shown.output.splitlines() if line.count("│") >= 5}
    assert rows["end to end img/s (seed vs default, run before and after it)"] == ["6.0", "30.0", "5.00x"]
    assert rows["model-only ceiling vs end to end (16,384 images)"] == ["50.0", "45.0", "0.90x"]
    assert rows["model-only ceiling img/s (min vs max of 3, one per run)"] == ["40.0", "60.0", "1.50x"]
    assert rows["ceiling vs streaming rate (after 11.3 s start-up)"] == ["50.0", "47.0", "0.94x"]
    assert rows["peak worker MB (1,024 vs 16,384 images)"] == ["1,400", "1,500", "1.07x"]
