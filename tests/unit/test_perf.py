"""`bench perf`: suites of cases declared as data, run by one harness into one folder; on tiny
data, every figure it promises, each consistent with the bundles and measurements it came from.
Benchmarks stay out of assertions: no ratio is required to be big."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench.errors import BenchError
from bench.measure import cases, harness, perf, probes
from bench.measure.timing import images_per_second

from helpers import synth_dataset

IMAGES = 24


def test_a_failed_case_is_recorded_and_the_rest_of_the_suite_runs(tmp_path, monkeypatch):
    suite = cases.Suite("t", "", {"images": 8, "format": "raw"},
                        (cases.Case("broken", "preprocess"), cases.Case("fine", "preprocess")))
    calls = []

    def preprocess(context, case):
        calls.append(case.name)
        if case.name == "broken":
            raise RuntimeError("the probe broke")
        return {"raw": {"speedup": 2.0}, "jpeg": {"speedup": 1.5}}

    monkeypatch.setitem(harness.KINDS, "preprocess", preprocess)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "cache"))
    report = harness.run_suite(suite, tmp_path / "out", harness.Overrides(device="cpu"), log=lambda line: None)
    assert calls == ["broken", "fine"]
    assert [(c["name"], c["status"]) for c in report["cases"]] == [("broken", "failed"), ("fine", "ok")]
    assert report["cases"][0]["error"] == "RuntimeError: the probe broke"
    assert "failed: RuntimeError: the probe broke" in (tmp_path / "out" / harness.SUMMARY).read_text()
    assert json.loads((tmp_path / "out" / harness.PERF).read_text()) == report


def test_every_suite_in_the_cases_file_is_valid_and_the_prepared_gpu_check_is_one_of_them():
    suites = cases.load()
    assert {"perf", "gpu"} <= set(suites)
    for suite in suites.values():
        assert suite.cases and suite.summary
    assert {c.launcher for c in suites["gpu"].cases if c.kind == "run"} == {"local", "ray"}


@pytest.mark.parametrize("case, message", [
    ('name = "x"\nkind = "dance"', "kind 'dance' is not one of"),
    ('name = "x"\nkind = "run"\nlauncher = "dask"', "launcher 'dask' is not one of"),
    ('name = "x"\nkind = "run"\nconfig = { batch_size = 0 }', "batch-size must be at least 1"),
    ('name = "x"\nkind = "run"\ncolour = "red"', "unknown key"),
])
def test_a_broken_case_is_refused_before_anything_runs(tmp_path, case, message):
    path = tmp_path / "cases.toml"
    path.write_text(f"[suites.s]\nsummary = 's'\n[[suites.s.cases]]\n{case}\n")
    with pytest.raises(BenchError, match=message):
        cases.load(path)


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


def test_perf_refuses_a_jpeg_dataset(tmp_path):
    data = synth_dataset(tmp_path / "jpeg", 4, 8, "--format", "jpeg")
    with pytest.raises(BenchError, match="holds JPEGs; bench perf needs a raw or pixels dataset"):
        perf.run("perf", tmp_path / "perf", harness.Overrides(data=str(data)), log=lambda line: None)


def test_perf_table_shows_the_figures_it_was_given(monkeypatch, tmp_path):
    from bench.cli import app
    from typer.testing import CliRunner

    figures = {
        "images": 1024,
        "preprocess": {fmt: {"reference_img_s": 1000.0, "ours_img_s": 40000.0, "speedup": 40.0} for fmt in ("raw", "jpeg")},
        "e2e": {"reference_img_s": 6.0, "default_img_s": 30.0, "default_large_img_s": 45.0, "large_images": 16384},
        "e2e_over_reference": 5.0, "model_only_img_s": 50.0, "model_only_img_s_samples": [40.0, 50.0, 60.0],
        "e2e_over_ceiling": 0.9, "e2e_over_ceiling_small": 0.6,
        "streaming": {"img_s": 47.0, "startup_s": 11.3, "over_ceiling": 0.94},
        "micro": {"ideal_s": 2.0, "measured_s": 2.4}, "micro_overhead_s": 0.4,
        "memory": {"images": [1024, 16384], "peak_worker_private_mb": [1400.0, 1500.0], "growth": 1.07},
        "precision_cost": None, "startup": {"first_batch_s": [9.8, 10.4], "first_predictions_s": [12.9, 13.3]},
    }
    report = {"device": "cpu: Test CPU (2 cores)", "cases": [], "figures": figures}
    monkeypatch.setattr(perf, "run", lambda *args, **kwargs: report)
    shown = CliRunner().invoke(app, ["perf", "--out", str(tmp_path / "perf")], terminal_width=200, env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:5]]
            for line in shown.output.splitlines() if line.count("│") >= 5}
    assert rows["end to end img/s (reference vs default, run before and after it)"] == ["6.0", "30.0", "5.00x"]
    assert rows["model-only ceiling vs end to end (16,384 images)"] == ["50.0", "45.0", "0.90x"]
    assert rows["model-only ceiling img/s (min vs max of 3, one per run)"] == ["40.0", "60.0", "1.50x"]
    assert rows["ceiling vs streaming rate (after 11.3 s start-up)"] == ["50.0", "47.0", "0.94x"]
    assert rows["peak worker MB (1,024 vs 16,384 images)"] == ["1,400", "1,500", "1.07x"]
    startup = next(key for key in rows if key.startswith("start-up s (1,024 images"))
    assert rows[startup] == ["9.8, 10.4", "12.9, 13.3", ""]


class FakePredictor:
    """Logits of each image = its pixels' mean, plus ``per_batch_image`` times the batch's size
    (a kernel chosen by batch size, in miniature), plus ``per_call`` times the calls so far."""

    precision = "fp16"

    def __init__(self, per_batch_image: float = 0.0, per_call: float = 0.0):
        self.per_batch_image, self.per_call, self.calls = per_batch_image, per_call, 0

    def logits(self, crops, precision):
        import torch

        self.calls += 1
        means = torch.from_numpy(crops.reshape(len(crops), -1).mean(axis=1))
        bias = self.per_batch_image * len(crops) + self.per_call * self.calls
        return torch.stack([means, means * 0.5 + bias, -means], dim=1)


@pytest.mark.parametrize("per_batch_image, per_call, bit_equal, repeat", [
    (0.0, 0.0, 1.0, True),  # every image computed the same way in any batch, every time
    (1e-3, 0.0, 0.0, True),  # the batch's size moves every image's logits; a repeat does not
    (0.0, 1e-3, 0.0, False),  # nondeterministic: even the same batch twice differs
])
def test_the_batch_size_effect_tells_batch_dependence_from_nondeterminism(per_batch_image, per_call, bit_equal, repeat):
    crops = np.random.default_rng(0).random((16, 4, 4, 3))
    effect = probes.batch_size_effect(FakePredictor(per_batch_image, per_call), crops)
    assert effect["smaller_batch"] == 6  # 3/8 of 16
    assert effect["rows_bit_equal"] == bit_equal and effect["repeat_bit_equal"] is repeat
    assert effect["top1_agreement"] == 1.0  # the shifts are far below the top-1 margins here
    assert (effect["max_abs_logit_diff"] == 0.0) == (bit_equal == 1.0)
