"""Fixtures: CLI runners, a module-wide local Ray instance, and the test order (shared helpers
live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from data_prep.common.cli import VERBOSE_ENV
from helpers import run_cli

# The Docker images and the compose cluster, as fixtures for the tests that need them.
pytest_plugins = ["docker_support"]


@pytest.fixture(autouse=True)
def no_verbose_left_behind():
    """A CLI invoked in-process with --verbose sets RAYBENCH_VERBOSE for the whole process (so
    that Ray's workers see it); put it back after each test, or every later test would be
    verbose, its subprocesses included."""
    before = os.environ.get(VERBOSE_ENV)
    yield
    if before is None:
        os.environ.pop(VERBOSE_ENV, None)
    else:
        os.environ[VERBOSE_ENV] = before


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def ray_local():
    """A small local Ray instance shared by one test module (modules that build their own
    multi-node cluster need Ray to be down)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # "local": a Ray of its own, even where a `ray start` cluster runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


TIERS = ("unit", "integration", "release")


def pytest_collection_modifyitems(config, items):
    """Unit tests first, then integration, then release: a failure shows up in seconds."""
    def tier(item) -> int:
        parts = item.path.parts
        return next((TIERS.index(t) for t in TIERS if t in parts), len(TIERS))

    items.sort(key=tier)
