"""Everything under results/ is data anyone can check: published bundles verify, and the
reference benchmark's figures are the ones it published."""

from __future__ import annotations

import json

import pytest

from bench.results import bundle, reference
from bench.results.compare import config_differences
from bench.config import RunConfig, resolve
from helpers import REPO

PUBLISHED = REPO / "results" / "published"
BUNDLES = sorted(p for p in PUBLISHED.iterdir() if p.is_dir()) if PUBLISHED.is_dir() else []


def test_the_kit_publishes_bundles():
    assert BUNDLES, "results/published holds no bundle"


@pytest.mark.parametrize("path", BUNDLES, ids=[p.name for p in BUNDLES])
def test_published_bundle_verifies(path):
    verdict = bundle.verify(path)
    assert verdict.ok, verdict.problems
    result = json.loads((path / bundle.RESULT).read_text())
    assert result["complete"] is True and result["images"] > 0


# What "auto" precision resolves to, by the model's device (bench.stages.precision.default_for): the
# CPU's own capabilities decide between bf16 and int8, so a bundle records the resolved value.
AUTO_PRECISIONS = {"cpu": {"bf16", "int8"}, "cuda": {"fp16"}}


@pytest.mark.parametrize("path", BUNDLES, ids=[p.name for p in BUNDLES])
def test_published_bundle_ran_todays_defaults(path):
    """A published bundle is what `bench run SIZE [--pipeline seed]` does with this code: a
    changed default fails here until the bundles are made again (README, "Published bundles")."""
    result = json.loads((path / bundle.RESULT).read_text())
    recorded, kind = result["config"], result["placement"]["device"]
    resolved = {"precision": recorded["precision"]} if result["pipeline"] == "fast" else {}
    today = resolve(RunConfig(pipeline=result["pipeline"], **resolved), kind, result["dataset"]["format"])
    assert config_differences(recorded, today.as_dict()) == []  # a field added since counts as its default
    if resolved:
        assert recorded["precision"] in AUTO_PRECISIONS[kind]
    assert result["weights"] == "random" and result["dataset"]["kind"] == "synth"
    kit = json.loads((path / bundle.ENV).read_text())["kit"]
    assert kit["commit"] and kit["dirty"] is False, "published bundles come from a clean checkout"


def test_reference_figures_are_the_published_ones():
    figures = {r["size"]: r["throughput_img_s"] for r in reference.published()["runs"] if r["system"] == "ray"}
    assert figures == {"10G": 312.46, "300G": 2658.31, "10T": 11580.96}
    assert reference.ray_run_for("10G")["images"] == 16_232
    assert reference.ray_run_for("mini") is None
    micro = {m["system"]: m["seconds"] for m in reference.published()["microbenchmark"]}
    assert micro == {"ray": 4.383, "spark": 128.9}
