"""The pinned images, built and run for real (needs a Docker daemon; .ci/run starts one)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from bench import docker_images
from bench.results import bundle
from data_prep.common.cores import usable_cores

from docker_support import REPO, docker, on_head, synth_on_head


def test_hadolint_passes_on_both_dockerfiles():
    import shutil as _shutil

    hadolint = _shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    for dockerfile in ("Dockerfile.gpu", "Dockerfile.cpu"):
        proc = subprocess.run([hadolint, dockerfile], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, f"{dockerfile}:\n{proc.stdout}{proc.stderr}"


def test_the_two_dockerfiles_differ_only_in_their_flavor():
    cpu = (REPO / "Dockerfile.cpu").read_text().splitlines()
    gpu = (REPO / "Dockerfile.gpu").read_text().splitlines()
    body = lambda lines: [l for l in lines if not l.startswith("#") and "BENCH_FLAVOR=" not in l]  # noqa: E731
    gpu_only = {"ENV NVIDIA_VISIBLE_DEVICES=all \\", "    NVIDIA_DRIVER_CAPABILITIES=compute,utility \\",
                '    NVIDIA_REQUIRE_CUDA="cuda>=13.0"', ""}
    assert [l for l in body(gpu) if l not in gpu_only] == [l for l in body(cpu) if l != ""]


def test_images_have_the_same_packages_labels_and_user(images, base_image):
    fingerprints = {flavor: docker("run", "--rm", docker_images.tag_for(flavor), "env").stdout.strip() for flavor in docker_images.FLAVORS}
    assert fingerprints["cpu"] == fingerprints["gpu"] and "fingerprint" in fingerprints["cpu"]
    for flavor in docker_images.FLAVORS:
        attrs = json.loads(docker("image", "inspect", docker_images.tag_for(flavor)).stdout)[0]
        labels = attrs["Config"]["Labels"]
        # The commit checked out when the images were built (HEAD may move during the session).
        assert labels["org.opencontainers.image.revision"] == images["revision"]
        assert len(images["revision"]) == 40
        assert labels["org.opencontainers.image.base.name"] == base_image
        assert labels["org.opencontainers.image.created"].endswith("Z")
        assert attrs["Config"]["User"] == "10001:10001"
        assert set(attrs["Config"]["Volumes"]) == {"/data", "/results"}


def test_gpu_image_help_and_clear_refusal_without_a_gpu(images):
    helped = docker("run", "--rm", "bench:gpu", "--help")
    assert helped.returncode == 0 and "Usage" in helped.stdout
    refused = docker("run", "--rm", "bench:gpu", "mini")
    assert refused.returncode == 3
    assert "sees no GPU" in refused.stderr and "--device cpu" in refused.stderr


@pytest.mark.parametrize("limit, cores", [((), None), (("--cpus", "1"), 1), (("--cpuset-cpus", "0"), 1)])
def test_cpu_image_sizes_torch_threads_to_the_containers_cpu_limit(images, limit, cores):
    # Sized to the machine, a CPU model actor's threads would queue for a quota they cannot use
    # (--cpus 1 on 2 cores: 2 threads ran 1.4-1.6x slower than 1, docs/performance.md).
    probe = ("import torch; from bench.stages.model import resolve_device; from data_prep.common.cores import usable_cores; "
             "resolve_device('cpu'); print(usable_cores(), torch.get_num_threads())")
    ran = docker("run", "--rm", *limit, "--entrypoint", "python3", "bench:cpu", "-c", probe)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [str(cores or usable_cores())] * 2


def readme_container_lines() -> list[str]:
    """The README's "Containers" block after its `bench image build` line: what a newcomer types."""
    from doc_commands import commands

    block = [c.text for c in commands(REPO / "README.md", REPO) if c.text.startswith(("mkdir", "docker run"))]
    assert block and block[0].startswith("mkdir") and any("bench:cpu" in c for c in block), block
    return block


# The mission's own line, written in the README's prose beside the block.
GPU_LINE = "docker run --gpus all bench:gpu 10G"

# No GPU here: the GPU line runs with its --gpus flag taken out, on mini, with --device cpu (the
# GPU image's fallback, only when asked), which the image needs and the line as written lacks.
GPU_SUBSTITUTE = (("--gpus all ", ""), (" bench:gpu 10G", " bench:gpu mini --device cpu"))


def run_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    ran = subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert ran.returncode == 0, f"{line}\n{ran.stderr[-3000:]}"
    assert "Traceback" not in ran.stderr, ran.stderr[-3000:]
    return ran


def test_the_readmes_docker_lines_run_as_written_on_dockers_defaults(images, tmp_path):
    """The README's lines exactly (no --shm-size: Docker's 64 MB /dev/shm), in a fresh directory."""
    bundles = []
    for line in readme_container_lines():
        before = set((tmp_path / "results").glob("*")) if (tmp_path / "results").is_dir() else set()
        ran = run_line(line, tmp_path)
        if line.startswith("docker run"):
            assert "/dev/shm has" in ran.stderr and "--shm-size=" in ran.stderr, ran.stderr[-3000:]  # the notice
            made = set((tmp_path / "results").glob("*")) - before
            assert len(made) == 1, made
            bundles.extend(made)
    assert len(bundles) == 1
    for path in bundles:
        assert bundle.verify(path).ok
        assert path.stat().st_uid == os.getuid()  # the files are the user's (--user)
    cpu_sha = json.loads((bundles[0] / bundle.RESULT).read_text())["predictions_sha256"]

    assert f"`{GPU_LINE}`" in (REPO / "README.md").read_text()
    line = GPU_LINE
    for old, new in GPU_SUBSTITUTE:
        line = line.replace(old, new)
    try:
        # No -v: the bundle stays in the container's volume, so the printed checksum is the check.
        ran = run_line(line, tmp_path)
    finally:
        stale = docker("ps", "-aq", "--filter", "ancestor=bench:gpu").stdout.split()
        if stale:
            docker("rm", "-v", *stale)
    assert "/dev/shm has" in ran.stderr and "--shm-size=" in ran.stderr, ran.stderr[-3000:]
    # The same packages in both images: the same answers on this CPU.
    assert f"predictions sha256 {cpu_sha[:16]}" in ran.stdout + ran.stderr


def test_a_results_directory_the_container_cannot_write_is_named_before_any_work(images, tmp_path):
    results = tmp_path / "results"
    results.mkdir(mode=0o755)  # as Docker makes a missing bind-mount source: root's
    os.chown(results, 0, 0)
    ran = docker("run", "--rm", "-v", f"{results}:/results", "bench:cpu", "mini")
    assert ran.returncode == 2, ran.stderr
    assert "/results is not writable" in ran.stderr and "--user" in ran.stderr and "mkdir -p data results" in ran.stderr
    assert list(results.iterdir()) == []


def test_micro_runs_in_the_cpu_image_on_dockers_defaults(images):
    ran = docker("run", "--rm", "bench:cpu", "micro", "mini")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "partitions over" in ran.stdout and "Traceback" not in ran.stderr


def test_perf_runs_in_the_image_on_dockers_defaults_and_prints_only_json(images):
    script = ("data-prep synth --images 16 --rows-per-shard 8 --out /data/tiny -q > /dev/null && "
              "bench perf --data /data/tiny --memory-scale 2 --min-seconds 0.2 --json")
    ran = docker("run", "--rm", "--entrypoint", "sh", "bench:cpu", "-c", script, timeout=1800)
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout)  # stdout is the one JSON object, nothing else
    assert report["figures"]["images"] == 16 and report["device"].startswith("cpu")


def test_compose_cluster_runs_a_benchmark_across_three_nodes(compose_cluster):
    c = compose_cluster
    synth_on_head(c, 24, "/data/tiny")
    run = subprocess.run([*on_head(c), "bench", "run", "--data", "/data/tiny", "--address", "auto", "--batch-size", "4",
                          "-q", "--out", "/results/cluster"], env=c["env"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    path = c["results"] / "cluster"
    assert bundle.verify(path).ok
    result = json.loads((path / bundle.RESULT).read_text())
    env = json.loads((path / bundle.ENV).read_text())
    by_id = {n["node_id"]: n["resources"] for n in env["nodes"]}
    assert len(by_id) == 3
    gpu_node = next(i for i, r in by_id.items() if r.get("GPU"))
    cpu_worker = next(i for i, r in by_id.items() if r.get("CPU") == 2)
    assert result["images_per_node"]["model_node"] == {gpu_node: 24}
    assert set(result["images_per_node"]["preprocess_node"]) <= set(by_id) - {gpu_node}
    assert cpu_worker in result["placement"]["preprocess_nodes"]


