"""The cluster configs as the tools that consume them check them: Ray's own launcher validation
(what `ray up` runs) and KubeRay's RayJob v1 schema; and the commands written in them parse
with the kit's CLIs, in the order data -> run -> fetch. (The journey test runs the RayJob's
entrypoint for real on a two-node cluster.)"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests/reference/kuberay/rayjob-v1-openapi-schema.json"  # ray-project/kuberay at feeaf72


def test_the_aws_launcher_config_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "docker/cluster-aws.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` does before it starts anything
    broken = yaml.safe_load((REPO / "docker/cluster-aws.yaml").read_text())
    del broken["available_node_types"]["gpu-worker"]["resources"]
    with pytest.raises(Exception, match="'resources' is a required property"):
        validate_config(prepare_config(broken))


def test_the_rayjob_validates_against_kuberays_schema_and_reads_s3_with_a_secret():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    job = yaml.safe_load((REPO / "docker/rayjob.yaml").read_text())
    jsonschema.validate(job, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**job, "spec": {**job["spec"], "shutdownAfterJobFinishes": "yes"}}, schema)
    spec = job["spec"]["rayClusterSpec"]
    pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    for pod in pods:  # every pod reads the data, so every pod has the bucket's credentials
        (container,) = pod["spec"]["containers"]
        assert {"secretRef": {"name": "raybench-s3"}} in container["envFrom"]
    assert "s3://BUCKET/" in job["spec"]["entrypoint"] and "/data" not in job["spec"]["entrypoint"]


def parses(line: str) -> None:
    """``line`` is a data-prep or bench command its CLI accepts (options and types), not run."""
    import click
    import typer.main

    from bench.cli import app as bench_app
    from data_prep.cli import app as data_prep_app

    words = shlex.split(line)
    command = typer.main.get_command({"bench": bench_app, "data-prep": data_prep_app}[words[0]])
    parent = click.Context(command, info_name=words[0])
    sub = command.get_command(parent, words[1])
    assert sub is not None, f"{words[0]} has no command {words[1]!r}"
    sub.make_context(words[1], words[2:], parent=parent)  # raises click's UsageError on a bad option


def rayjob_commands() -> list[str]:
    entrypoint = yaml.safe_load((REPO / "docker/rayjob.yaml").read_text())["spec"]["entrypoint"]
    inner = shlex.split(entrypoint)
    assert inner[:2] == ["bash", "-c"]
    return [c.strip() for c in inner[2].split("&&")]


def aws_commands() -> list[str]:
    lines = [l.removeprefix("#").strip() for l in (REPO / "docker/cluster-aws.yaml").read_text().splitlines()]
    return [l for l in lines if l.startswith(("ray ", "bench ", "data-prep "))]


def test_both_configs_write_the_real_sequence_make_data_on_the_cluster_run_fetch():
    job = rayjob_commands()
    assert [c.split()[:2] for c in job] == [["data-prep", "synth"], ["bench", "run"], ["bench", "pack"]]
    aws = aws_commands()
    assert [c.split()[:2] for c in aws] == [["ray", "up"], ["ray", "exec"], ["ray", "exec"], ["ray", "rsync-down"],
                                            ["bench", "verify"], ["ray", "down"]]
    inner = [shlex.split(c)[3] for c in aws if c.startswith("ray exec")]
    for sequence in (job, inner):
        made, run = shlex.split(sequence[0]), shlex.split(sequence[1])
        out = made[made.index("--out") + 1]
        assert out.startswith("s3://") and "--address" in made  # made by the cluster, where every node reads
        assert run[run.index("--data") + 1] == out and run[run.index("--address") + 1] == "auto"
        for line in sequence:
            parses(line)
    for line in (aws[4], job[2]):
        parses(line)
