"""Telemetry with a fake NVML: sampling, summary arithmetic and graceful degradation."""

from __future__ import annotations

import pytest

from bench.telemetry import Samples
from bench.telemetry.collector import SamplingLoop
from bench.telemetry.nvml import GpuSampler
from bench.telemetry.summary import summarise
from fake_nvml import FakeNvml


def sample_n(nvml: FakeNvml, n: int) -> Samples:
    samples = Samples()
    sampler = GpuSampler("node-a", samples, nvml)
    for tick in range(n):
        sampler.sample(ts=1000.0 + tick)
    sampler.close()
    return samples


def test_every_field_is_sampled_with_node_gpu_and_uuid():
    samples = sample_n(FakeNvml(), 3)
    metrics = {r["metric"] for r in samples.rows}
    assert metrics == {"util_pct", "mem_used_bytes", "power_w", "energy_j", "sm_clock_mhz", "temperature_c",
                       "pcie_rx_bytes_s", "pcie_tx_bytes_s", "throttle_reasons"}
    assert len(samples.rows) == 3 * 2 * 9
    first = next(r for r in samples.rows if r["device"] == 1 and r["metric"] == "power_w")
    assert first == {"ts": 1000.0, "node": "node-a", "source": "gpu", "device": 1, "uuid": "GPU-fake-1",
                     "metric": "power_w", "value": 101.0}
    rx = next(r for r in samples.rows if r["metric"] == "pcie_rx_bytes_s")
    assert rx["value"] == 1000 * 1024  # NVML reports KB/s
    assert samples.unavailable == []


def test_energy_comes_from_the_counter_not_from_averaged_power():
    samples = sample_n(FakeNvml(), 5)
    summary = summarise(samples, images=400)
    # Each GPU's counter rises 1000 J per sample: 4 intervals -> 4000 J per GPU, 8000 J total,
    # whatever the (constant ~100 W) power readings would suggest over 4 s (~800 J).
    assert [g["energy_j"] for g in summary["gpus"]] == [4000.0, 4000.0]
    assert summary["energy_j"] == 8000.0
    assert summary["energy_j_per_image"] == 20.0
    assert summary["images_per_kwh"] == pytest.approx(400 / (8000 / 3.6e6))
    util = {g["index"]: g["util_pct"] for g in summary["gpus"]}
    assert util[0] == {"mean": 50.0, "p95": 50.0, "max": 50.0} and util[1]["mean"] == 60.0
    assert summary["gpus"][1]["peak_mem_used_bytes"] == 2 * 2**30 + 5 * 2**20


def test_missing_library_is_recorded_and_nothing_crashes():
    samples = sample_n(FakeNvml(missing=True), 3)
    assert samples.rows == []
    assert samples.unavailable[0]["metric"] == "*" and "NVML Shared Library Not Found" in samples.unavailable[0]["reason"]
    assert summarise(samples, 10)["energy_j"] is None


def test_unsupported_fields_are_dropped_with_the_reason():
    samples = sample_n(FakeNvml(unsupported={"energy", "pcie"}), 3)
    metrics = {r["metric"] for r in samples.rows}
    assert "energy_j" not in metrics and "pcie_rx_bytes_s" not in metrics and "util_pct" in metrics
    reasons = {(u["metric"], u["reason"]) for u in samples.unavailable}
    assert ("energy_j", "gpu0: Not Supported") in reasons and ("pcie_tx_bytes_s", "gpu1: Not Supported") in reasons
    assert summarise(samples, 10)["energy_j"] is None  # no counter: no made-up energy


def test_a_gpu_lost_mid_run_stops_being_sampled_and_the_rest_goes_on():
    samples = sample_n(FakeNvml(lost_after=2), 5)
    gpu1_ticks = {r["ts"] for r in samples.rows if r["device"] == 1 and r["metric"] == "util_pct"}
    gpu0_ticks = {r["ts"] for r in samples.rows if r["device"] == 0 and r["metric"] == "util_pct"}
    assert gpu1_ticks == {1000.0, 1001.0} and len(gpu0_ticks) == 5
    assert any("GPU lost" in u["reason"] for u in samples.unavailable)


def test_mig_is_recorded_as_a_limitation():
    samples = sample_n(FakeNvml(mig=True, gpus=1), 2)
    assert any("MIG" in u["reason"] for u in samples.unavailable)


def test_sampling_loop_collects_host_and_gpu_on_one_clock():
    loop = SamplingLoop("node-a", 0.02, gpus=True, nvml=FakeNvml(gpus=1))
    assert not loop.sampling.is_set()
    loop.start()
    assert loop.sampling.wait(5)  # what start_cluster_telemetry waits for before the timer
    import time

    time.sleep(0.2)
    samples = loop.stop()
    sources = {r["source"] for r in samples.rows}
    assert sources == {"host", "gpu"}
    host_ts = sorted({r["ts"] for r in samples.rows if r["source"] == "host"})
    gpu_ts = sorted({r["ts"] for r in samples.rows if r["source"] == "gpu"})
    assert host_ts == gpu_ts and len(host_ts) >= 3
    cpu = [r["value"] for r in samples.rows if r["metric"] == "cpu_pct"]
    assert all(0.0 <= v <= 100.0 for v in cpu)


def test_a_loop_without_gpus_samples_no_faster_than_the_host_only_interval():
    # both callers (the per-node Ray actor and the local launcher on a CPU) get the rule
    from bench.telemetry.collector import HOST_ONLY_INTERVAL_S

    assert SamplingLoop("node-a", 0.1, gpus=False).interval_s == HOST_ONLY_INTERVAL_S
    assert SamplingLoop("node-a", 2.0, gpus=False).interval_s == 2.0
    assert SamplingLoop("node-a", 0.1, gpus=True, nvml=FakeNvml(gpus=1)).interval_s == 0.1


class DriverNotLoaded(Exception):
    pass


class BrokenDriverNvml(FakeNvml):
    def nvmlInit(self):
        raise DriverNotLoaded("Driver Not Loaded")


@pytest.mark.parametrize("nvml, said", [
    (FakeNvml(gpus=4), {"status": "ok", "driver_version": "580.95.05", "gpus": 4}),
    (FakeNvml(missing=True), {"status": "library not found",
                              "error": "NVMLError_LibraryNotFound: NVML Shared Library Not Found"}),
    (BrokenDriverNvml(), {"status": "error", "error": "DriverNotLoaded: Driver Not Loaded"}),
])
def test_nvmls_own_word_is_recorded_per_node_whatever_it_is(nvml, said):
    from bench.telemetry.nvml import probe

    assert probe(nvml) == said
    loop = SamplingLoop("node-a", 0.05, gpus=False, nvml=nvml)  # a CPU-only node asks NVML too
    loop.start()
    summary = summarise(loop.stop(), 10)
    assert summary["nvml"] == [{"node": "node-a", **said}]
