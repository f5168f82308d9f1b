"""The bench CLI as a user meets it: paths printed, clear errors, no secrets, micro."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from bench.errors import BenchError
from bench.results import bundle
from bench.results.secrets import scrub_uri
from bench.stages import weights
from torchvision.models import resnet50

PLANTED = {"AWS_SECRET_ACCESS_KEY": "planted-aws-secret-9f8e7d", "AWS_ACCESS_KEY_ID": "AKIAPLANTED0000",
           "HF_TOKEN": "planted-token-1a2b3c"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from helpers import run_cli

    out = tmp_path_factory.mktemp("data") / "tiny"
    run_cli("data-prep", "synth", "--images", "8", "--rows-per-shard", "4", "--out", str(out), "-q", check=True)
    return out


def test_missing_imagenet_weights_say_how_to_provide_them(cli, tiny, tmp_path):
    proc = cli("bench", "run", "--data", str(tiny), "--weights", "imagenet", env={"TORCH_HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert "weights not found" in proc.stderr and "--weights random" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_weights_file_is_checked_against_the_hash_in_its_name(tmp_path, monkeypatch):
    torch.manual_seed(3)
    state = resnet50(weights=None).state_dict()
    scratch = tmp_path / "scratch.pth"
    torch.save(state, scratch)
    digest = subprocess.run(["sha256sum", str(scratch)], capture_output=True, text=True, check=True).stdout.split()[0]
    good = tmp_path / f"resnet50-{digest[:8]}.pth"
    scratch.rename(good)
    loaded, sha = weights.load_model(str(good))
    assert sha == digest
    assert torch.equal(loaded.state_dict()["fc.weight"], state["fc.weight"])

    bad = tmp_path / "resnet50-00000000.pth"
    bad.write_bytes(good.read_bytes())
    with pytest.raises(BenchError, match="is corrupt"):
        weights.load_model(str(bad))

    # `imagenet` resolves to torch hub's cache, by torchvision's file name.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert weights.imagenet_weights_path() == tmp_path / "hub" / "checkpoints" / Path(weights.IMAGENET.url).name


def test_random_weights_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    _, a = weights.load_model("random", 0)
    after = torch.rand(1)
    _, b = weights.load_model("random", 0)
    _, c = weights.load_model("random", 1)
    assert a == b != c
    assert torch.equal(before, after)


@pytest.mark.parametrize("uri, expected", [
    ("s3://bucket/prefix", "s3://bucket/prefix"),
    ("s3://AKIAXXX:supersecret@bucket/data?region=us-east-1", "s3://bucket/data?region=us-east-1"),
    ("s3://bucket/data?access_key=AK&secret_key=SK&scheme=http", "s3://bucket/data?access_key=REDACTED&secret_key=REDACTED&scheme=http"),
    ("gs://b/p?token=abc", "gs://b/p?token=REDACTED"),
    ("/local/path", "/local/path"),
])
def test_uris_are_scrubbed_of_credentials(uri, expected):
    assert scrub_uri(uri) == expected


def test_compare_needs_two_bundles_and_verify_names_problems(cli, tmp_path):
    one = cli("bench", "compare", str(tmp_path))
    assert one.returncode == 2 and "at least two bundles" in one.stderr
    proc = cli("bench", "verify", str(tmp_path), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[str(tmp_path)]["problems"] == ["SHA256SUMS: missing"]


def test_compare_names_the_settings_that_differ_and_whether_predictions_match(cli, tmp_path):
    from helpers import REPO

    published = REPO / "results" / "published" / "mini-fast-cpu"
    other = tmp_path / "other"
    shutil.copytree(published, other)
    result = json.loads((other / bundle.RESULT).read_text())
    result["config"]["batch_size"] += 1
    (other / bundle.RESULT).write_text(bundle.dumps(result))
    bundle.write_sums(other)
    rows = json.loads(cli("bench", "compare", "--json", str(published), str(other), check=True).stdout)["rows"]
    assert [r["config_differences"] for r in rows] == [[], ["batch_size"]]
    assert [r["same_predictions"] for r in rows] == [True, True]
    table = cli("bench", "compare", str(published), str(other), check=True, env={"COLUMNS": "200"}).stdout
    assert "same predictions" in table and "batch_size" in table


def test_a_setting_a_bundle_lacks_counts_as_its_default_in_compare():
    """Bundles made before a RunConfig field existed ran as its default does."""
    from bench.results.compare import config_differences

    before = {"batch_size": 16}
    assert config_differences(before, {"batch_size": 16, "whole_batches": False}) == []
    assert config_differences(before, {"batch_size": 16, "whole_batches": True}) == ["whole_batches"]
    assert config_differences({"batch_size": 16, "knob": 1}, before) == ["knob"]


def test_unknown_choices_are_clear_errors(cli):
    proc = cli("bench", "run", "mini", "--pipeline", "turbo")
    assert proc.returncode == 2 and "unknown --pipeline 'turbo'" in proc.stderr
    proc = cli("bench", "run", "huge")
    assert proc.returncode == 2 and "unknown size 'huge'" in proc.stderr


@pytest.mark.parametrize("name", ["fast", "reference"])
def test_a_predictor_with_other_weights_than_the_driver_refuses_to_start(name):
    from bench.variants import variant

    predictor = variant(name).predictor()
    _, sha = weights.load_model("random", 0)
    predictor("random", 0, "cpu", "fp32", False, expected_weights_sha256=sha)  # same weights: fine
    with pytest.raises(BenchError, match="give every node the same weights file"):
        predictor("random", 1, "cpu", "fp32", False, expected_weights_sha256=sha)


def _commands(group, path=()):
    """Every command of a click group, with the words that invoke it."""
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.mark.parametrize("module", ["bench.cli", "data_prep.cli"])
def test_every_help_text_is_shown_whole(module):
    """Each command's and option's help reaches `--help` word for word (markdown mode renders
    backticks as code and would swallow an ``<angle>`` placeholder as an HTML tag)."""
    import importlib

    import typer
    from typer.testing import CliRunner

    app = importlib.import_module(module).app
    group = typer.main.get_command(app)
    commands = list(_commands(group))
    assert len(commands) >= 4
    for words, command in commands:
        shown = CliRunner().invoke(app, [*words, "--help"], terminal_width=400, env={"COLUMNS": "400"})
        assert shown.exit_code == 0, shown.output
        flat = " ".join(shown.output.replace("│", " ").split())
        texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
        for text in texts:
            for paragraph in text.split("\f")[0].split("\n\n"):
                expected = " ".join(paragraph.replace("`", "").split())
                assert expected in flat, f"{' '.join(words)} --help lost: {expected!r}"
