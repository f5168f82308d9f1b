"""`data-prep`: make the datasets the benchmark reads. Thin: parse, call, print."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from data_prep import __version__, imagenet, jobs, synth
from data_prep.common import manifest
from data_prep.common.cli import add_version_option, make_app, run_app, stderr
from data_prep.common.cores import usable_cores
from data_prep.common.errors import DataPrepError
from data_prep.common.progress import progress_bar
from data_prep.common.shard_format import FORMATS
from data_prep.common.sizes import DEFAULT_SIZE, SIZES, images_for

app = make_app(
    "Shard ImageNet, or a deterministic synthetic stand-in, into checksummed parquet.\n\n"
    "Every dataset directory gets shards/*.parquet, manifest.json and SHA256SUMS; "
    "`data-prep verify DIR` re-checks it and `data-prep info DIR` summarises it.",
)
out = Console(highlight=False, soft_wrap=True)

Workers = Annotated[int, typer.Option(help="Parallel worker processes (default: the cores this process may use, "
                                            "under any container CPU limit). With --address, the cluster's CPUs decide.")]
Shards = Annotated[
    Optional[str],
    typer.Option(help="Write only shards i:j (e.g. 0:100). The run that completes the set writes manifest.json. "
             "On a Ray cluster, --address spreads every shard over its nodes instead."),
]
RowsPerShard = Annotated[int, typer.Option(help="Images per parquet file (the reference uses ~1,000).")]
Format = Annotated[str, typer.Option("--format", help="raw: 256x256x3 uint8 tensors (the reference schema); "
                                     "pixels: the same pixels, one fixed-size binary value per image (read ~10x "
                                     "faster: for fast GPUs); jpeg: encoded JPEG bytes with height and width.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Address = Annotated[Optional[str], typer.Option(
    "--address", help="Make the shards as Ray tasks spread over this Ray cluster's nodes (e.g. auto on its head, "
    "or HOST:PORT) instead of in local processes. --out must be where every node can write: s3://... or a "
    "filesystem each node mounts at the same path; each node is checked first.")]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise DataPrepError(f"unknown --format {fmt!r}: choose {', '.join(FORMATS)}")


def _report(outcome: jobs.Outcome, location: str, seconds: float, images: int) -> None:
    built_images = images if outcome.skipped == 0 else None
    out.print(f"built {outcome.built} shard(s), kept {outcome.skipped} already complete, in {seconds:.1f} s"
              + (f" ({built_images / seconds:,.0f} images/s)" if built_images and seconds > 0 else ""))
    if outcome.manifest is None:
        out.print(f"{location}: this slice is done; manifest.json is written by the run that completes "
                  f"all {outcome.shards_total} shards")
        return
    _print_summary(outcome.manifest, location)


def _print_summary(m: dict, location: str) -> None:
    totals = m["totals"]
    for key, value in [
        ("dataset", location),
        ("kind / format", f"{m['kind']} / {m['format']}"),
        ("images", f"{totals['images']:,} written of {totals['files_seen']:,} seen, {len(m['rejected'])} rejected"),
        ("shards", f"{totals['shards']:,}"),
        ("on disk", f"{totals['disk_bytes'] / 1e6:,.1f} MB ({totals['disk_bytes'] / max(totals['images'], 1) / 1e3:,.1f} kB/image)"),
        ("decoded in memory", f"{totals['decoded_bytes'] / 1e9:,.2f} GB"),
        ("dataset sha256", m["dataset_sha256"]),
    ]:
        out.print(f"[bold]{key + ':':<19}[/] {value}")


@app.command("synth")
def synth_command(
    size: Annotated[Optional[str], typer.Argument(help=f"One of {', '.join(f'{k} ({v:,} images)' for k, v in SIZES.items())}.",
                                                  show_default=False)] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", help="Directory or s3://bucket/prefix (default: data/synth-SIZE-FORMAT).")] = None,
    images: Annotated[Optional[int], typer.Option(help="Any number of images instead of a named SIZE.")] = None,
    fmt: Format = "raw",
    rows_per_shard: RowsPerShard = synth.DEFAULT_ROWS_PER_SHARD,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes, on any machine.")] = 0,
    workers: Workers = usable_cores(),
    shards: Shards = None,
    quiet: Quiet = False,
    address: Address = None,
) -> None:
    """Generate a deterministic synthetic dataset (gradients, shapes, texture).

    The same command makes the same bytes and dataset_sha256 on any machine or cluster."""
    _check_format(fmt)
    if images is None:
        size = size or DEFAULT_SIZE
        images = images_for(size)
    elif size is not None:
        raise DataPrepError("give either SIZE or --images, not both")
    if images <= 0 or rows_per_shard <= 0:
        raise DataPrepError("--images and --rows-per-shard must be positive")
    name = size or f"{images}img"
    location = out_dir or str(Path("data") / f"synth-{name}-{fmt}")
    start = time.perf_counter()
    outcome, selected_images = synth.generate(location, images, size=size, seed=seed, fmt=fmt,
                                              rows_per_shard=rows_per_shard, shards=shards, workers=workers,
                                              show_progress=not quiet, address=address)
    _report(outcome, location, time.perf_counter() - start, selected_images)


@app.command("imagenet")
def imagenet_command(
    src: Annotated[str, typer.Argument(help="Folder with train/ and/or val/ (class folders, or flat val/ with "
                                       "LOC_val_solution.csv or the devkit), or with ILSVRC2012_img_*.tar.")],
    out_dir: Annotated[str, typer.Option("--out", help="Directory or s3://bucket/prefix.")],
    fmt: Format = "raw",
    split: Annotated[str, typer.Option(help="val (the MLPerf set, 50,000 images), train, or all.")] = "val",
    rows_per_shard: RowsPerShard = 1000,
    workers: Workers = usable_cores(),
    shards: Shards = None,
    quiet: Quiet = False,
    address: Address = None,
) -> None:
    """Shard ILSVRC2012. Raw: shorter side to 256, centre crop 256x256. JPEG: original bytes.

    Images Pillow can decode are made upright RGB (CMYK, grayscale, PNG-as-JPEG, EXIF rotation);
    files it cannot decode are rejected with their name and reason in the manifest, and the
    counts always add up: files seen = written + rejected.
    """
    _check_format(fmt)
    if split not in imagenet.SPLITS:
        raise DataPrepError(f"unknown --split {split!r}: choose one of {', '.join(imagenet.SPLITS)}")
    planned = imagenet.plan(src, fmt, split, rows_per_shard)
    if planned.classes != 1000:
        stderr.print(f"[yellow]note:[/] the class list has {planned.classes} wnids, not 1000: labels index "
                  f"them in sorted order; put the full {imagenet.SYNSET_MAPPING} (or the devkit) in SRC "
                  "for the standard 0..999 indices")
    if planned.unlabeled:
        stderr.print(f"[yellow]note:[/] {planned.unlabeled} image(s) have no ground truth and get label -1")
    selected = jobs.parse_slice(shards, len(planned.jobs))
    start = time.perf_counter()
    outcome = jobs.run(out_dir, "imagenet", fmt, planned.params, planned.jobs, selected,
                       imagenet.build_shard, workers, not quiet, address=address,
                       source_check=(imagenet.source_problem, (str(Path(src).resolve()), imagenet.source_samples(planned))))
    _report(outcome, out_dir, time.perf_counter() - start, sum(planned.jobs[i].rows for i in selected))


@app.command("verify")
def verify_command(directory: Annotated[str, typer.Argument(help="A dataset directory or URI.")]) -> None:
    """Re-hash every shard; exit 1 naming each missing, extra or altered file."""
    _, m = manifest.load_manifest(directory)
    with progress_bar(transient=True) as progress:
        task = progress.add_task("hashing shards", total=m["totals"]["images"])
        report = manifest.verify(directory, on_shard=lambda rows: progress.advance(task, rows))
    if report.ok:
        out.print(f"OK: {report.checked} shard(s) match {directory}/manifest.json "
                  f"(dataset sha256 {m['dataset_sha256']})")
        return
    for problem in report.problems():
        typer.echo(f"{directory}: {problem}", err=True)
    typer.echo(f"{directory} does not match its manifest: rebuild it by running the same data-prep "
               "command again (complete shards are kept)", err=True)
    raise typer.Exit(1)


@app.command("info")
def info_command(
    directory: Annotated[str, typer.Argument(help="A dataset directory or URI.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for machines.")] = False,
) -> None:
    """Summarise a dataset from its manifest (no re-hashing; see verify)."""
    _, m = manifest.load_manifest(directory)
    if as_json:
        summary = {
            "path": directory,
            "kind": m["kind"],
            "format": m["format"],
            "images": m["totals"]["images"],
            "shards": m["totals"]["shards"],
            "files_seen": m["totals"]["files_seen"],
            "disk_bytes": m["totals"]["disk_bytes"],
            "decoded_bytes": m["totals"]["decoded_bytes"],
            "dataset_sha256": m["dataset_sha256"],
            "rejected": m["rejected"],
            "converted": m["converted"],
            "params": m["params"],
            "tool_version": m["tool_version"],
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(m, directory)
    for item in m["rejected"]:
        out.print(f"rejected {item['file']}: {item['reason']}")


add_version_option(app, "data-prep", __version__)
main = run_app(app, "data-prep")


if __name__ == "__main__":
    main()
