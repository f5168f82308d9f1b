"""The one-process launcher: the same stages as Ray's, fed by a prefetching loader, with every
image predicted once, the same answers as plain PyTorch, and no Ray needed."""

from __future__ import annotations

import importlib.abc
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bench.run.launchers.local import (
    as_table,
    loader_pool,
    model_batches,
    predicted,
    prefetched,
    rebatched,
)

from helpers import synth_dataset


class RefuseRayImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ray":
            raise AssertionError("node_name tried to import ray")
        return None


def test_node_name_looks_ray_up_without_importing_it(monkeypatch):
    # Called on every batch. Where Ray is not installed an import would be retried each time,
    # and from two calling threads one saw the other's half-failed module.
    from bench.stages.handoff import node_name

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(sys, "meta_path", [RefuseRayImports(), *sys.meta_path])
    assert node_name() == socket.gethostname()

    context = SimpleNamespace(get_node_id=lambda: "node-1")
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: True,
                                                            get_runtime_context=lambda: context))
    assert node_name() == "node-1"


def test_rebatching_keeps_every_image_once_in_order():
    groups = [{"id": np.arange(start, min(start + 5, 23))} for start in range(0, 23, 5)]
    batches = list(rebatched(iter(groups), 8))
    assert [len(b["id"]) for b in batches] == [8, 8, 7]
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(23))


def test_rebatching_copies_each_column_once_into_the_arrays_it_is_given():
    made = []

    def empty(shape, dtype):
        made.append(np.empty(shape, dtype))
        return made[-1]

    groups = [{"id": np.arange(s, s + 5), "image": np.full((5, 2), s, np.uint8)} for s in range(0, 15, 5)]
    batches = list(rebatched(iter(groups), 6, empty))
    assert [len(b["image"]) for b in batches] == [6, 6, 3]
    assert all(any(np.shares_memory(b["image"], m) for m in made) for b in batches)  # no second copy
    assert np.concatenate([b["image"][:, 0] for b in batches]).tolist() == [0] * 5 + [5] * 5 + [10] * 5


def test_a_loader_failure_reaches_the_caller_instead_of_ending_the_run_short(tmp_path):
    def preprocess(batch):
        raise RuntimeError("bad row group")

    pq.write_table(pa.table({"id": ["a", "b"], "label": [0, 1], "image": [b"x", b"y"]}), tmp_path / "s.parquet")
    with pytest.raises(RuntimeError, match="bad row group"):
        with ThreadPoolExecutor(1) as pool:
            list(model_batches([str(tmp_path / "s.parquet")], None, preprocess, 2, pool, 1, pin=False))


def test_loader_processes_give_what_loader_threads_give_in_the_same_order(tmp_path):
    from bench.stages.crops import preprocess

    data = synth_dataset(tmp_path / "jpeg", 40, 20, "--format", "jpeg")
    files = [str(p) for p in sorted(data.glob("shards/*.parquet"))] * 2
    loaded = {}
    for processes in (False, True):
        with loader_pool(2, processes) as pool:
            loaded[processes] = list(prefetched(files, None, preprocess, pool, depth=3))
    assert len(loaded[True]) == len(loaded[False]) >= 2
    for by_process, by_thread in zip(loaded[True], loaded[False]):
        assert by_process["id"].tolist() == by_thread["id"].tolist()
        np.testing.assert_array_equal(by_process["image"], by_thread["image"])


def test_several_callers_predict_every_batch_exactly_once():
    seen, lock = [], threading.Lock()

    def predictor(batch):
        with lock:
            seen.extend(batch["id"].tolist())
        return {"id": batch["id"], "top1": batch["id"] % 7, "top5": np.stack([batch["id"]] * 5, axis=1)}

    batches = ({"id": np.arange(start, start + 4)} for start in range(0, 40, 4))
    tables = list(predicted(predictor, batches, calls_in_parallel=3))
    assert sorted(seen) == list(range(40))
    table = pa.concat_tables(tables)
    assert sorted(zip(table["id"].to_pylist(), table["top1"].to_pylist())) == [(i, i % 7) for i in range(40)]
    assert table["top5"].type == pa.list_(pa.int64(), 5)


def test_a_callers_failure_reaches_the_consumer():
    def predictor(batch):
        raise ValueError("the model broke")

    with pytest.raises(ValueError, match="the model broke"):
        list(predicted(predictor, iter([{"id": np.arange(4)}] * 3), calls_in_parallel=2))


def test_prediction_columns_become_arrow_lists():
    table = as_table({"id": np.array(["a", "b"], object), "top5": np.arange(10, dtype=np.int32).reshape(2, 5)})
    assert table["top5"].to_pylist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


