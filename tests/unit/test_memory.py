"""The worker memory sampler against the kernel's own count: a fake Ray worker's private heap is
seen, the shared memory it maps (what the object store is) is not, other processes are ignored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.measure.memory import WorkerMemorySampler

MB = 10**6
# A process titled like a Ray worker that touches {heap} MB of its own memory and {shared_mb} MB
# of a shared file mapping, then waits for stdin to close.
WORKER = """
import mmap, os, sys
heap = bytearray(os.urandom(1)) * ({heap} * 10**6)
fd = os.open({shared!r}, os.O_RDWR | os.O_CREAT)
os.ftruncate(fd, {shared_mb} * 10**6)
shared = mmap.mmap(fd, {shared_mb} * 10**6, mmap.MAP_SHARED)
for offset in range(0, len(shared), 4096):
    shared[offset] = 1
print("ready", flush=True)
sys.stdin.read()
"""


def kernel_rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no RssAnon in /proc/{pid}/status")


@pytest.fixture
def fake_worker(tmp_path):
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    shared = shm / f"bench-test-{time.time_ns()}"
    code = WORKER.format(heap=300, shared=str(shared), shared_mb=200)
    proc = subprocess.Popen(["ray::FakeWorker", "-c", code], executable=sys.executable,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        shared.unlink(missing_ok=True)


def test_sampler_counts_a_workers_private_heap_not_its_shared_mappings(fake_worker):
    sampler = WorkerMemorySampler()
    sampler.sample()

    assert fake_worker.pid in sampler.peaks, "the ray::FakeWorker process was not sampled"
    seen = sampler.peaks[fake_worker.pid]
    assert seen["worker"] == "ray::FakeWorker"
    assert seen["private_bytes"] >= 300 * MB  # the heap it touched
    assert seen["private_bytes"] < 400 * MB  # not also the 200 MB shared mapping
    assert abs(seen["private_bytes"] - kernel_rss_anon(fake_worker.pid)) < 16 * MB
    assert sampler.by_worker()["ray::FakeWorker"] == pytest.approx(seen["private_bytes"] / MB)
    assert sampler.peak_mb() >= 300


def test_sampler_ignores_processes_that_are_not_ray_workers():
    sampler = WorkerMemorySampler()
    sampler.sample()
    assert os.getpid() not in sampler.peaks  # pytest itself is no Ray worker
