"""The HTML report, opened in a real headless Chromium as a user would."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
from bench.results import bundle, report
from bench.telemetry import Samples
from bench.telemetry.host import HostSampler
from bench.telemetry.nvml import GpuSampler
from bench.telemetry.summary import summarise, write_parquet
from PIL import Image

from fake_nvml import FakeNvml
from helpers import REPO

PUBLISHED = REPO / "results" / "published" / "mini-fast-cpu"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("BENCH_REQUIRE_TOOLS") == "1":
        pytest.fail("BENCH_REQUIRE_TOOLS=1 but chromium is not installed")
    pytest.skip("chromium is not installed (.ci/run installs it)")


@pytest.fixture
def run_with_gpu_telemetry(tmp_path):
    """A bundle-shaped directory with GPU (fake NVML) and host telemetry over a short 'run'."""
    path = tmp_path / "run-with-gpus"
    path.mkdir()
    samples = Samples()
    gpus, host = GpuSampler("node-a", samples, FakeNvml()), HostSampler("node-a", samples)
    start = time.time()
    for tick in range(30):
        gpus.sample(start + tick * 0.1)
        host.sample(start + tick * 0.1)
    samples.nvml.append({"node": "node-a", "status": "ok", "driver_version": "580.95.05", "gpus": 2})
    samples.nvml.append({"node": "node-b", "status": "library not found", "error": "NVML Shared Library Not Found"})
    write_parquet(samples, path / bundle.TELEMETRY)
    result = json.loads((PUBLISHED / bundle.RESULT).read_text())
    result["events"] = {"start": start, "first_predictions": start + 0.5, "end": start + 2.9}
    result["telemetry"] = summarise(samples, result["images"])
    (path / bundle.RESULT).write_text(json.dumps(result))
    return path


def test_report_renders_every_plot_in_a_real_browser(run_with_gpu_telemetry, tmp_path):
    browser = chromium()
    page = report.write([run_with_gpu_telemetry, PUBLISHED], tmp_path / "report.html")
    profile = tmp_path / "profile"
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    total = int(re.search(r'data-plots-total="(\d+)"', dom.stdout).group(1))
    rendered = int(re.search(r'data-plots-rendered="(\d+)"', dom.stdout).group(1))
    # throughput + (GPU, CPU, stages) for the telemetry run + (CPU?, stages) for the published one
    assert total >= 5 and rendered == total
    assert "run-with-gpus: GPUs over time" in dom.stdout
    # NVML's word on each node, on the page
    assert "NVML on node node-a: driver 580.95.05, 2 GPU(s)" in dom.stdout
    assert "NVML on node node-b: library not found (NVML Shared Library Not Found)" in dom.stdout

    shot = tmp_path / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,3000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (3000, 1200) and pixels.std() > 10  # not a blank page


def test_report_without_telemetry_says_so(tmp_path):
    text = report.render([PUBLISHED])
    assert "no GPU telemetry in this run" in text
    assert text.count('class="plot"') >= 2  # throughput and stage times still drawn
