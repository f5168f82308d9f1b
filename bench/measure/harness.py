"""The one harness: a suite's cases (bench/measure/cases.toml), run in order in this process,
side by side on one machine, into one folder. perf.json is rewritten after every case, so a run
cut short (a GPU loan's time limit) still leaves what it measured; a case that fails is
recorded with its reason and the next one runs."""

from __future__ import annotations

import datetime as dt
import json
import platform
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Callable

import psutil

from bench.config import RunConfig, resolve
from bench.errors import BenchError
from bench.measure import micro, probes
from bench.measure.cases import Case, Suite
from bench.measure.memory import TreeMemorySampler, WorkerMemorySampler
from bench.results import bundle, envinfo
from bench.results.result import Result
from bench.run import datasets, runner
from bench.run.launchers import launcher
from bench.stages import precision
from bench.telemetry.summary import mean_gpu_util
from data_prep.common.cores import usable_cores
from data_prep.common.failures import first_line
from data_prep.common.shard_format import DECODED_FORMATS

PERF = "perf.json"
SUMMARY = "summary.md"
SAMPLE_IMAGES = 32  # the images a probe (ceiling, preprocessing) is measured on


def device_description(kind: str) -> str:
    if kind == "cuda":
        import torch

        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu: {envinfo.cpu_model() or platform.machine()} ({usable_cores()} cores)"


@dataclass
class Overrides:
    """What the command line changes in every case: the suite's dataset (SIZE or --data), the
    device, the synthetic images' count, the scale of scaled datasets, how long probes run."""

    size: str | None = None
    data: str | None = None
    device: str | None = None
    images: int | None = None
    scale: int | None = None
    min_seconds: float = 5.0


@dataclass
class Context:
    suite: Suite
    out: Path
    overrides: Overrides
    kind: str  # "cpu" or "cuda": where the models run
    datasets: dict[tuple, datasets.Dataset] = field(default_factory=dict)
    repeat_after_runs: list[tuple[dict[str, Any], Callable[[], float]]] = field(default_factory=list)

    def dataset(self, spec: dict[str, Any] | None = None) -> datasets.Dataset:
        """The suite's dataset, or the one a case names: {images, format}, or {scale} times the suite's."""
        spec = dict(spec or {})
        base = self.base_spec()
        if "scale" in spec:
            scale = self.overrides.scale or spec.pop("scale")
            suite = self.dataset()
            spec = {"images": suite.images * scale,
                    "format": suite.manifest["format"] if suite.manifest["format"] in DECODED_FORMATS else "raw"}
        elif not spec:
            spec = base
        elif self.overrides.images and "images" in spec:
            spec["images"] = self.overrides.images
        key = tuple(sorted(spec.items()))
        if key not in self.datasets:
            if "uri" in spec or "size" in spec:
                self.datasets[key] = datasets.resolve(spec.get("size"), spec.get("uri"), show_progress=False)
            else:
                self.datasets[key] = datasets.synthetic(spec["images"], spec.get("format", "raw"), show_progress=False)
        return self.datasets[key]

    def base_spec(self) -> dict[str, Any]:
        if self.overrides.data:
            return {"uri": self.overrides.data}
        if self.overrides.size:
            return {"size": self.overrides.size}
        spec = dict(self.suite.data or {"size": "mini"})
        if self.overrides.images and "size" not in spec:
            spec["images"] = self.overrides.images
        return spec

    def resolved(self, case: Case, data: datasets.Dataset) -> RunConfig:
        return resolve(case.run_config(self.overrides.device), self.kind, data.manifest["format"])


def run_case(context: Context, case: Case) -> dict[str, Any]:
    data = context.dataset(case.data)
    config = case.run_config(context.overrides.device)
    engine = launcher(case.launcher, **case.launcher_options)
    workers, tree = (WorkerMemorySampler(), TreeMemorySampler()) if case.memory else (nullcontext(), nullcontext())
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        with workers, tree:
            path = runner.run(None, data.uri, config, None, context.out / "runs" / case.name, show_progress=False,
                              engine=engine)
    finally:
        engine.close()
        stop_leftovers(before)
    result = bundle.load(path)
    record = {"bundle": str(Path("runs") / case.name), **run_figures(result)}
    if case.memory:
        record["peak_worker_private_mb"] = workers.peak_mb()
        record["worker_private_mb"] = workers.by_worker()
        record["peak_tree_private_mb"] = tree.peak_mb()
    return record


def stop_leftovers(before: set[int]) -> None:
    """Processes a run case started and its engine left running (Daft keeps its UDF processes,
    each with a model), stopped: the next case's memory and cores are its own."""
    left = [child for child in psutil.Process().children(recursive=True) if child.pid not in before]
    for child in left:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=10)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass


def run_figures(result: Result) -> dict[str, Any]:
    """What a run's table row and the ratios need, from its Result."""
    config = RunConfig.from_dict(result.config)
    telemetry = result.telemetry or {}
    return {
        "launcher": result.launcher["name"], "engine_version": result.launcher.get("version"), "pipeline": result.pipeline, "precision": config.precision,
        "batch_size": config.batch_size, "calls_in_parallel": config.calls_in_parallel,
        "actors": result.placement.get("actors"), "images": result.images, "img_s": result.throughput_img_s,
        "wall_s": result.timings["wall_s"], "first_predictions_s": result.first_predictions_s,
        "first_batch_s": result.first_batch_s,
        "streaming_img_s": result.streaming_img_s, "predictions_sha256": result.predictions_sha256,
        "dataset_sha256": result.dataset_sha256, "gpu_util_mean_pct": mean_gpu_util(telemetry),
        "energy_j_per_image": telemetry.get("energy_j_per_image"), "precision_cost": result.precision_cost,
        "decoding_cost": result.decoding_cost,
    }


def ceiling_case(context: Context, case: Case) -> dict[str, Any]:
    data = context.dataset(case.data)
    config = context.resolved(case, data)
    predictor = probes.predictor_for(config, data.shard_files, data.filesystem)
    sample = precision.sample_batch(data.shard_files, data.filesystem, SAMPLE_IMAGES)
    measure = probes.ceiling(config, predictor, sample, context.overrides.min_seconds)
    record = {"pipeline": config.pipeline, "precision": config.precision, "batch_size": config.batch_size,
              "calls_in_parallel": config.calls_in_parallel, "samples": [measure()]}
    record["img_s"] = record["samples"][0]
    if case.after_each_run:
        context.repeat_after_runs.append((record, measure))
    return record


def preprocess_case(context: Context, case: Case) -> dict[str, Any]:
    data = context.dataset(case.data)
    if data.manifest["format"] not in DECODED_FORMATS:
        raise BenchError(f"{data.uri} holds JPEGs; preprocessing is measured on a raw or pixels dataset (the JPEG "
                         "sample is made from its pixels)")
    sample = precision.sample_batch(data.shard_files, data.filesystem, SAMPLE_IMAGES)
    return probes.preprocess_per_core(sample, context.overrides.min_seconds / 2)


def micro_case(context: Context, case: Case) -> dict[str, Any]:
    from bench.run.connect import connect

    data = context.dataset(case.data)
    connect(None)
    return micro.run(data.shard_files, data.filesystem)


def copy_case(context: Context, case: Case) -> dict[str, Any]:
    import torch

    if context.kind != "cuda":
        return {"status": "skipped", "reason": "no GPU here: a host-to-device copy needs one"}
    data = context.dataset(case.data)
    config = context.resolved(case, data)
    batch = probes.model_batch(config, precision.sample_batch(data.shard_files, data.filesystem, SAMPLE_IMAGES))
    rates = probes.host_to_device_gb_s(batch, torch.device("cuda"), min(context.overrides.min_seconds, 1.0))
    if rates is None:
        return {"status": "skipped", "reason": f"the {config.pipeline} pipeline hands its model floats, not uint8 pixels"}
    return {"gb_s": rates}


def batch_effect_case(context: Context, case: Case) -> dict[str, Any]:
    data = context.dataset(case.data)
    config = context.resolved(case, data)
    predictor = probes.predictor_for(config, data.shard_files, data.filesystem)
    sample = precision.sample_batch(data.shard_files, data.filesystem, SAMPLE_IMAGES)
    return probes.batch_size_effect(predictor, probes.model_batch(config, sample))


KINDS: dict[str, Callable[[Context, Case], dict[str, Any]]] = {
    "run": run_case, "ceiling": ceiling_case, "preprocess": preprocess_case, "micro": micro_case,
    "copy": copy_case, "batch_effect": batch_effect_case,
}


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name == "ray":
        return "Ray is not installed here (carry its wheel: bench/measure/gpu_wheels.sh)"
    return str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {first_line(str(exc))}"


def run_suite(suite: Suite, out: Path, overrides: Overrides, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every case of ``suite``; returns the report (also perf.json and summary.md in ``out``)."""
    import torch

    kind = overrides.device if overrides.device in ("cpu", "cuda") else ("cuda" if torch.cuda.is_available() else "cpu")
    context = Context(suite, out, overrides, kind)
    out.mkdir(parents=True, exist_ok=True)
    report = {"suite": suite.name, "summary": suite.summary, "kit_version": envinfo.__version__,
              "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "device": device_description(kind), "versions": {"torch": torch.__version__,
                                                               "python": platform.python_version()},
              "cases": []}
    for index, case in enumerate(suite.cases, start=1):
        log(f"{index}/{len(suite.cases)} {case.name} ({case.kind}{', ' + case.launcher if case.kind == 'run' else ''})")
        record = {"name": case.name, "kind": case.kind, "status": "ok"}
        try:
            record.update(KINDS[case.kind](context, case))
        except Exception as exc:  # recorded, and the suite goes on: one broken case must not cost the rest
            record.update(status="failed", error=failure_reason(exc))
            log(f"   {case.name} failed: {record['error']}")
        report["cases"].append(record)
        if case.kind == "run":
            for ceiling, measure in context.repeat_after_runs:
                ceiling["samples"].append(measure())
                ceiling["img_s"] = fmean(ceiling["samples"])
        write(out, report)
    return report


def write(out: Path, report: dict[str, Any]) -> None:
    """perf.json, summary.md, and a SHA256SUMS over them and each run bundle's own SHA256SUMS,
    so ``sha256sum -c SHA256SUMS`` there checks the whole folder (each run also `bench verify`s)."""
    (out / PERF).write_text(bundle.dumps(report))
    (out / SUMMARY).write_text(summary_markdown(report))
    sums = sorted(str(p.relative_to(out)) for p in out.glob("runs/*/" + bundle.SUMS))
    bundle.write_sums(out, [PERF, SUMMARY, *sums])


def _cell(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def summary_markdown(report: dict[str, Any]) -> str:
    """One row per case, in the order they ran; ratios against the suite's first ceiling."""
    ceiling = next((c.get("img_s") for c in report["cases"] if c["kind"] == "ceiling" and c["status"] == "ok"), None)
    lines = [f"{report['suite']} on {report['device']}; " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             "", "| case | kind | launcher | pipeline | precision | batch | calls | images | img/s | first predictions s "
             "| img/s after them | / ceiling | GPU util % | J/image | predictions sha256 | notes |", "|" + "---|" * 16]
    for case in report["cases"]:
        if case["status"] != "ok":
            note = case.get("error") or case.get("reason", "")
            lines.append(f"| {case['name']} | {case['kind']} |" + " - |" * 13 + f" {case['status']}: {note} |")
            continue
        rate = case.get("img_s")
        streaming = case.get("streaming_img_s")
        notes = ""
        if case["kind"] == "ceiling" and len(case.get("samples", [])) > 1:
            notes = "samples " + ", ".join(f"{s:,.1f}" for s in case["samples"])
        elif case["kind"] == "copy":
            notes = f"pinned {case['gb_s']['pinned']:.1f} GB/s, pageable {case['gb_s']['pageable']:.1f} GB/s"
        elif case["kind"] == "batch_effect":
            notes = (f"{case['rows_bit_equal']:.3f} of {case['smaller_batch']} rows bit-equal in a smaller batch, "
                     f"repeat {'bit-equal' if case['repeat_bit_equal'] else 'differs'}")
        elif case["kind"] == "micro":
            notes = f"measured {case['measured_s']:.3f} s, ideal {case['ideal_s']:.3f} s"
        elif case["kind"] == "preprocess":
            notes = ", ".join(f"{fmt} {case[fmt]['speedup']:.1f}x" for fmt in ("raw", "jpeg"))
        over = (streaming or rate) / ceiling if ceiling and (streaming or rate) and case["kind"] == "run" else None
        lines.append("| " + " | ".join([
            case["name"], case["kind"], case.get("launcher", "-") if case["kind"] == "run" else "-",
            case.get("pipeline", "-"), case.get("precision", "-"), _cell(case.get("batch_size")),
            _cell(case.get("calls_in_parallel")), _cell(case.get("images"), ","), _cell(rate, ",.1f"),
            _cell(case.get("first_predictions_s"), ".1f"), _cell(streaming, ",.1f"), _cell(over, ".2f"),
            _cell(case.get("gpu_util_mean_pct"), ".0f"), _cell(case.get("energy_j_per_image"), ".3f"),
            (case.get("predictions_sha256") or "-")[:16], notes]) + " |")
    return "\n".join(lines) + "\n"


def load_report(out: Path) -> dict[str, Any]:
    return json.loads((out / PERF).read_text())
