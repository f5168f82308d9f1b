"""One small sampling actor per Ray node (GPU and CPU-only alike), pinned to its node, zero
CPUs reserved; and the same loop in-process for runs without Ray."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.telemetry import Samples
from bench.telemetry.host import HostSampler
from bench.telemetry.nvml import GpuSampler, probe

DEFAULT_INTERVAL_S = 0.1
# Nodes without GPUs have no power to integrate, and on a CPU node every sample (psutil plus a
# raylet RPC) is taken from the model's cores: sample them less often.
HOST_ONLY_INTERVAL_S = 0.5
READY_TIMEOUT_S = 60.0


class SamplingLoop:
    """Samples host (and GPUs, when asked) every ``interval_s`` on a background thread; a
    loop without GPUs samples no faster than every HOST_ONLY_INTERVAL_S."""

    def __init__(self, node: str, interval_s: float, gpus: bool, raylet: tuple[str, int] | None = None, nvml=None):
        self.samples = Samples()
        self.samples.nvml.append({"node": node, **probe(nvml)})
        self.interval_s = interval_s if gpus else max(interval_s, HOST_ONLY_INTERVAL_S)
        self.samplers: list[Any] = [HostSampler(node, self.samples, raylet)]
        if gpus:
            self.samplers.append(GpuSampler(node, self.samples, nvml))
        self._stop = threading.Event()
        self.sampling = threading.Event()  # set once the first sample is taken
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            ts = time.time()
            for sampler in self.samplers:
                sampler.sample(ts)
            self.sampling.set()
            next_tick += self.interval_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Samples:
        self._stop.set()
        self._thread.join(timeout=10)
        for sampler in self.samplers:
            if hasattr(sampler, "close"):
                sampler.close()
        return self.samples


class TelemetryActor:
    """Wrapped with ray.remote in ``start_cluster_telemetry``: Ray stays an optional import."""

    def __init__(self, node: str, interval_s: float, gpus: bool, raylet: tuple[str, int]):
        self.loop = SamplingLoop(node, interval_s, gpus, raylet)
        self.loop.start()

    def ready(self, timeout_s: float) -> bool:
        return self.loop.sampling.wait(timeout_s)

    def stop(self) -> Samples:
        return self.loop.stop()


def start_cluster_telemetry(nodes: list[dict[str, Any]], interval_s: float = DEFAULT_INTERVAL_S) -> list[Any]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_restarts=0)(TelemetryActor)
    actors = []
    for node in nodes:
        strategy = NodeAffinitySchedulingStrategy(node_id=node["node_id"], soft=False)
        raylet = (node["address"], node["manager_port"])
        has_gpus = node["resources"].get("GPU", 0) > 0
        actors.append(remote.options(scheduling_strategy=strategy).remote(node["node_id"], interval_s, has_gpus, raylet))
    # The timed run starts only once every node is sampling: an actor still starting would miss
    # the run's first seconds, and a GPU's energy per image would be understated by them (seen:
    # a CPU node's first sample 1.7 s into the run on a busy machine).
    try:
        ray.get([actor.ready.remote(READY_TIMEOUT_S) for actor in actors], timeout=READY_TIMEOUT_S + 10)
    except Exception:  # a node that cannot sample is recorded as lost by stop_cluster_telemetry
        pass
    return actors


def stop_cluster_telemetry(actors: list[Any]) -> Samples:
    """Collect every node's samples; a node that died is recorded, not fatal."""
    import ray

    samples = Samples()
    for actor in actors:
        try:
            samples.extend(ray.get(actor.stop.remote(), timeout=60))
        except Exception as exc:
            samples.mark_unavailable("node", "*", f"a telemetry actor was lost: {type(exc).__name__}")
        ray.kill(actor)
    return samples
