"""docker/entrypoint.sh routes arguments as a user expects (run with stub commands, no Docker)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO

ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


@pytest.fixture
def stubs(tmp_path):
    """`bench`, `data-prep` and `ray` that echo their arguments; `python3` that says 'no GPU'."""
    for name in ("bench", "data-prep", "ray"):
        (tmp_path / name).write_text(f'#!/bin/sh\necho "{name} $*"\n')
    (tmp_path / "python3").write_text("#!/bin/sh\nexit 1\n")
    for stub in tmp_path.iterdir():
        stub.chmod(0o755)
    return tmp_path


def entry(stubs: Path, *args: str, flavor: str = "cpu") -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{stubs}:/usr/bin:/bin", "BENCH_FLAVOR": flavor}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("args, expected", [
    ((), "bench run mini"),
    (("10G",), "bench run 10G"),
    (("--data", "/data/x"), "bench run --data /data/x"),
    (("run", "mini", "-q"), "bench run mini -q"),
    (("--help",), "bench --help"),
    (("verify", "/results/b"), "bench verify /results/b"),
    (("env",), "bench env"),
    (("pack", "/results/b"), "bench pack /results/b"),
    (("unpack", "/results/b.tar.gz", "/results"), "bench unpack /results/b.tar.gz /results"),
    (("perf", "mini"), "bench perf mini"),
    (("data-prep", "info", "/data/x"), "data-prep info /data/x"),
    (("ray", "start", "--head"), "ray start --head"),
])
def test_arguments_are_routed(stubs, args, expected):
    proc = entry(stubs, *args)
    assert proc.returncode == 0 and proc.stdout.strip() == expected


@pytest.mark.parametrize("args", [("10G",), ("run", "mini"), ()])
def test_gpu_image_without_a_gpu_refuses_clearly(stubs, args):
    proc = entry(stubs, *args, flavor="gpu")
    assert proc.returncode == 3
    assert "sees no GPU" in proc.stderr and "--gpus all" in proc.stderr and "--device cpu" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [("mini", "--device", "cpu"), ("run", "10G", "--device=cpu"), ("--help",), ("env",)])
def test_gpu_image_runs_on_cpu_only_when_asked(stubs, args):
    proc = entry(stubs, *args, flavor="gpu")
    assert proc.returncode == 0, proc.stderr


def test_a_results_directory_the_user_cannot_write_is_named_with_the_fix():
    """As Docker makes a missing bind-mount source (root's, mode 755), seen by a container user
    that is not root."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root, to run the entrypoint as another user")
    scratch = Path(tempfile.mkdtemp(prefix="entrypoint-"))  # under /tmp, which anyone may enter
    try:
        scratch.chmod(0o755)
        stubs = scratch / "bin"
        stubs.mkdir(mode=0o755)
        (stubs / "bench").write_text('#!/bin/sh\necho "bench $*"\n')
        (stubs / "bench").chmod(0o755)
        results = scratch / "results"
        results.mkdir(mode=0o755)
        env = {"PATH": f"{stubs}:/usr/bin:/bin", "BENCH_RESULTS_DIR": str(results), "BENCH_DATA_DIR": str(results),
               "HOME": str(scratch), "BENCH_FLAVOR": "cpu"}
        run_as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", str(ENTRYPOINT)]
        refused = subprocess.run([*run_as_nobody, "mini"], capture_output=True, text=True, env=env)
        assert refused.returncode == 2 and refused.stdout == ""
        assert f"{results} is not writable" in refused.stderr and "belongs to 0:0" in refused.stderr
        assert "mkdir -p data results" in refused.stderr and '--user "$(id -u):$(id -g)"' in refused.stderr
        results.chmod(0o777)
        ran = subprocess.run([*run_as_nobody, "mini"], capture_output=True, text=True, env=env)
        assert ran.returncode == 0 and ran.stdout.strip() == "bench run mini"
    finally:
        shutil.rmtree(scratch)


def test_cluster_configs_parse_and_use_both_images():
    compose = yaml.safe_load((REPO / "docker/compose.yaml").read_text())
    assert set(compose["services"]) == {"head", "cpu-worker", "gpu-worker"}
    assert "--num-gpus=1" in compose["services"]["gpu-worker"]["command"]
    launcher = yaml.safe_load((REPO / "docker/cluster-aws.yaml").read_text())
    shapes = {name: t["node_config"]["InstanceType"] for name, t in launcher["available_node_types"].items()}
    assert shapes["gpu-worker"] == "g4dn.12xlarge" and shapes["cpu-worker"] == "m5.16xlarge"
    job = yaml.safe_load((REPO / "docker/rayjob.yaml").read_text())
    groups = {g["groupName"]: g["template"]["spec"]["containers"][0]["image"] for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]}
    assert groups == {"gpu": "REGISTRY/bench:gpu", "cpu": "REGISTRY/bench:cpu"}
