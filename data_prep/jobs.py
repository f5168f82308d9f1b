"""Run a dataset's shard jobs in parallel, resumably, then write its manifest.

A job is a JSON spec that fully determines one shard's bytes. A shard is skipped when its
record names the same spec digest and its file still hashes to the recorded sha256; anything
else is (re)built. Builders run in worker processes and save their record themselves, so work
finished before a crash or Ctrl-C is never redone.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from data_prep.common.errors import DataPrepError, Interrupted, is_disk_full
from data_prep.common.progress import progress_bar
from data_prep.common.manifest import (
    RECORD_DIR,
    SHARD_DIR,
    ShardRecord,
    build_manifest,
    canonical_json,
    digest_of,
    shard_name,
    write_manifest,
)
from data_prep.common.storage import DatasetDir

PARAMS_FILE = f"{RECORD_DIR}/params.json"


@dataclass(frozen=True)
class ShardJob:
    index: int
    spec: dict[str, Any]  # determines the shard's bytes; its digest is stored in the record
    rows: int  # expected number of input items (for progress)
    context: dict[str, Any] = field(default_factory=dict)  # where inputs live; not digested

    @property
    def digest(self) -> str:
        return digest_of(self.spec)

    @property
    def file(self) -> str:
        return shard_name(self.index)


Builder = Callable[[str, ShardJob], ShardRecord]


@dataclass
class Outcome:
    built: int
    skipped: int
    shards_total: int
    manifest: dict[str, Any] | None  # None while other slices are still missing


def parse_slice(text: str | None, total: int) -> range:
    """``i:j`` (Python slice syntax, either end optional) over ``total`` shards."""
    if not text:
        return range(total)
    try:
        start_text, stop_text = text.split(":")
        start = int(start_text) if start_text else 0
        stop = int(stop_text) if stop_text else total
    except ValueError:
        raise DataPrepError(f"--shards {text!r} is not of the form i:j (e.g. 0:100)") from None
    if not 0 <= start < stop <= total:
        raise DataPrepError(f"--shards {text!r} is outside 0:{total} (this dataset has {total} shards)")
    return range(start, stop)


def claim_directory(dataset: DatasetDir, params: dict[str, Any]) -> None:
    """Refuse to mix two different datasets in one directory; remember this one's params."""
    dataset.ensure(SHARD_DIR)
    dataset.ensure(RECORD_DIR)
    if dataset.exists(PARAMS_FILE):
        existing = json.loads(dataset.read_bytes(PARAMS_FILE))
        if existing != params:
            raise DataPrepError(
                f"{dataset.location} already holds a different dataset ({existing}); "
                "choose another --out or delete that directory"
            )
    else:
        dataset.write_bytes(PARAMS_FILE, canonical_json(params))
    for sub in (SHARD_DIR, RECORD_DIR):
        dataset.remove_stale_temporaries(sub)


def is_done(dataset: DatasetDir, job: ShardJob) -> bool:
    record = ShardRecord.load(dataset, job.index)
    return (
        record is not None
        and record.job == job.digest
        and dataset.exists(job.file)
        and dataset.sha256(job.file) == record.sha256
    )


def run(
    location: str,
    kind: str,
    fmt: str,
    params: dict[str, Any],
    jobs: list[ShardJob],
    selected: range,
    build: Builder,
    workers: int,
    show_progress: bool = True,
) -> Outcome:
    dataset = DatasetDir(location)
    claim_directory(dataset, params)
    todo = [job for job in (jobs[i] for i in selected) if not is_done(dataset, job)]
    skipped = len(selected) - len(todo)

    finished = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    try:
        with progress_bar(*columns, show=show_progress) as progress:
            bar = progress.add_task(f"{kind} shards -> images", total=sum(j.rows for j in todo))

            def done(job: ShardJob) -> None:
                finished.append(job)
                progress.advance(bar, job.rows)

            try:
                if workers <= 1 or len(todo) <= 1:
                    for job in todo:
                        build(location, job)
                        done(job)
                else:
                    _run_parallel(location, todo, build, workers, done)
            except KeyboardInterrupt as exc:
                raise Interrupted(
                    f"{skipped + len(finished)} of {len(selected)} shard(s) were complete in {location} when "
                    "stopped (shards in progress finish too); all are kept: run the same command again to finish the rest"
                ) from exc
        manifest = finalize(dataset, kind, fmt, params, jobs)
    except OSError as exc:  # a shard, its record or the manifest
        if not is_disk_full(exc):
            raise
        raise DataPrepError(
            f"no space left on the device holding {location}: {skipped + len(finished)} of {len(selected)} "
            "shard(s) are complete and kept (anything being written was discarded); free space and run the "
            "same command again to finish the rest"
        ) from exc
    return Outcome(len(todo), skipped, len(jobs), manifest)


def _ignore_sigint() -> None:
    """Workers ignore Ctrl-C and SIGTERM: only the main process stops handing out work, and a
    shard in progress finishes with both its file and its record (a worker killed between the
    two left a complete shard without a record, rebuilt later but needlessly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run_parallel(location: str, todo: list[ShardJob], build: Builder, workers: int, done) -> None:
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
    try:
        pending = {pool.submit(build, location, job): job for job in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                future.result()  # re-raise a worker's failure here
                done(job)
    except BaseException:
        # Ctrl-C or a failed shard: stop handing out work. Finished shards keep their records,
        # unfinished ones exist only as temporaries that the next run deletes. The futures are
        # cancelled here, not only through shutdown(cancel_futures=True): the pool's manager
        # thread honours that flag only while the executor object is alive, and once it was
        # collected on the way out the queued shards all ran (seen: 24 of 24 after SIGTERM).
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def finalize(dataset: DatasetDir, kind: str, fmt: str, params: dict[str, Any], jobs: list[ShardJob]):
    """Write manifest.json and SHA256SUMS once every shard of the dataset has its record."""
    records = []
    for job in jobs:
        record = ShardRecord.load(dataset, job.index)
        if record is None or record.job != job.digest:
            return None
        records.append(record)
    manifest = build_manifest(kind, fmt, params, records)
    write_manifest(dataset, manifest)
    return manifest
