"""`bench perf` for real on tiny data: the perf suite's figures, each consistent with the bundles
and measurements it came from, and a CPU dry run of the prepared GPU suite."""

from __future__ import annotations

import json
import subprocess

import pytest
from bench.measure import cases, harness
from bench.results import bundle

from helpers import synth_dataset

IMAGES = 24


def test_perf_reports_side_by_side_ratios_from_its_own_bundles(cli, tmp_path):
    data = synth_dataset(tmp_path / "tiny", IMAGES)
    out = tmp_path / "perf"
    proc = cli("bench", "perf", "--data", str(data), "--memory-scale", "2", "--min-seconds", "0.3", "--out", str(out),
               "--json", env={"BENCH_DATA_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # the one JSON object, alone on stdout: progress and notices go to stderr
    assert json.loads((out / harness.PERF).read_text()) == report
    figures = report["figures"]
    assert [c["name"] for c in report["cases"]] == [c.name for c in cases.suite("perf").cases]
    assert all(c["status"] == "ok" for c in report["cases"])
    runs = {name: json.loads((out / "runs" / name / bundle.RESULT).read_text())
            for name in ("default-first", "reference", "default", "default-large")}
    assert all(bundle.verify(out / "runs" / name).ok for name in runs)
    assert runs["reference"]["pipeline"] == "reference" and runs["default"]["pipeline"] == "fast"
    assert runs["reference"]["dataset_sha256"] == runs["default"]["dataset_sha256"] == figures["dataset_sha256"]
    assert runs["default-large"]["images"] == 2 * IMAGES == figures["memory"]["images"][1]
    defaults = [runs[name]["throughput_img_s"] for name in ("default-first", "default")]
    assert figures["e2e"]["default_img_s_before_after_reference"] == pytest.approx(defaults)
    assert figures["e2e_over_reference"] == pytest.approx(sum(defaults) / 2 / runs["reference"]["throughput_img_s"])
    assert figures["same_predictions_default_runs"] is True  # the default pipeline reproduces itself
    assert figures["e2e_over_ceiling"] == pytest.approx(runs["default-large"]["throughput_img_s"] / figures["model_only_img_s"])
    ceilings = figures["model_only_img_s_samples"]
    assert len(ceilings) == 1 + len(runs) and all(c > 0 for c in ceilings)  # before the runs, then after each
    assert figures["model_only_img_s"] == pytest.approx(sum(ceilings) / len(ceilings))
    small_wall = sum(runs[name]["timings"]["wall_s"] for name in ("default-first", "default")) / 2
    large_wall = runs["default-large"]["timings"]["wall_s"]
    if large_wall > small_wall:  # tiny runs: noise may make the larger one no slower
        assert figures["streaming"]["img_s"] == pytest.approx(IMAGES / (large_wall - small_wall))
    raw = figures["preprocess"]["raw"]
    assert figures["preprocess_speedup_raw"] == pytest.approx(raw["ours_img_s"] / raw["reference_img_s"])
    assert figures["micro_overhead_s"] == pytest.approx(figures["micro"]["measured_s"] - figures["micro"]["ideal_s"])
    assert all(mb > 0 for mb in figures["memory"]["peak_worker_private_mb"])  # the sampler saw Ray's workers
    assert report["device"].startswith("cpu")
    assert figures["default_config"]["calls_in_parallel"] == 2  # the ceiling ran as the CPU actors do
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and "runs/default/SHA256SUMS: OK" in check.stdout, check.stdout
    assert "| default-large | run | ray | fast |" in (out / harness.SUMMARY).read_text()


def test_the_gpu_suite_dry_runs_on_the_cpu_with_both_launchers_and_names_what_it_cannot_do(cli, tmp_path):
    # The prepared GPU check, on the CPU and a few dozen images: the stages in one process and
    # through Ray leave verified bundles with the same answers; what needs a GPU is recorded
    # as skipped, with the reason, not dropped.
    out = tmp_path / "gpu"
    chosen = ["ceiling", "copy", "batch-effect", "local-defaults", "ray-defaults"]
    proc = cli("bench", "perf", "--suite", "gpu", "--device", "cpu", "--images", "48", "--min-seconds", "0.2",
               "--out", str(out), *[arg for name in chosen for arg in ("--case", name)],
               env={"BENCH_DATA_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    report = harness.load_report(out)
    by_name = {c["name"]: c for c in report["cases"]}
    assert list(by_name) == chosen
    assert by_name["copy"]["status"] == "skipped" and "needs one" in by_name["copy"]["reason"]
    assert by_name["ceiling"]["img_s"] > 0 and by_name["batch-effect"]["smaller_batch"] >= 1
    local, ray = by_name["local-defaults"], by_name["ray-defaults"]
    assert (local["launcher"], ray["launcher"]) == ("local", "ray") and local["images"] == ray["images"] == 48
    assert local["dataset_sha256"] == ray["dataset_sha256"]
    assert local["predictions_sha256"] == ray["predictions_sha256"]  # the same stages, the same answers on a CPU
    for name in ("local-defaults", "ray-defaults"):
        assert bundle.verify(out / "runs" / name).ok
    table = (out / harness.SUMMARY).read_text()
    assert "| copy | copy |" in table and "skipped: no GPU here" in table
    assert "| local-defaults | run | local | fast |" in table

