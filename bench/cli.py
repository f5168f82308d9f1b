"""`bench`: run the benchmark and work with result bundles. Thin: parse, call, print."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench import __version__
from bench.results import archive, bundle, compare as compare_mod, envinfo, report
from bench.run import datasets, runner
from bench.run.connect import connect
from bench.run.launchers import launcher
from bench import docker_images
from bench.measure import micro
from bench.config import RunConfig
from bench.errors import BenchError
from data_prep.common.cli import add_version_option, make_app, run_app
from data_prep.common.sizes import SIZES

app = make_app(
    "Run the Ray Data batch-inference benchmark (MLPerf ResNet-50, offline) and work with its "
    "result bundles.\n\nQuick start: `bench run mini` (makes the synthetic data on first use), then "
    "`bench verify BUNDLE` and `bench compare A B`.",
)
# Piped output (a log, a file) keeps the widest table on one line per row.
out = Console(highlight=False, soft_wrap=True, width=None if Console().is_terminal else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SizeArg = Annotated[Optional[str], typer.Argument(
    help=f"A named synthetic size: {', '.join(f'{k} ({v:,} images)' for k, v in SIZES.items())}. "
    "Generated into the cache (BENCH_DATA_DIR, default ~/.cache/raybench/data) on first use.",
    show_default=False)]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="A data-prep dataset directory or s3:// / gs:// URI instead of SIZE.")]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster (e.g. auto, ray://host:10001); default: a local one. On several nodes, --data must be where every node reads it (s3://..., or a shared mount): each reading node is checked before the timer (docs/clusters.md).")]


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise BenchError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


@app.command("run")
def run_command(
    size: SizeArg = None,
    data: DataOpt = None,
    pipeline: Annotated[str, typer.Option(help="fast (ours) or reference (the published benchmark's code path, faithfully; also called seed).")] = "fast",
    batch_size: Annotated[Optional[int], typer.Option(help="Images per model batch (default: reference 1000; fast 16 on CPU, 256 on GPU).")] = None,
    actors: Annotated[Optional[int], typer.Option("--actors", "--concurrency", help="Model actors (default: one per GPU; without GPUs, one per node). More actors than GPUs share them, "
                  "k per GPU, 1/k of one each.")] = None,
    device: Annotated[str, typer.Option(help="auto (GPUs if the cluster has them), cuda or cpu.")] = "auto",
    precision: Annotated[Optional[str], typer.Option(help="auto, fp32, bf16, fp16 or int8 (default: reference fp32; fast auto = fp16 on GPU, bf16 on CPUs with native bf16, else int8, calibrated once on the dataset's last 64 images). Reduced precision's cost against fp32 is measured and kept in the bundle.")] = None,
    weights: Annotated[str, typer.Option(help="random (seeded), imagenet (torchvision's file from the torch hub cache, sha256-checked) or a path.")] = "random",
    weights_seed: Annotated[int, typer.Option("--weights-seed", "--seed", help="Seed of the random weights.")] = 0,
    save_logits: Annotated[bool, typer.Option(help="Also store all 1000 logits per image.")] = False,
    address: AddressOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Bundle directory (default: a new one under results/runs/).")] = None,
    stall_timeout: Annotated[float, typer.Option(help="Fail (no bundle) when no predictions arrive for this many seconds, e.g. after the cluster lost the node a stage needs.")] = 600.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    verify_data: Annotated[bool, typer.Option(help="Re-hash every shard against the manifest before running (catches damage inside files; reads the whole dataset once).")] = False,
    skip_bad_shards: Annotated[bool, typer.Option(help="Run without shards that are missing, damaged or of the wrong shape, and record each skip in the bundle (default: stop with an error naming the shard).")] = False,
    decode_on_device: Annotated[bool, typer.Option(help="JPEG data, fast pipeline: the model actors decode, resize and crop on their device (nvJPEG on a GPU) instead of the CPU tasks doing it, for GPUs whose hosts cannot decode fast enough. Its accuracy cost against CPU decoding is measured and kept in the bundle.")] = False,
    launcher_name: Annotated[str, typer.Option("--engine", "--launcher", help="ray (Ray Data, on this machine or --address's cluster); spark or daft (the engines users pick instead, on the same stages and model: `make peers`, then .venv-peers/bin/bench); or local (the same stages in this one process, without any engine: the practical limit, and what runs where Ray is not installed).")] = "ray",
    spark_master: Annotated[Optional[str], typer.Option(help="--engine spark: a Spark master URL (spark://host:7077); default local[N] over this machine's cores.")] = None,
    warm_up: Annotated[Optional[bool], typer.Option("--warm-up/--no-warm-up", help="Before the timer, start a worker process per CPU of the cluster with what the read tasks import loaded, and Ray Data's helper actors, as Ray's own benchmarks warm up (default: on for fast; the reference keeps the reference's cold start). The bundle records that it ran.")] = None,
) -> None:
    """Run the benchmark end to end and write a verified result bundle.

    Prints three figures: the headline (images / wall time from before the first read, the
    reference's definition), the streaming rate once predictions flow, and the start-up (seconds
    to the first predictions); result.json's ``startup`` holds where those seconds went, one lane
    per process, and report.html draws it. Prints the bundle's path as the last line of stdout.
    """
    if size and data:
        raise BenchError("give either SIZE or --data, not both")
    if spark_master and launcher_name != "spark":
        raise BenchError(f"--spark-master is for --engine spark, not {launcher_name}")
    engine_options = {"master": spark_master} if spark_master else {}
    config = RunConfig(pipeline=pipeline, batch_size=batch_size, actors=actors, device=device,
                       precision=precision, weights=weights, weights_seed=weights_seed, save_logits=save_logits,
                       stall_timeout_s=stall_timeout, decode_on_device=decode_on_device, warm_up=warm_up)
    path = runner.run(size, data, config, address, out_dir, show_progress=not quiet, verify_data=verify_data,
                      skip_bad_shards=skip_bad_shards, engine=launcher(launcher_name, **engine_options))
    result = bundle.load(path)
    for skipped in result.skipped_shards:
        err.print(f"[yellow]skipped[/] {skipped['file']} ({skipped['images']:,} images): {skipped['reason']}")
    out.print(f"{result.images:,} images, {result.throughput_img_s:,.1f} img/s "
              f"({result.throughput_img_s_excl_metadata:,.1f} img/s excluding metadata fetch), "
              f"pipeline {result.pipeline}, predictions sha256 {result.predictions_sha256[:16]}")
    out.print(three_figures(result))
    if result.accuracy:
        out.print(f"top-1 {result.accuracy['top1']:.4f}, top-5 {result.accuracy['top5']:.4f} "
                  f"on {result.accuracy['labelled_images']:,} labelled images")
    typer.echo(str(path))


def three_figures(result) -> str:
    """The headline, the streaming rate and the start-up, in one line."""
    if result.startup_s is None:
        return f"headline {result.throughput_img_s:,.1f} img/s (no start-up marks in this bundle)"
    warm = "after a warm-up" if (result.startup or {}).get("warmup") else "cold start"
    if result.streaming_img_s is None:
        return (f"headline {result.throughput_img_s:,.1f} img/s; start-up {result.startup_s:.1f} s ({warm}), and "
                "the first predictions held every image: no streaming rate")
    return (f"headline {result.throughput_img_s:,.1f} img/s = start-up {result.startup_s:.1f} s ({warm}), then "
            f"streaming {result.streaming_img_s:,.1f} img/s")


@app.command("verify")
def verify_command(
    bundles: Annotated[list[Path], typer.Argument(help="Bundle directories.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for machines.")] = False,
) -> None:
    """Check every digest, missing and extra files, and the result schema; exit 1 on any problem.

    A BUNDLE may also be a .tar.gz made by `bench pack`: it is unpacked safely into a temporary
    directory and checked there.
    """
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as scratch:
        verdicts = []
        for path in bundles:
            if path.name.endswith(".tar.gz"):
                verdict = bundle.verify(archive.unpack(path, Path(scratch) / path.name))
                verdict.bundle = path
            else:
                verdict = bundle.verify(path)
            verdicts.append(verdict)
    if as_json:
        typer.echo(json.dumps({str(v.bundle): {"ok": v.ok, "problems": v.problems} for v in verdicts}, indent=2))
    else:
        for verdict in verdicts:
            if verdict.ok:
                out.print(f"OK: {verdict.bundle}")
            for problem in verdict.problems:
                typer.echo(f"{verdict.bundle}: {problem}", err=True)
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


@app.command("pack")
def pack_command(
    bundle_dir: Annotated[Path, typer.Argument(help="A bundle directory (it must verify).")],
    out_file: Annotated[Optional[str], typer.Option("--out", help="Archive path or URI, e.g. s3://BUCKET/runs/NAME.tar.gz (default: BUNDLE.tar.gz beside it).")] = None,
) -> None:
    """Pack a verified bundle into one deterministic .tar.gz to publish; prints its path."""
    bundle.load(bundle_dir)
    target = (out_file if "://" in out_file else Path(out_file)) if out_file else bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    typer.echo(str(archive.pack(bundle_dir, target)))


@app.command("unpack")
def unpack_command(
    archive_file: Annotated[str, typer.Argument(help="A .tar.gz made by `bench pack`: a path, or a URI (s3://...).")],
    destination: Annotated[Path, typer.Argument(help="Directory to unpack into.")] = Path("."),
) -> None:
    """Unpack a bundle archive safely (no absolute paths, no .., no links), then verify it."""
    path = archive.unpack(archive_file, destination)
    bundle.load(path)
    typer.echo(str(path))


@app.command("plan")
def plan_command(
    bundles: Annotated[Optional[list[Path]], typer.Argument(help="Bundles whose measured rates to scale: a GPU run for GPU nodes, a CPU run for CPU-only nodes.")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="A named size (10G, 300G, 10T) to plan for.")] = None,
    images: Annotated[Optional[int], typer.Option("--images", help="Or a number of images.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Images/s to reach: the fewest nodes that do.")] = None,
    gpu_node: Annotated[str, typer.Option("--gpu-node", help="GPU node type (results/reference/prices.json).")] = "g4dn.12xlarge",
    gpu_nodes: Annotated[Optional[int], typer.Option("--gpu-nodes", help="GPU nodes (0: a CPU-only cluster); default: from --rate.")] = None,
    cpu_node: Annotated[Optional[str], typer.Option("--cpu-node", help="CPU-only node type; with GPU nodes, they do the preprocessing.")] = None,
    cpu_nodes: Annotated[Optional[int], typer.Option("--cpu-nodes", help="CPU-only nodes; default: enough to feed the GPUs (or to reach --rate).")] = None,
    head_node: Annotated[str, typer.Option("--head-node", help="Head node type (runs the driver, no work).")] = "m5.4xlarge",
    published: Annotated[Optional[str], typer.Option("--published", help="Scale the reference's published rate for this size (10G, 300G, 10T) instead of bundles: quoted, not measured.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
) -> None:
    """Project node counts, time and cost for a size or a target rate from rates bundles measured.

    Examples: `bench plan results/runs/T4-RUN --size 300G --rate 2600`;
    `bench plan results/published/10G-fast-cpu --size 10G --gpu-nodes 0 --cpu-node m5.16xlarge --cpu-nodes 4`.
    Every figure it prints is projected, never measured; prices are the dated table in results/reference/.
    """
    from bench.results import plan
    from data_prep.common.sizes import images_for

    if (size is None) == (images is None):
        raise BenchError("give exactly one of --size or --images")
    if bool(bundles) == bool(published):
        raise BenchError("give bundles to plan from, or --published SIZE (not both)")
    rates = plan.published_rates(published) if published else plan.rates_from(list(bundles))
    projected = plan.plan(rates, images if images is not None else images_for(size), rate, gpu_node, gpu_nodes,
                          cpu_node, cpu_nodes, head_node)
    if as_json:
        typer.echo(json.dumps(projected, indent=2))
        return
    nodes = ", ".join(f"{count} x {name}" for name, count in projected["nodes"].items())
    hours = projected["seconds"] / 3600
    typer.echo(f"projected: {nodes}: {projected['img_s']:,.0f} img/s ({projected['bound_by']}-bound), "
               f"{projected['images']:,} images in {hours:,.2f} h, ${projected['usd']:,.2f} "
               f"(${projected['usd_per_hour']:,.2f}/h, prices as of {projected['prices']['as_of']})")
    for source in rates.sources:
        typer.echo(f"  from {source}")


@app.command("compare")
def compare_command(
    bundles: Annotated[list[Path], typer.Argument(help="Two or more bundles; the first is the baseline.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for machines.")] = False,
) -> None:
    """The three figures and their ratios (headline img/s, streaming img/s once predictions flow,
    start-up seconds to the first predictions), same data? same weights? same predictions?
    top-1 agreement, and which settings and environment differ.

    "same predictions" compares the bundles' predictions_sha256 (every image's top-1 answer):
    yes means the runs reproduced each other bit for bit."""
    if len(bundles) < 2:
        raise BenchError("compare needs at least two bundles")
    report = compare_mod.compare(bundles)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"baseline: {report['baseline']}")
    for column in ("bundle", "pipeline", "images", "img/s", "ratio", "streaming img/s", "start-up s",
                   "same data", "same weights", "same predictions", "top-1 agree", "config differs", "env differs"):
        table.add_column(column)
    for row in report["rows"]:
        agreement = row["top1_agreement"]
        table.add_row(
            Path(row["bundle"]).name, row["pipeline"], f"{row['images']:,}", f"{row['throughput_img_s']:,.1f}",
            f"{row['ratio_to_first']:.2f}x", _streaming_cell(row),
            "-" if row["startup_s"] is None else f"{row['startup_s']:.1f}", _yes(row["same_data"]), _yes(row["same_weights"]), _yes(row["same_predictions"]),
            "-" if agreement is None else f"{agreement:.4f}", ", ".join(row["config_differences"]) or "-",
            ", ".join(row["env_differences"]) or "-",
        )
    out.print(table)


def _streaming_cell(row: dict) -> str:
    """"66.3 (0.99x)": the streaming rate and its ratio to the baseline's."""
    if row["streaming_img_s"] is None:
        return "-"
    ratio = f" ({row['streaming_ratio_to_first']:.2f}x)" if row["streaming_ratio_to_first"] is not None else ""
    return f"{row['streaming_img_s']:,.1f}{ratio}"


def _yes(value: bool) -> str:
    return "yes" if value else "[bold red]NO[/]"


@app.command("report")
def report_command(
    bundles: Annotated[list[Path], typer.Argument(help="One or more bundles (each is verified first).")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="HTML file (default: results/reports/report-TIME.html, TIME in UTC; in the images /results/report-TIME.html).")] = None,
) -> None:
    """Write one self-contained HTML page of one or more bundles; prints its path.

    The page shows throughput beside the reference figures, GPU, CPU and object-store use over
    time with the pipeline's events, and stage times."""
    for path in bundles:
        bundle.load(path)  # refuses a bundle that does not verify
    target = out_file or runner.default_path("reports", "report-{stamp}.html")
    typer.echo(str(report.write(bundles, target)))


@app.command("micro")
def micro_command(
    size: SizeArg = None,
    data: DataOpt = None,
    address: AddressOpt = None,
    engine: Annotated[str, typer.Option(help="ray, or a peer: spark (local[N] over this machine's cores) or daft (its native runner). The peers need `make peers` and run from .venv-peers/bin/bench.")] = "ray",
    partitions: Annotated[Optional[int], typer.Option(min=1, help="Partitions to sleep on, the same for every engine (default: the dataset's parquet row groups).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for machines.")] = False,
) -> None:
    """The reference microbenchmark: read and materialize, then time a map that sleeps 1 s per
    partition. Ideal is ceil(partitions / parallel slots) seconds; the rest is the engine's overhead.

    Set engines side by side on one dataset, e.g. `bench micro mini` and
    `.venv-peers/bin/bench micro mini --engine spark`."""
    dataset = datasets.resolve(size, data)
    if engine == "ray":
        connect(address)
        figures = micro.run(dataset.shard_files, dataset.filesystem, partitions)
    else:
        from bench.peers import check_local, peer

        chosen = peer(engine)
        if address:
            raise BenchError(f"--address is a Ray cluster's; --engine {engine} runs on this machine")
        check_local(engine, dataset.uri)
        figures = chosen.micro(dataset.shard_files, partitions or micro.row_groups(dataset.shard_files))
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    out.print(f"{figures['engine']} {figures['version']}: {figures['partitions']} partitions over "
              f"{figures['parallelism']} slots: measured {figures['measured_s']:.3f} s, ideal {figures['ideal_s']:.3f} s, "
              f"overhead {figures['overhead_s']:.3f} s (reference: Ray 4.383 s, Spark 128.9 s on their cluster)")


@app.command("perf")
def perf_command(
    size: SizeArg = None,
    data: DataOpt = None,
    suite: Annotated[str, typer.Option(help="A suite of bench/measure/cases.toml: perf (the default pipeline against the reference and the model alone), gpu (the prepared check for a lent GPU), peers (as --peers).")] = "perf",
    peers: Annotated[bool, typer.Option("--peers", help="The peers suite: Ray, Spark, Daft and one plain process on the same data, fp32, as ratios (`make peers`, then .venv-peers/bin/bench perf --peers; ~10 minutes on mini on 2 cores).")] = False,
    case: Annotated[Optional[list[str]], typer.Option("--case", help="Run only this case of the suite (repeatable).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda for every case (default: where the cases' settings put the model), e.g. --device cpu for a CPU dry run of the gpu suite.")] = None,
    images: Annotated[Optional[int], typer.Option(help="Synthetic images for every case that makes its own data (a dry run: a few dozen).")] = None,
    memory_scale: Annotated[Optional[int], typer.Option(help="The scaled cases' datasets are this many times the suite's (perf: the default pipeline's second run, 4; 16 on `mini` is about the 10G set's size).")] = None,
    min_seconds: Annotated[float, typer.Option(help="Time each probe (model ceiling, preprocessing) for at least this long.")] = 5.0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for perf.json, summary.md and the run bundles (default: results/perf/perf-TIME, TIME in UTC; in the images /results/perf-TIME).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object instead of the table.")] = False,
) -> None:
    """Measure a suite of cases side by side in one run, one folder; print ratios.

    The cases are data (bench/measure/cases.toml): runs through either launcher, the model
    alone, preprocessing per core, the microbenchmark. The default suite, perf, runs the default
    pipeline against the reference (`--pipeline reference`) and against the model alone on the
    same data: the model alone is measured before the runs and after each (a drifting machine
    shows as a spread away from 1.00x), the default pipeline runs before and after the reference,
    and its runs on two sizes split its time into a fixed start-up and a streaming rate.

    Takes minutes: perf on a 2-core CPU and `mini` about 9, and 13 with --memory-scale 16. A
    failed case is recorded with its reason and the rest run; the exit code is then 1.
    Results: perf.json, summary.md, the run bundles under runs/, and a SHA256SUMS over them.
    """
    from bench.measure import harness, perf

    if size and data:
        raise BenchError("give either SIZE or --data, not both")
    if peers:
        if suite not in ("perf", perf.PEERS):
            raise BenchError(f"--peers is the peers suite; give it or --suite {suite}, not both")
        suite = perf.PEERS
        from bench.peers import peer

        for name in ("spark", "daft"):
            peer(name)  # not installed: one line, before any case runs
    target = out_dir or runner.default_path("perf", "perf-{stamp}")
    if target.exists() and any(target.iterdir()):
        raise BenchError(f"{target} already exists and is not empty; choose another --out")
    overrides = harness.Overrides(size=size, data=data, device=device, images=images, scale=memory_scale,
                                  min_seconds=min_seconds)
    report = perf.run(suite, target, overrides, only=case, log=lambda line: err.print(line, markup=False))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    elif "figures" in report and "missing" not in report["figures"]:
        out.print(peers_table(report) if suite == perf.PEERS else perf_table(report))
    else:
        typer.echo(harness.summary_markdown(report))
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    for record in failed:
        err.print(f"[bold red]failed:[/] {record['name']}: {record['error']}")
    if not as_json:
        typer.echo(str(target))
    if failed:
        raise typer.Exit(1)


def perf_table(report: dict) -> Table:
    """The perf suite's figures as a table: what each ratio compares, side by side."""
    figures = report["figures"]
    table = Table(title=f"bench perf on {report['device']}, {figures['images']:,} images")
    for column in ("measurement", "reference / baseline", "ours", "ratio"):
        table.add_column(column)
    pre = figures["preprocess"]
    for fmt in ("raw", "jpeg"):
        table.add_row(f"preprocess {fmt}, img/s per core", f"{pre[fmt]['reference_img_s']:,.0f}",
                      f"{pre[fmt]['ours_img_s']:,.0f}", f"{pre[fmt]['speedup']:.1f}x")
    e2e = figures["e2e"]
    table.add_row("end to end img/s (reference vs default, run before and after it)", f"{e2e['reference_img_s']:,.1f}",
                  f"{e2e['default_img_s']:,.1f}", f"{figures['e2e_over_reference']:.2f}x")
    table.add_row(f"model-only ceiling vs end to end ({e2e['large_images']:,} images)", f"{figures['model_only_img_s']:,.1f}",
                  f"{e2e['default_large_img_s']:,.1f}", f"{figures['e2e_over_ceiling']:.2f}x")
    table.add_row(f"model-only ceiling vs end to end ({figures['images']:,} images)", f"{figures['model_only_img_s']:,.1f}",
                  f"{e2e['default_img_s']:,.1f}", f"{figures['e2e_over_ceiling_small']:.2f}x")
    samples = figures["model_only_img_s_samples"]
    table.add_row(f"model-only ceiling img/s (min vs max of {len(samples)}, one per run)", f"{min(samples):,.1f}",
                  f"{max(samples):,.1f}", f"{max(samples) / min(samples):.2f}x")
    streaming = figures["streaming"]
    if streaming["img_s"] is not None:
        table.add_row(f"ceiling vs streaming rate (after {streaming['startup_s']:.1f} s start-up)",
                      f"{figures['model_only_img_s']:,.1f}", f"{streaming['img_s']:,.1f}", f"{streaming['over_ceiling']:.2f}x")
    startup = figures.get("startup") or {}
    if all(s is not None for s in startup.get("first_batch_s", [None])):
        table.add_row(f"start-up s ({figures['images']:,} images, the default's two runs): the model's first batch, "
                      "first predictions", ", ".join(f"{s:.1f}" for s in startup["first_batch_s"]),
                      ", ".join(f"{s:.1f}" for s in startup["first_predictions_s"]), "")
    micro_figures = figures["micro"]
    table.add_row("bench micro s (ideal vs measured)", f"{micro_figures['ideal_s']:.3f}", f"{micro_figures['measured_s']:.3f}",
                  f"+{figures['micro_overhead_s']:.3f} s")
    memory = figures["memory"]
    table.add_row(f"peak worker MB ({memory['images'][0]:,} vs {memory['images'][1]:,} images)",
                  f"{memory['peak_worker_private_mb'][0]:,.0f}", f"{memory['peak_worker_private_mb'][1]:,.0f}", f"{memory['growth']:.2f}x")
    if figures["precision_cost"]:
        cost = figures["precision_cost"]
        table.caption = (f"{cost['precision']} vs fp32 on {cost['images']} images: top-1 agreement {cost['top1_agreement']:.4f}, "
                         f"relative logit error mean {cost['rel_logit_error_mean']:.2e}, max {cost['rel_logit_error_max']:.2e}")
    return table


def peers_table(report: dict) -> Table:
    """The peers suite's figures: one row per engine, its ratios against Ray and the plain process."""
    figures = report["figures"]
    table = Table(title=f"bench perf --peers on {report['device']}, {figures['images']:,} images, "
                        f"{figures['precision']}, batch {figures['batch_size']}")
    for column in ("engine", "img/s", "start-up s", "streaming img/s", "peak MB", "x Ray", "x one process"):
        table.add_column(column)
    for row in figures["engines"]:
        streaming = "-" if row["streaming_img_s"] is None else f"{row['streaming_img_s']:,.1f}"
        table.add_row(f"{row['engine']} {row['version'] or ''}".strip(), f"{row['img_s']:,.1f}", f"{row['startup_s']:.1f}",
                      streaming, f"{row['peak_private_mb']:,.0f}", f"{row['over_ray']:.2f}x", f"{row['over_local']:.2f}x")
    table.caption = (f"model alone {figures['model_only_img_s']:,.1f} img/s; the same predictions on every engine: "
                     f"{'yes' if figures['same_predictions'] else 'NO'}")
    return table


image_app = typer.Typer(help="Build and run the pinned Docker images (bench:gpu, bench:cpu) through the Docker SDK.",
                        no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build_command(
    flavor: Annotated[str, typer.Option(help="cpu, gpu or all.")] = "all",
    base_image: Annotated[Optional[str], typer.Option(help="Override the pinned BASE_IMAGE (e.g. a local stand-in).")] = None,
    wheelhouse: Annotated[Optional[str], typer.Option(help="A --find-links URL with the locked wheels, for fast or offline builds.")] = None,
    bake_weights: Annotated[bool, typer.Option(help="Download and sha256-check ResNet-50 ImageNet weights into the image.")] = False,
) -> None:
    """Build bench:cpu and/or bench:gpu with the pinned build arguments."""
    flavors = list(docker_images.FLAVORS) if flavor == "all" else [flavor]
    _choice("--flavor", flavor, (*docker_images.FLAVORS, "all"))
    for name, image_id in docker_images.build(flavors, base_image, wheelhouse, bake_weights, log=err.out).items():
        out.print(f"{docker_images.tag_for(name)} {image_id}")


@image_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def image_run_command(
    ctx: typer.Context,
    size: Annotated[str, typer.Argument(help="What to run: a SIZE, or any arguments of `bench run` after it.")] = "mini",
    flavor: Annotated[str, typer.Option(help="cpu or gpu.")] = "cpu",
    data_dir: Annotated[Path, typer.Option(help="Host directory mounted as /data (datasets, cached).")] = Path("data"),
    results_dir: Annotated[Path, typer.Option(help="Host directory mounted as /results (bundles).")] = Path("results/runs"),
) -> None:
    """Run a benchmark container, stream its logs, and leave its verified bundle on the host.

    Extra arguments go to `bench run` inside, e.g. `bench image run mini --flavor gpu --device cpu`.
    """
    _choice("--flavor", flavor, tuple(docker_images.FLAVORS))
    code, path = docker_images.run(flavor, [size, *ctx.args], data_dir, results_dir, log=err.out)
    if path is None:
        raise BenchError(f"the {docker_images.tag_for(flavor)} container exited with code {code} without a bundle; see its log above")
    typer.echo(str(path))


@app.command("env")
def env_command(
    as_json: Annotated[bool, typer.Option("--json", help="The full package list as JSON.")] = False,
) -> None:
    """Print the Python package fingerprint: equal in bench:gpu and bench:cpu, by construction."""
    fingerprint = envinfo.package_fingerprint()
    if as_json:
        typer.echo(json.dumps(fingerprint, indent=2))
        return
    typer.echo(f"python {fingerprint['python']}, {len(fingerprint['packages'])} packages, "
               f"fingerprint {fingerprint['sha256']}")


add_version_option(app, "bench", __version__)
main = run_app(app, "bench", user_errors=(BenchError,))

if __name__ == "__main__":  # python3 -m bench.cli, where the console script is not installed (a lent GPU machine)
    main()
