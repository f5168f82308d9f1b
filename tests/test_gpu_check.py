"""The one-call GPU check runs without Ray; here on the CPU, where it must still report."""

from __future__ import annotations

import importlib.abc
import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from helpers import REPO


class RefuseRayImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ray":
            raise AssertionError("node_name tried to import ray")
        return None


def test_node_name_looks_ray_up_without_importing_it(monkeypatch):
    # Called on every batch. Where Ray is not installed (the GPU machine) an import would be
    # retried each time, and from two calling threads one saw the other's half-failed module
    # (CI, 2026-11-30: "module 'ray' has no attribute 'is_initialized'").
    from bench.stages.handoff import node_name

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(sys, "meta_path", [RefuseRayImports(), *sys.meta_path])
    assert node_name() == socket.gethostname()

    context = SimpleNamespace(get_node_id=lambda: "node-1")
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: True,
                                                            get_runtime_context=lambda: context))
    assert node_name() == "node-1"


@pytest.mark.slow
@pytest.mark.parametrize("data", [[], ["--format", "jpeg", "--decode-on-device", "--calls-at-once", "2"]],
                         ids=["raw", "jpeg-decoded-by-the-predictor"])
def test_gpu_check_drives_the_pipeline_stages_and_reports(tmp_path, data):
    # -S-free but Ray-free: block `import ray` to prove the check does not need it.
    blocker = tmp_path / "ray.py"
    blocker.write_text("raise ImportError('Ray is not on the GPU machine')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--images", "20", "--batch-size", "8", "--device", "cpu",
         "--min-seconds", "0.2", "--loader-workers", "2", "--prefetch", "2", *data],
        cwd=REPO, capture_output=True, text=True, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["device"] == "cpu" and result["images"] == 20  # every image, last batch partial
    assert result["model_only_img_s"] > 0 and result["end_to_end_img_s"] > 0
    assert result["end_to_end_over_ceiling"] == pytest.approx(result["end_to_end_img_s"] / result["model_only_img_s"])
    assert result["predictor_only_img_s"] > 0 and result["host_to_device_gb_s"] is None  # no copy on a CPU
    assert result["top1_matches_serial_call"] == 1.0  # its first batch is the serial call's: same answers on a CPU
    assert result["telemetry"]["nodes"]  # host telemetry sampled alongside
    if result["precision"] != "fp32":
        assert result["precision_cost"]["images"] == 20  # the first shard's first 64 rows, as `bench run`
    if data:  # synthetic JPEGs are 256x256 and libjpeg-turbo decodes them as Pillow does: no cost here
        assert result["decoding_cost"]["images"] == 20 and result["decoding_cost"]["rel_logit_error_max"] == 0.0
    else:
        assert result["decoding_cost"] is None


def test_gpu_check_refuses_to_decode_on_the_device_what_is_not_jpeg(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--images", "4", "--device", "cpu",
                           "--scratch", str(tmp_path), "--decode-on-device"],
                          cwd=REPO, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "--decode-on-device needs JPEG data" in proc.stderr
    assert "synth-raw-4 holds raw (make it with --format jpeg)" in proc.stderr


def test_rebatching_keeps_every_image_once_in_order():
    import numpy as np

    from bench.gpu_check import rebatched

    groups = [{"id": np.arange(start, min(start + 5, 23))} for start in range(0, 23, 5)]
    batches = list(rebatched(iter(groups), 8))
    assert [len(b["id"]) for b in batches] == [8, 8, 7]
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(23))


def test_rebatching_copies_each_column_once_into_the_arrays_it_is_given():
    import numpy as np

    from bench.gpu_check import rebatched

    made = []

    def empty(shape, dtype):
        made.append(np.empty(shape, dtype))
        return made[-1]

    groups = [{"id": np.arange(s, s + 5), "image": np.full((5, 2), s, np.uint8)} for s in range(0, 15, 5)]
    batches = list(rebatched(iter(groups), 6, empty))
    assert [len(b["image"]) for b in batches] == [6, 6, 3]
    assert all(any(np.shares_memory(b["image"], m) for m in made) for b in batches)  # no second copy
    assert np.concatenate([b["image"][:, 0] for b in batches]).tolist() == [0] * 5 + [5] * 5 + [10] * 5


def test_a_loader_failure_reaches_the_caller_instead_of_ending_the_run_short(tmp_path):
    from bench.gpu_check import model_batches

    import pyarrow as pa
    import pyarrow.parquet as pq

    def preprocess(batch):
        raise RuntimeError("bad row group")

    pq.write_table(pa.table({"id": ["a", "b"], "label": [0, 1], "image": [b"x", b"y"]}), tmp_path / "s.parquet")
    with pytest.raises(RuntimeError, match="bad row group"):
        with ThreadPoolExecutor(1) as pool:
            list(model_batches([tmp_path / "s.parquet"], preprocess, 2, pool, 1, pin=False))


def test_loader_processes_give_what_loader_threads_give_in_the_same_order(tmp_path):
    import numpy as np

    from bench.gpu_check import loader_pool, make_dataset, prefetched
    from bench.stages.crops import preprocess

    files, fmt = make_dataset(tmp_path / "jpeg", 40, "jpeg", workers=1)
    assert fmt == "jpeg"
    loaded = {}
    for processes in (False, True):
        with loader_pool(2, processes) as pool:
            loaded[processes] = list(prefetched(files * 2, preprocess, pool, depth=3))
    assert len(loaded[True]) == len(loaded[False]) >= 2
    for by_process, by_thread in zip(loaded[True], loaded[False]):
        assert by_process["id"].tolist() == by_thread["id"].tolist()
        np.testing.assert_array_equal(by_process["image"], by_thread["image"])


def test_the_summary_table_has_one_row_per_check_with_its_figures():
    from bench.gpu_check import summary_table

    def result(e2e, ceiling, cost, **newer):
        return {"gpu": "NVIDIA H200", "device": "cuda:0", "versions": {"torch": "2.11.0"}, "pipeline": "fast",
                "precision": "fp16", "batch_size": 256, "compiled": False, "images": 65536,
                "model_only_img_s": ceiling, "end_to_end_img_s": e2e, "end_to_end_over_ceiling": e2e / ceiling,
                "gpu_util_mean_pct": 84.2, "energy_j_per_image": 0.0479, "precision_cost": cost, **newer}

    text = summary_table({
        "a": result(12451.0, 14744.0, {"top1_agreement": 1.0}, calls_at_once=2, loader="processes", predictor_only_img_s=13502.4,
                    host_to_device_gb_s={"pinned": 24.61, "pageable": 9.04}, top1_matches_serial_call=0.9961,
                    decoding_cost={"top1_agreement": 0.984},
                    batch_size_effect={"smaller_batch": 96, "rows_bit_equal": 0.25, "repeat_bit_equal": True}),
        "b": result(2000.0, 8000.0, None),  # written before the split figures existed
    })
    lines = text.splitlines()
    assert lines[0] == "NVIDIA H200; torch 2.11.0"
    assert lines[4] == ("| a | fast | fp16 | 256 | no | 2 | processes | 65,536 | 14,744 | 13,502 | 12,451 | 0.84 | 84 | 0.048 "
                        "| 1.000 | 24.6, 9.0 | 0.996 | 0.984 | 0.250 at 96, yes |")
    assert lines[5] == "| b | fast | fp16 | 256 | no | 1 | threads | 65,536 | 8,000 | - | 2,000 | 0.25 | 84 | 0.048 | - | - | - | - | - |"


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
    import numpy as np

    from bench.gpu_check import batch_size_effect

    crops = np.random.default_rng(0).random((16, 4, 4, 3))
    effect = batch_size_effect(FakePredictor(per_batch_image, per_call), crops)
    assert effect["smaller_batch"] == 6  # 3/8 of 16
    assert effect["rows_bit_equal"] == bit_equal and effect["repeat_bit_equal"] is repeat
    assert effect["top1_agreement"] == 1.0  # the shifts are far below the top-1 margins here
    assert (effect["max_abs_logit_diff"] == 0.0) == (bit_equal == 1.0)


def test_several_callers_predict_every_batch_exactly_once():
    import threading

    import numpy as np

    from bench.gpu_check import predict_all

    seen, lock = [], threading.Lock()

    def predictor(batch):
        with lock:
            seen.extend(batch["id"].tolist())
        return {"id": batch["id"], "top1": batch["id"] % 7}

    batches = ({"id": np.arange(start, start + 4)} for start in range(0, 40, 4))
    predicted = predict_all(predictor, batches, calls_at_once=3)
    assert sorted(seen) == list(range(40))
    assert sorted(zip(predicted["id"].tolist(), predicted["top1"].tolist())) == [(i, i % 7) for i in range(40)]


def test_the_end_to_end_answers_are_checked_against_a_serial_call_on_the_ids_it_holds():
    import numpy as np

    from bench.gpu_check import share_matching

    reference = {"id": np.array(["a", "b"], object), "top1": np.array([3, 4])}
    predicted = {"id": np.array(["a", "c", "b", "a", "b"], object), "top1": np.array([3, 9, 4, 3, 1])}
    assert share_matching(predicted, reference) == 0.75  # c is not in the reference; one b differs
    assert share_matching({"id": np.array(["c"], object), "top1": np.array([1])}, reference) is None


CPU_DRY_RUN = "--device cpu --images 16 --batch-size 8 --min-seconds 0.1 --precision fp32 --passes 1 --loader-workers 1"


@pytest.mark.slow
def test_the_prepared_script_runs_the_checks_asked_for_and_tables_them(tmp_path):
    # The script a lent GPU machine runs, dry-run on the CPU (two of its checks, to stay quick):
    # each check leaves its JSON and its row; a check that fails makes the script fail, with
    # its error shown, instead of vanishing from the table.
    script = str(REPO / "bench" / "gpu_check.sh")
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_CHECK_ARGS": CPU_DRY_RUN}
    proc = subprocess.run(["bash", script, str(tmp_path / "ok"), "fast-fp16-pixels", "seed-fp32"], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    names = sorted(path.stem for path in (tmp_path / "ok" / "runs").glob("*.json"))
    assert names == ["fast-fp16-pixels", "seed-fp32"]
    table = (tmp_path / "ok" / "summary.md").read_text()
    assert "| fast-fp16-pixels | fast | fp32 | 8 | no | 1 | threads | 16 |" in table
    assert "| seed-fp32 | seed | fp32 | 8 | no | 1 | threads | 16 |" in table

    env["GPU_CHECK_ARGS"] = CPU_DRY_RUN + " --prefetch 0"  # refused: the check fails
    proc = subprocess.run(["bash", script, str(tmp_path / "bad"), "fast-fp16"], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "1 check(s) failed" in proc.stderr
    assert "--prefetch: must be at least 1, not 0" in proc.stdout  # the check's own error, shown


KEPT_RUNS = REPO / "docs" / "gpu-runs"


@pytest.mark.parametrize("folder", sorted(p.name for p in KEPT_RUNS.iterdir() if p.is_dir()))
def test_each_kept_gpu_run_summary_is_what_its_outputs_say(folder):
    # docs/performance.md quotes these tables; the JSON files are the measurements: gpu_check's
    # (NAME.json) or `bench run`'s through bench/gpu_ray_check.sh (NAME.result.json). gpu_check's
    # rows are compared as a set: --summarise orders by file time, which a git checkout does not keep.
    from bench import gpu_ray_check
    from bench.gpu_check import summary_table

    run = KEPT_RUNS / folder
    kept = (run / "summary.md").read_text().splitlines()
    if list(run.glob("*.result.json")):
        assert kept == gpu_ray_check.table(run).splitlines() and len(kept) == 2 + len(list(run.glob("*.result.json")))
        return
    results = {path.stem: json.loads(path.read_text()) for path in sorted(run.glob("*.json"))}
    remade = summary_table(results).splitlines()
    assert len(results) >= 1 and kept[:4] == remade[:4]  # device and versions line, blank, header, rule
    assert sorted(kept[4:]) == sorted(remade[4:])


@pytest.mark.slow
def test_the_prepared_ray_check_runs_bench_run_three_times_and_tables_it(tmp_path):
    # bench/gpu_ray_check.sh dry-run on the CPU: three verified `bench run` bundles (defaults, a
    # variant, defaults again), compared and tabled in the order they ran. Its default variant,
    # two model actors, cannot run on 2 CPUs (bench.run.cluster refuses it), so this one turns
    # threaded actors off. On the CPU every batch is computed the same way whatever ran beside
    # it, so all three give the same predictions.
    out = tmp_path / "out"
    env = {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": sys.executable,
           "BENCH_DEVICE": "cpu"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_ray_check.sh"), str(out), "64",
                           'one-call={"threaded_actors": false}'], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("OK: ") == 3  # bench verify, once per bundle
    compare = json.loads((out / "compare.json").read_text())
    assert [r["config_differences"] for r in compare["rows"]] == [[], ["threaded_actors"], []]
    assert all(r["same_predictions"] and r["images"] == 64 for r in compare["rows"])
    rows = (out / "summary.md").read_text().splitlines()[2:]
    assert [r.split(" | ")[:5] for r in rows] == [["| defaults", "1", "0", "2", "64"], ["| one-call", "1", "0", "1", "64"],
                                                  ["| defaults-again", "1", "0", "2", "64"]]
