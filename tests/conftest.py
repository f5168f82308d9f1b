"""Fixtures: CLI runners, a module-wide local Ray instance, and the test order (shared helpers
live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from helpers import run_cli


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
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """Fast tests first: a failure shows up in seconds, the slow end-to-end runs come last."""
    items.sort(key=lambda item: ("load" in item.keywords, "docker" in item.keywords, "slow" in item.keywords))
