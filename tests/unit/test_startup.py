"""The start-up timeline: lanes marked in their own process, handed on once with the first
batch, read back as seconds from the timer's start; the weights file's skeleton load."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from torchvision.models import resnet50

from bench.results.result import Result
from bench.stages.startup import Lane, lanes_in
from bench.stages.weights import load_model


def test_a_lane_keeps_each_phases_first_time():
    lane = Lane("model stage")
    lane.mark("first batch in", 10.0)
    lane.mark("first batch in", 20.0)
    assert lane.marks["first batch in"] == 10.0


def test_a_lane_starts_when_its_process_started_not_up_to_a_second_before():
    """Against the new process's own clock at its first statement: Python's start comes before it,
    by well under half a second (psutil's create_time, with the boot time in whole seconds, can
    be a second early)."""
    code = ("import time; first = time.time()\n"
            "from bench.stages.startup import Lane\n"
            "print(first, Lane('x').marks['process up'])")
    for _ in range(3):
        first, up = map(float, subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                              text=True).stdout.split())
        assert 0 <= first - up < 0.5, (first, up)


def test_a_lane_is_handed_on_once_whichever_call_asks_first():
    lane = Lane("model stage")
    lane.mark("first batch out")
    columns = []

    def call() -> None:
        columns.append(lane.column(16))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = [lane for column in columns for lane in lanes_in(column)]
    assert len(handed) == 1 and handed[0]["marks"]["first batch out"] == lane.marks["first batch out"]
    assert all(len(column) == 16 and column.dtype == object for column in columns)
    assert sum(value != "" for column in columns for value in column) == 1  # on one row of one batch


def result_with(startup, events):
    return Result(images=4, throughput_img_s=1.0, throughput_img_s_excl_metadata=1.0, timings={"wall_s": 4.0},
                  dataset_sha256="d", weights_sha256="w", pipeline="fast", config={}, events=events, startup=startup)


def test_lanes_read_as_seconds_from_the_timers_start_in_the_order_reached():
    lanes = [{"lane": "driver", "node": "n", "pid": 1, "marks": {"process up": 90.0, "timer started": 100.0,
                                                                  "first predictions": 103.5}},
             {"lane": "model stage", "node": "n", "pid": 2, "marks": {"first batch in": 102.0, "process up": 100.5}}]
    result = result_with({"lanes": lanes, "warmup": None}, {"start": 100.0, "first_predictions": 103.5, "end": 104.0})
    relative = result.startup_lanes()
    assert relative[0]["phases"] == [("process up", -10.0), ("timer started", 0.0), ("first predictions", 3.5)]
    assert relative[1]["phases"] == [("process up", 0.5), ("first batch in", 2.0)]
    assert result.startup_s == 3.5 and result.streaming_img_s == pytest.approx(4 / 0.5)
    # Streaming counts the images after the first predictions; none when those held every image.
    result.timings["first_predictions_images"] = 1
    assert result.streaming_img_s == pytest.approx(3 / 0.5)
    result.timings["first_predictions_images"] = 4
    assert result.streaming_img_s is None
    # A bundle made before the timeline has none, and says so rather than failing.
    assert result_with(None, {"start": 1.0}).startup_lanes() == []


def test_the_lanes_column_survives_a_json_round_trip():
    lane = Lane("driver")
    lane.mark("timer started", 5.0)
    column = lane.column(3)
    assert lanes_in(np.array(["", *column[:1]], dtype=object))[0] == json.loads(json.dumps(lane.as_dict()))


def test_a_weights_file_loads_into_a_skeleton_exactly_as_torchvision_loads_it(tmp_path):
    torch.manual_seed(3)
    state = resnet50(weights=None).state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    path = tmp_path / f"resnet50-{digest[:8]}.pth"
    raw.rename(path)
    lane = Lane("model stage")
    model, sha256 = load_model(str(path), lane=lane)
    assert sha256 == digest
    assert list(lane.marks)[-2:] == ["model built", "weights loaded and verified"]
    plain = resnet50(weights=None)  # the reference: torchvision's model, its state loaded the usual way
    plain.load_state_dict(torch.load(path, weights_only=True))
    plain.eval()
    loaded = model.state_dict()
    assert set(loaded) == set(plain.state_dict())
    for name, tensor in plain.state_dict().items():
        assert loaded[name].device.type == "cpu" and torch.equal(loaded[name], tensor), name
    images = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model(images), plain(images))


def test_a_model_stage_carries_on_the_lanes_its_input_brought():
    reader = Lane("preprocessing")
    carried = reader.column(4)
    carried = np.array([carried[0], "", "", ""], dtype=object)
    model = Lane("model stage")
    out = model.column(4, carried)
    assert [lane["lane"] for lane in lanes_in(out)] == ["preprocessing", "model stage"]
    again = model.column(4, np.array(["", "", "", ""], dtype=object))
    assert lanes_in(again) == []  # each lane once


def test_preprocessed_blocks_carry_their_process_lane_once():
    from bench.stages import startup
    from bench.stages.crops import preprocess

    startup._preprocessing = None  # a process that has preprocessed nothing yet
    batch = {"id": np.array(["a", "b"], dtype=object), "label": np.array([0, 1], dtype=np.int32),
             "image": np.zeros((2, 256, 256, 3), dtype=np.uint8)}
    first, second = preprocess(batch), preprocess(batch)
    lanes = lanes_in(first[startup.COLUMN])
    assert [lane["lane"] for lane in lanes] == ["preprocessing"]
    marks = lanes[0]["marks"]
    assert list(marks) == ["process up", "first block read", "first block preprocessed"]
    assert marks["first block read"] <= marks["first block preprocessed"]
    assert lanes_in(second[startup.COLUMN]) == []


def test_the_report_says_what_the_warm_up_ran_and_what_an_older_bundle_did_not_record():
    from bench.results.report import startup_note

    lanes = [{"lane": "driver", "node": "n", "pid": 1, "marks": {"timer started": 100.0}}]
    warmup = {"tasks": 2, "processes": 2, "imports": ["ray.data"], "seconds": 1.5}
    older = startup_note(result_with({"lanes": lanes, "warmup": warmup}, {"start": 100.0}))
    assert older == "before the timer, a warm-up ran 2 task(s) in 2 worker process(es), loading ray.data, in 1.5 s"
    warmup["ray_data_helpers"] = ["ActorLocationTracker", "datasets_stats_actor"]
    now = startup_note(result_with({"lanes": lanes, "warmup": warmup}, {"start": 100.0}))
    assert "started Ray Data's helper actors (ActorLocationTracker, datasets_stats_actor)" in now
    warmup["ray_data_helpers"] = []  # a cluster that had run a dataset before
    assert "with Ray Data's helper actors running already" in startup_note(
        result_with({"lanes": lanes, "warmup": warmup}, {"start": 100.0}))
    assert startup_note(result_with({"lanes": lanes, "warmup": None}, {"start": 100.0})).startswith("cold start")
