"""The commands README.md and docs/*.md show, run as a newcomer would: in a fresh copy of the
repository, with a home of their own (no cached data), after `source .venv/bin/activate`.

Every documented command is in RULES, with what this test does with it: runs it as written;
runs it with a stated substitution (the smallest honest equivalent, where the command needs a
GPU, a cluster, the internet or many minutes); or leaves it out, with the reason, where another
test runs it as written or it cannot run here. A documented command that RULES does not know
fails the test, so the docs cannot grow a command that nothing runs. A command that exits
non-zero fails it, and so does one whose output, where a ``console`` block shows it, differs.
Placeholders: ``<bundle>`` is the bundle the latest `bench run` made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import fake_imagenet
from doc_commands import DocCommand, documented
from helpers import REPO

PEERS = REPO / ".venv-peers"
TINY = "data/tiny"  # made by this test: 64 images, for commands whose named size would take minutes


@dataclass(frozen=True)
class Run:
    """Run the command, with ``replace`` applied (old, new pairs) and the ``why`` of it."""

    replace: tuple[tuple[str, str], ...] = ()
    why: str = ""
    json_stdout: bool = False  # its stdout must be one JSON object
    needs_peers: bool = False  # runs only where `make peers` made .venv-peers (CI makes it)


@dataclass(frozen=True)
class Skip:
    why: str


AS_WRITTEN = Run()
MINUTES = "mini's 1,024 images take minutes on 2 cores for each variation; `make run` and `bench run --data data/mini` run mini itself"
DOCKER_LINES = Skip("run exactly as written, on Docker's defaults, by tests/release/test_docker.py "
                    "(test_the_readmes_docker_lines_run_as_written_on_dockers_defaults reads them from the README)")
REGISTRY = Skip("pulls the pinned python:3.11-slim base from a registry this machine cannot reach; "
                "tests/release/test_docker.py builds the same Dockerfiles FROM a Debian stand-in")

AWS = Skip("needs AWS; tests/unit/test_cluster_configs.py checks the config with Ray's own validation and parses "
           "these commands, and tests/release/test_cluster_journey.py runs the same data-prep -> run -> fetch "
           "sequence (the RayJob's) on two `ray start` nodes with moto's S3")
JOB_BUNDLE = Skip("the bundle a RayJob packed to a real bucket; tests/release/test_cluster_journey.py unpacks "
                  "the one its run of the RayJob's entrypoint packed to moto's S3, and verifies it")

RULES: dict[str, Run | Skip] = {
    # README.md
    "make run": AS_WRITTEN,
    "make test": Skip("this test is part of `make test`"),
    "source .venv/bin/activate": AS_WRITTEN,
    "data-prep synth mini --out data/mini": AS_WRITTEN,
    "data-prep verify data/mini": AS_WRITTEN,
    "bench run --data data/mini": AS_WRITTEN,
    "bench run mini --pipeline reference": Run((("mini", f"--data {TINY}"),),
                                               "the reference pipeline does ~5 img/s on 2 cores: 64 images"),
    "bench verify results/runs/<bundle>": AS_WRITTEN,
    "bench compare results/published/mini-fast-cpu results/runs/<bundle>": AS_WRITTEN,
    "bench report results/runs/<bundle>": AS_WRITTEN,
    "bench micro mini": AS_WRITTEN,
    "make peers": Run(needs_peers=True, why="where .venv-peers is made and current, as CI leaves it, it is a no-op"),
    ".venv-peers/bin/bench micro mini --engine spark": Run(needs_peers=True),
    ".venv-peers/bin/bench run mini --engine spark": Run((("mini", f"--data {TINY}"),), "as with Ray, mini takes "
                                                         "minutes on 2 cores: 64 images", needs_peers=True),
    ".venv-peers/bin/bench run mini --engine daft": Run((("mini", f"--data {TINY}"),), "as with Ray, mini takes "
                                                        "minutes on 2 cores: 64 images", needs_peers=True),
    ".venv-peers/bin/bench perf --peers": Skip("~10 minutes on mini; tests/integration/test_peer_engines.py runs it "
                                               "on 48 images (--data, --min-seconds 0.5) and checks every figure"),
    "bench perf": Skip("~9 minutes on mini; tests/release/test_perf_suites.py runs it on 24 images "
                       "(--data, --memory-scale 2, --min-seconds 0.3) and checks every figure"),
    "bench pack results/runs/<bundle>": AS_WRITTEN,
    "data-prep info data/mini": AS_WRITTEN,
    "bench image build": REGISTRY,
    "mkdir -p data results": AS_WRITTEN,
    'docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/data:/data" -v "$PWD/results:/results" bench:cpu mini': DOCKER_LINES,
    # docs/datasets.md
    "data-prep synth mini --format pixels --out data/mini-pixels": AS_WRITTEN,
    "data-prep synth mini --format jpeg --out data/mini-jpeg": AS_WRITTEN,
    "data-prep imagenet /datasets/ILSVRC2012 --out data/imagenet-val": Run(
        (("/datasets/ILSVRC2012", "imagenet-lookalike"),),
        "no ImageNet here: a small look-alike with its layout and oddities (tests/fake_imagenet.py)"),
    "data-prep info data/mini --json": Run(json_stdout=True),
    # docs/benchmark.md
    "bench run mini": Run((("bench run mini", f"bench run --data {TINY}"),), MINUTES),
    "bench run --data data/imagenet-val --weights imagenet": Skip(
        "torchvision's ImageNet weights cannot be downloaded here; tests/unit/test_bench_cli.py checks the error "
        "a run without them gives"),
    "bench run mini --precision fp32 --save-logits": Run((("mini", f"--data {TINY}"),), MINUTES),
    "bench run mini --engine local": Run((("mini", f"--data {TINY}"),), MINUTES),
    "bench run --data s3://BUCKET/synth-10G --address auto": Skip(
        "needs a bucket and a Ray cluster; tests/release/test_cluster_journey.py runs it on two `ray start` nodes "
        "with moto's S3"),
    # docs/docker.md
    'docker build --network host -f Dockerfile.gpu -t bench:gpu --build-arg REVISION=$(git rev-parse HEAD) '
    '--build-arg VERSION=0.1.0 --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ) .': REGISTRY,
    "bench image build --flavor cpu --base-image my/base@sha256:… --wheelhouse http://127.0.0.1:8765/": Skip(
        "its base image and wheelhouse are placeholders; tests/release/test_docker.py builds with real ones"),
    "bench image build --bake-weights": Skip("downloads torchvision's weights, which this machine cannot reach"),
    'docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD/data:/data" -v "$PWD/results:/results" bench:gpu 10G': DOCKER_LINES,
    "docker run --rm bench:gpu --help": AS_WRITTEN,
    "docker run --rm bench:gpu mini --device cpu": Skip(
        "the same image, command and fallback as the README's GPU line, which tests/release/test_docker.py "
        "runs with --device cpu on mini"),
    'docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/results:/results" bench:cpu verify /results/<bundle>': AS_WRITTEN,
    # docs/performance.md
    "bench perf --memory-scale 16": Skip("~13 minutes on 2 cores; the same cases as `bench perf` with a larger "
                                         "second run, which tests/release/test_perf_suites.py runs at scale 2"),
    "bench perf --suite gpu": Skip("needs a GPU; tests/release/test_perf_suites.py dry-runs it on the CPU "
                                   "(--device cpu, 48 images, both launchers)"),
    # docs/clusters.md
    "ray up -y docker/cluster-aws.yaml": AWS,
    'ray exec docker/cluster-aws.yaml "data-prep synth 10T --out s3://BUCKET/synth-10T --address auto"': AWS,
    'ray exec docker/cluster-aws.yaml "bench run --data s3://BUCKET/synth-10T --address auto --out /results/10T"': AWS,
    "ray rsync-down docker/cluster-aws.yaml /results/10T results/10T": AWS,
    "bench verify results/10T": AWS,
    "ray down -y docker/cluster-aws.yaml": AWS,
    "kubectl apply -f docker/rayjob.yaml": Skip(
        "needs a Kubernetes cluster with KubeRay; tests/unit/test_cluster_configs.py validates the RayJob against "
        "KubeRay's schema and tests/release/test_cluster_journey.py runs its entrypoint on a two-node cluster"),
    "bench unpack s3://BUCKET/runs/raybench-10g.tar.gz results/": JOB_BUNDLE,
    "bench verify results/10G": JOB_BUNDLE,
    "bench plan --published 300G --size 10T --rate 11581": AS_WRITTEN,
    "bench plan results/published/10G-fast-cpu --size 300G --gpu-nodes 0 --cpu-node m5.16xlarge --rate 2658": AS_WRITTEN,
    # docs/testing.md
    "make test-unit": Skip("part of `make test`, which runs this test"),
    "make test-release": Skip("the release tier (30+ minutes), which .ci/run runs after `make test`"),
    "make lock": Skip("re-resolves every dependency from PyPI and rewrites requirements/lock.txt; CI installs "
                      "the lock as committed"),
    "make setup": AS_WRITTEN,
}


def substituted(command: DocCommand, rule: Run, workdir: Path) -> str:
    text = command.text
    for old, new in rule.replace:
        assert old in text, f"{command}: the substitution {old!r} no longer applies"
        text = text.replace(old, new)
    if "<bundle>" in text:
        bundles = sorted((p for p in (workdir / "results" / "runs").iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        assert bundles, f"{command}: no bundle yet to stand for <bundle>"
        text = text.replace("<bundle>", bundles[-1].name)
    return text


def newcomers_copy(root: Path) -> Path:
    """The repository's files (as git tracks them) in ``root``, with the venv `make setup` made."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    if PEERS.exists():
        (root / ".venv-peers").symlink_to(PEERS)
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = newcomers_copy(tmp_path_factory.mktemp("newcomer"))
    fake_imagenet.make_tree(root / "imagenet-lookalike")
    return root


def test_every_documented_command_is_known_to_this_test():
    unknown = [str(c) for c in documented(REPO) if c.text not in RULES]
    assert not unknown, "documented commands this test does not know (add each to RULES):\n" + "\n".join(unknown)
    stale = set(RULES) - {c.text for c in documented(REPO)}
    assert not stale, f"RULES for commands the docs no longer show: {sorted(stale)}"


def test_the_documented_commands_run_as_written(workdir, tmp_path, images):
    """In order, each once (a command several documents show runs the first time)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8", "COLUMNS": "200", "TERM": "dumb"}
    ran = set()
    tiny = subprocess.run(["bash", "-c", f"source .venv/bin/activate && data-prep synth --images 64 --out {TINY} -q"],
                          cwd=workdir, env=env, capture_output=True, text=True)
    assert tiny.returncode == 0, tiny.stderr
    for command in documented(REPO):
        rule = RULES[command.text]
        if isinstance(rule, Skip) or command.text in ran:
            continue
        if rule.needs_peers and not (PEERS / ".installed").exists():
            assert os.environ.get("BENCH_REQUIRE_TOOLS") != "1", f"{command}: BENCH_REQUIRE_TOOLS=1 but no .venv-peers"
            continue
        ran.add(command.text)
        shell = substituted(command, rule, workdir)
        if "/results/" in shell and shell.startswith("docker run"):  # its results dir holds this test's bundles
            shutil.copytree(workdir / "results" / "runs", workdir / "results", dirs_exist_ok=True)
        proc = subprocess.run(["bash", "-c", f"source .venv/bin/activate && {shell}"], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=1800)
        where = f"{command}\n(run as: {shell})\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        assert proc.returncode == 0, where
        assert "Traceback" not in proc.stderr, where
        if command.output:
            assert proc.stdout.splitlines() == list(command.output), where
        if rule.json_stdout:
            json.loads(proc.stdout)  # one JSON object, and nothing else, on stdout
