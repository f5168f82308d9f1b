"""`bench plan`: the arithmetic redone here by hand from the bundle's own result.json and
env.json, and from the dated prices table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
CPU_BUNDLE = REPO / "results/published/10G-fast-cpu"
PRICES = json.loads((REPO / "results/reference/prices.json").read_text())["nodes"]


def test_a_cpu_only_plan_scales_the_bundles_streaming_rate_per_core():
    result = json.loads((CPU_BUNDLE / "result.json").read_text())
    env = json.loads((CPU_BUNDLE / "env.json").read_text())
    events = result["events"]
    per_core = result["images"] / (events["end"] - events["first_predictions"]) / sum(n["resources"]["CPU"] for n in env["nodes"])
    per_node = per_core * PRICES["m5.16xlarge"]["vcpus"]
    nodes = math.ceil(5000 / per_node)
    seconds = (events["first_predictions"] - events["start"]) + 16_232_000 / (nodes * per_node)
    usd = (nodes * PRICES["m5.16xlarge"]["usd_per_hour"] + PRICES["m5.4xlarge"]["usd_per_hour"]) * seconds / 3600

    ran = run_cli("bench", "plan", str(CPU_BUNDLE), "--size", "10T", "--rate", "5000", "--gpu-nodes", "0",
                  "--cpu-node", "m5.16xlarge", "--json")
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert got["projected"] is True and got["nodes"] == {"m5.16xlarge": nodes, "m5.4xlarge (head)": 1}
    assert got["img_s"] == pytest.approx(nodes * per_node) and got["seconds"] == pytest.approx(seconds)
    assert got["usd"] == pytest.approx(usd) and got["prices"]["as_of"]


def test_a_gpu_plan_from_the_published_rate_and_its_preprocessing_nodes():
    published = json.loads((REPO / "results/reference/published.json").read_text())
    run = next(r for r in published["runs"] if r["system"] == "ray" and r["size"] == "300G")
    per_node = run["throughput_img_s"] / run["gpus"] * PRICES["g4dn.12xlarge"]["gpus"]
    ran = run_cli("bench", "plan", "--published", "300G", "--size", "10T", "--rate", "11000", "--json")
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert got["nodes"]["g4dn.12xlarge"] == math.ceil(11000 / per_node)
    assert got["img_s"] == pytest.approx(math.ceil(11000 / per_node) * per_node)


@pytest.mark.parametrize("args, says", [
    ([str(CPU_BUNDLE), "--size", "10T", "--rate", "1000"], "needs a bundle run on a GPU"),
    (["--published", "300G", "--size", "10T", "--rate", "1000", "--cpu-node", "m5.16xlarge"], "operator of its own"),
    (["--published", "300G", "--size", "10T", "--rate", "1000", "--gpu-node", "p9.huge"], "no price for node type 'p9.huge'"),
    (["--published", "300G", "--size", "10T"], "give --rate"),
    (["--size", "10T", "--rate", "1"], "give bundles to plan from, or --published"),
])
def test_plans_it_cannot_make_are_refused_with_the_reason(args, says):
    ran = run_cli("bench", "plan", *args)
    assert ran.returncode != 0 and says in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
