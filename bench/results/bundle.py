"""The result bundle: one writer, one verifier; everything else reads bundles through them.

A bundle is a directory with result.json (versioned schema), env.json, predictions.parquet,
ray_data_stats.txt and SHA256SUMS (``sha256sum -c`` format, covering every other file). It is
assembled under a temporary name and renamed into place only when complete, so a failed run
never leaves a bundle that verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.errors import BenchError
from bench.results.result import READABLE_VERSIONS, SCHEMA_VERSION, Result

RESULT = "result.json"
ENV = "env.json"
PREDICTIONS = "predictions.parquet"
STATS = "ray_data_stats.txt"
TELEMETRY = "telemetry.parquet"
REPORT = "report.html"
SUMS = "SHA256SUMS"
INCOMPLETE = "INCOMPLETE.json"


def predictions_sha256(path: Path) -> str:
    """Canonical: rows sorted by id, one ``id<TAB>top1`` line each. Independent of row order,
    batch sizes and extra columns, so equal data + weights + hardware class give equal values."""
    table = pq.read_table(path, columns=["id", "top1"])
    table = table.take(pc.sort_indices(table, sort_keys=[("id", "ascending")]))
    digest = hashlib.sha256()
    for ident, top1 in zip(table.column("id").to_pylist(), table.column("top1").to_pylist()):
        digest.update(f"{ident}\t{top1}\n".encode())
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_sums(directory: Path, names: list[str] | None = None) -> None:
    """``directory``/SHA256SUMS over ``names`` (paths relative to it; default: every other file
    in it), in ``sha256sum -c`` format."""
    if names is None:
        names = sorted(p.name for p in directory.iterdir() if p.name != SUMS)
    (directory / SUMS).write_text("".join(f"{sha256_file(directory / n)}  {n}\n" for n in names))


# A staging directory: ".NAME.partial-HOST-PID-RANDOM", HOST and PID the writing process's (the
# host because results directories are shared between machines and containers).
_STAGING = re.compile(r"^\.(?P<name>.+)\.partial-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def staging_name(final: Path) -> str:
    return f".{final.name}.partial-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def name_of(path: Path) -> str:
    """A bundle's name, also while it is still being staged (its report is written there)."""
    match = _STAGING.match(path.name)
    return match["name"] if match else path.name


def abandoned_staging(parent: Path) -> list[Path]:
    """Staging directories in ``parent`` whose writer, on this host, is gone. A run killed
    outright (SIGKILL, the OOM killer, or a Ray cluster that died under it: Ray then ends the
    driver itself) cannot clean up after itself; this is how the next run finds what it left."""
    if not parent.is_dir():
        return []
    host = socket.gethostname()
    found = []
    for path in sorted(parent.glob(".*.partial-*")):
        match = _STAGING.match(path.name)
        if match and path.is_dir() and match["host"] == host and not psutil.pid_exists(int(match["pid"])):
            found.append(path)
    return found


class BundleWriter:
    """Collects a bundle's files in a staging directory next to ``final``; ``abandoned`` lists
    the staging directories that killed runs left beside it."""

    def __init__(self, final: Path):
        if final.exists() and any(final.iterdir()):
            raise BenchError(f"{final} already exists and is not empty; choose another --out")
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.abandoned = abandoned_staging(final.parent)
        self.staging = final.parent / staging_name(final)
        self.staging.mkdir()

    def path(self, name: str) -> Path:
        return self.staging / name

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text)

    def commit(self, result: Result, env: dict[str, Any],
               finish: Callable[[Path], None] | None = None) -> Path:
        """Write result.json (its predictions_sha256 taken from the predictions here) and
        env.json, let ``finish`` add files made from them (the report), then SHA256SUMS, and
        move the bundle into place."""
        result.schema_version = SCHEMA_VERSION
        result.predictions_sha256 = predictions_sha256(self.path(PREDICTIONS))
        self.write_text(RESULT, dumps(result.to_dict()))
        self.write_text(ENV, dumps(env))
        if finish is not None:
            finish(self.staging)
        write_sums(self.staging)
        if self.final.exists():
            self.final.rmdir()
        self.staging.rename(self.final)
        return self.final

    def keep_incomplete(self, details: dict[str, Any]) -> Path:
        """Move what exists (the predictions so far) into place under INCOMPLETE.json and
        without SHA256SUMS: kept for a post-mortem, never taken for a result."""
        self.write_text(INCOMPLETE, dumps({"complete": False, **details}))
        if self.final.exists():
            self.final.rmdir()
        self.staging.rename(self.final)
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


@dataclass
class Verdict:
    bundle: Path
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(bundle: Path) -> Verdict:
    """Check every digest, that no file is missing or extra, and the result's schema and
    internal consistency (a doctored figure that no longer adds up is caught too)."""
    verdict = Verdict(bundle)
    problems = verdict.problems
    if not bundle.is_dir():
        problems.append(f"{bundle} is not a bundle directory")
        return verdict
    if (bundle / INCOMPLETE).is_file():
        try:
            details = json.loads((bundle / INCOMPLETE).read_text())
        except ValueError:
            details = {}
        problems.append(f"incomplete run ({details.get('reason', 'interrupted')} after {details.get('images_written', '?')} "
                        f"of {details.get('images_expected', '?')} images): not a result")
        return verdict
    sums = bundle / SUMS
    if not sums.is_file():
        problems.append(f"{SUMS}: missing")
        return verdict
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.read_text().splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or "/" in name or name in ("", ".", ".."):
            problems.append(f"{SUMS}: line {number} is malformed")
            continue
        listed[name] = digest
    present = {p.name for p in bundle.iterdir()} - {SUMS}
    for name in sorted(set(listed) - present):
        problems.append(f"{name}: missing")
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: extra file not listed in {SUMS}")
    for name in sorted(set(listed) & present):
        path = bundle / name
        if not path.is_file() or path.is_symlink():
            problems.append(f"{name}: not a regular file")
        elif sha256_file(path) != listed[name]:
            problems.append(f"{name}: sha256 does not match {SUMS}")
    for name in (RESULT, ENV, PREDICTIONS):
        if name not in listed:
            problems.append(f"{name}: required file not in bundle")
    if problems:
        return verdict
    problems.extend(_check_result(bundle))
    return verdict


def _check_result(bundle: Path) -> list[str]:
    try:
        data = json.loads((bundle / RESULT).read_text())
    except ValueError as exc:
        return [f"{RESULT}: not valid JSON ({exc})"]
    problems = [f"{RESULT}: {problem}" for problem in Result.type_problems(data)]
    if problems:
        return problems
    if data["schema_version"] not in READABLE_VERSIONS:
        return [f"{RESULT}: schema_version {data['schema_version']} is not one this kit reads "
                f"({', '.join(map(str, READABLE_VERSIONS))})"]
    result = Result.from_dict(data)
    rows = pq.ParquetFile(bundle / PREDICTIONS).metadata.num_rows
    return [f"{RESULT}: {problem}" for problem in result.consistency_problems(rows, predictions_sha256(bundle / PREDICTIONS))]


def load(bundle: Path) -> Result:
    """The Result of a bundle that verifies; a clear error naming the problem otherwise."""
    verdict = verify(bundle)
    if not verdict.ok:
        raise BenchError(f"{bundle} does not verify: {verdict.problems[0]} (run `bench verify {bundle}`)")
    return Result.from_dict(json.loads((bundle / RESULT).read_text()))


def env_of(bundle: Path) -> dict[str, Any]:
    """A bundle's env.json (load() it first: that verifies it)."""
    return json.loads((bundle / ENV).read_text())
