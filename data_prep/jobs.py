"""Run a dataset's shard jobs in parallel, resumably, then write its manifest.

A job is a JSON spec that fully determines one shard's bytes. A shard is skipped when its
record names the same spec digest and its file still hashes to the recorded sha256; anything
else is (re)built. Builders run in worker processes and save their record themselves, so work
finished before a crash or Ctrl-C is never redone.
"""

from __future__ import annotations

import json
import posixpath
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
    address: str | None = None,
    source_check: tuple[Callable[..., str | None], tuple] | None = None,
) -> Outcome:
    """Build the ``selected`` shards that are not complete yet, then the manifest once every
    shard is. Locally in ``workers`` processes; with ``address``, as Ray tasks spread over that
    cluster's nodes, after checking on each node that it can write to ``location`` and, with
    ``source_check`` (a question and its arguments, data_prep.common.ray_cluster.ask_every_node),
    read the source."""
    dataset = DatasetDir(location)
    claim_directory(dataset, params)
    nodes = prepare_cluster(address, location, source_check) if address else None
    chosen = [jobs[i] for i in selected]
    if nodes is None:
        todo = [job for job in chosen if not is_done(dataset, job)]
    else:
        todo = chosen  # each task keeps a complete shard itself: the hashing is spread too
    kept = [len(selected) - len(todo)]  # a list, so that the Ray path can add what its tasks kept

    finished = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    try:
        with progress_bar(*columns, show=show_progress) as progress:
            bar = progress.add_task(f"{kind} shards -> images", total=sum(j.rows for j in todo))

            def done(job: ShardJob, was_kept: bool = False) -> None:
                if was_kept:
                    kept.append(1)
                else:
                    finished.append(job)
                progress.advance(bar, job.rows)

            try:
                if nodes is not None:
                    _run_on_ray(location, todo, build, nodes, done)
                elif workers <= 1 or len(todo) <= 1:
                    for job in todo:
                        build(location, job)
                        done(job)
                else:
                    _run_parallel(location, todo, build, workers, done)
            except KeyboardInterrupt as exc:
                raise Interrupted(
                    f"{sum(kept) + len(finished)} of {len(selected)} shard(s) were complete in {location} when "
                    "stopped (shards in progress finish too); all are kept: run the same command again to finish the rest"
                ) from exc
        if nodes is not None:  # a worker killed mid-shard left its temporary; its shard was made again
            for sub in (SHARD_DIR, RECORD_DIR):
                dataset.remove_stale_temporaries(sub)
        manifest = finalize(dataset, kind, fmt, params, jobs)
    except OSError as exc:  # a shard, its record or the manifest
        if not is_disk_full(exc):
            raise
        raise DataPrepError(
            f"no space left on the device holding {location}: {sum(kept) + len(finished)} of {len(selected)} "
            "shard(s) are complete and kept (anything being written was discarded); free space and run the "
            "same command again to finish the rest"
        ) from exc
    return Outcome(len(finished), sum(kept), len(jobs), manifest)


PROBE = "_records/.cluster-probe"


def location_problem(location: str, token: bytes) -> str | None:
    """On one node: can it see the dataset directory the driver made (the driver's probe, with
    its token) and write there? None if so."""
    import uuid

    dataset = DatasetDir(location)
    try:
        seen = dataset.read_bytes(PROBE)
    except OSError as exc:
        return f"cannot see {location} ({str(exc).splitlines()[0]})"
    if seen != token:
        return f"sees another directory at {location}, not the driver's"
    try:
        dataset.write_bytes(f"_records/.probe-{uuid.uuid4().hex}", b"")
    except OSError as exc:
        return f"cannot write to {location} ({str(exc).splitlines()[0]})"
    return None


def prepare_cluster(address: str, location: str, source_check) -> list[dict[str, Any]]:
    """Join the cluster; every node that will build shards must see and write ``location`` (and
    pass ``source_check``), or nothing is built. Returns those nodes."""
    import uuid

    from data_prep.common.ray_cluster import alive_nodes, ask_every_node, join

    join(address)
    nodes = [n for n in alive_nodes() if n["resources"].get("CPU", 0) > 0]
    if not nodes:
        raise DataPrepError(f"the Ray cluster at {address} has no node with CPUs to build shards on")
    dataset = DatasetDir(location)
    token = uuid.uuid4().hex.encode()
    dataset.write_bytes(PROBE, token)
    try:
        problems = ask_every_node(nodes, location_problem, location, token)
    finally:
        for name in dataset.list_files(RECORD_DIR):
            if posixpath.basename(name).startswith((".cluster-probe", ".probe-")):
                dataset.fs.delete_file(dataset.path(name))
    if problems:
        raise DataPrepError(
            f"{len(problems)} of {len(nodes)} node(s) cannot use {location}: " + "; ".join(problems)
            + ". Every node writes shards there: use s3://... (each node with credentials for the bucket) or a "
            "filesystem every node mounts at the same path; nothing was built")
    if source_check is not None:
        question, args = source_check
        problems = ask_every_node(nodes, question, *args)
        if problems:
            raise DataPrepError(f"{len(problems)} of {len(nodes)} node(s) cannot read the source: " + "; ".join(problems)
                                + ". Every node reads it: mount it at the same path on each; nothing was built")
    return nodes


def keep_or_build(location: str, job: ShardJob, build: Builder) -> bool:
    """On a node: keep the shard if it is complete (its record and bytes agree), else build it;
    whether it was kept."""
    if is_done(DatasetDir(location), job):
        return True
    build(location, job)
    return False


def _run_on_ray(location: str, todo: list[ShardJob], build: Builder, nodes: list[dict[str, Any]], done) -> None:
    """Shard jobs as Ray tasks spread over the nodes, a few per CPU in flight. A task lost with
    its worker or node is run again elsewhere (Ray's retries); its half-written shard only ever
    existed under a temporary name."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=3, scheduling_strategy="SPREAD")(keep_or_build)
    window = max(2, int(2 * sum(n["resources"].get("CPU", 0) for n in nodes)))
    queued = list(reversed(todo))
    pending: dict[Any, ShardJob] = {}
    try:
        while queued or pending:
            while queued and len(pending) < window:
                job = queued.pop()
                pending[remote.remote(location, job, build)] = job
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    was_kept = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the builder's own error, on its node
                    raise exc.as_instanceof_cause() from None
                done(job, was_kept)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise


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
