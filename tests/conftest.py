"""Shared fixtures: CLI runners and a session-wide local Ray instance."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent


def run_cli(tool: str, *args: str, check: bool = False, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a console script as a user would (real exit codes, real stderr)."""
    exe = Path(sys.executable).parent / tool
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextmanager
def tmpfs(mount: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` at ``mount``, for full-disk faults (skips where it cannot be
    mounted: it needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def runner():
    return CliRunner()


def synth_dataset(out: Path, images: int, rows_per_shard: int = 8, *extra: str) -> Path:
    """A small synthetic data-prep dataset, made through the CLI as a user would."""
    run_cli("data-prep", "synth", "--images", str(images), "--rows-per-shard", str(rows_per_shard),
            "--out", str(out), "-q", *extra, check=True)
    return out


@pytest.fixture(scope="module")
def ray_local():
    """A small local Ray instance shared by one test module (modules that build their own
    multi-node cluster need Ray to be down)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """Fast tests first: a failure shows up in seconds, the slow end-to-end runs come last."""
    items.sort(key=lambda item: ("load" in item.keywords, "docker" in item.keywords, "slow" in item.keywords))
