"""A CPU model actor's concurrent calls split its cores (bench.stages.model.threads_per_call):
each call runs a fixed share, so the answers do not depend on what overlapped, and `bench
perf`'s ceiling runs the model the same way."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from bench.config import RunConfig, resolve
from bench.stages.pixel_predictor import Predictor
from bench.stages.model import threads_per_call
from bench.measure.timing import images_per_second


@pytest.mark.parametrize("device, calls, threads", [("cpu", 1, 4), ("cpu", 2, 2), ("cpu", 3, 1), ("cpu", 8, 1),
                                                    ("cuda", 2, None)])
def test_calls_at_once_split_a_cpus_cores_and_leave_a_gpu_alone(monkeypatch, device, calls, threads):
    monkeypatch.setattr("bench.stages.model.usable_cores", lambda: 4)
    assert threads_per_call(torch.device(device), calls) == threads


def test_each_call_runs_its_share_whatever_else_runs_and_gets_the_same_logits(monkeypatch):
    monkeypatch.setattr("bench.stages.model.usable_cores", lambda: 4)
    predictor = Predictor("random", 0, "cpu", "fp32", False, calls_in_parallel=2)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8) for _ in range(2)]

    team_sizes = []
    set_num_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (team_sizes.append(n), set_num_threads(n)))
    alone = [predictor.logits(batch, "fp32") for batch in batches]
    start = threading.Barrier(2)
    together: list[torch.Tensor | None] = [None, None]

    def call(i: int) -> None:
        start.wait()
        together[i] = predictor.logits(batches[i], "fp32")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert team_sizes == [2, 2, 2, 2]
    for a, b in zip(alone, together):
        assert torch.equal(a, b)  # bit for bit: the same team size, the same sums

    one_call = Predictor("random", 0, "cpu", "fp32", False).logits(batches[0], "fp32")
    assert team_sizes[-1] == 4
    assert torch.linalg.norm(one_call - alone[0]) / torch.linalg.norm(one_call) < 1e-5  # other sums, same function


def test_streams_call_at_once_and_their_rates_add_up():
    names = set()

    def wait_a_little() -> None:
        names.add(threading.current_thread().name)
        time.sleep(0.01)

    one = images_per_second(wait_a_little, images_per_call=1, min_seconds=0.3)
    assert names == {threading.current_thread().name}
    names.clear()
    two = images_per_second(wait_a_little, images_per_call=1, min_seconds=0.3, streams=2)
    assert names == {"stream-0", "stream-1"}
    assert 1.5 < two / one < 2.5  # sleeps overlap: the rate is the streams' sum, not their mean


def test_an_actor_runs_its_calls_at_once_only_when_threaded():
    assert resolve(RunConfig(), "cpu", "raw").calls_in_parallel == 2
    assert resolve(RunConfig(precision="fp16"), "cuda", "raw").calls_in_parallel == 2  # each on its own CUDA stream
    assert resolve(RunConfig(threaded_actors=False), "cuda", "raw").calls_in_parallel == 1  # calls overlap batching only
    assert resolve(RunConfig(calls_per_actor=3, threaded_actors=False), "cpu", "raw").calls_in_parallel == 1


@pytest.mark.parametrize("pipeline, threads", [("fast", 2), ("reference", None)])
def test_each_variant_gives_its_predictor_its_own_arguments(monkeypatch, pipeline, threads):
    # The actors' Predictor arguments come from the variant (no branch on its name elsewhere):
    # fast splits a CPU actor's cores between its two calls; the reference keeps its threads.
    from bench.variants import variant

    monkeypatch.setattr("bench.stages.model.usable_cores", lambda: 4)
    config = resolve(RunConfig(pipeline=pipeline, precision="fp32"), "cpu", "raw")
    predictor = variant(pipeline).predictor()(**variant(pipeline).predictor_args(config, "cpu", weights_sha256=None))
    assert getattr(predictor, "threads_per_call", None) == threads


def test_the_reference_keeps_the_threads_ray_gave_it_and_fast_takes_every_core(monkeypatch):
    # Ray sets OMP_NUM_THREADS to an actor's CPU reservation; the reference ran on that, so
    # its predictor must not widen it, while the fast one takes every usable core.
    from bench.stages import reference_predictor

    monkeypatch.setattr("bench.stages.model.usable_cores", lambda: 3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference_predictor.Predictor("random", 0, "cpu", "fp32", False)
        assert torch.get_num_threads() == 1
        Predictor("random", 0, "cpu", "fp32", False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
