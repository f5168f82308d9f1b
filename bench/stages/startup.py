"""Start-up marks, each taken inside its own process on the wall clock (``time.time()``), so
that a run's bundle can show where its first seconds went, one lane per process (Result.startup).

Each process that preprocesses, and each model stage, keeps a ``Lane`` and hands it on with the
first batch it makes, in the ``startup`` column (a JSON list of lanes on one row, "" elsewhere);
a model stage carries on the lanes its input brought. So the lanes travel with the data, through
whichever engine, and cost no process or actor of their own. The predictions file never holds
the column (bench.run.predictions)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import numpy as np
import psutil

from bench.stages.handoff import node_name

COLUMN = "startup"


class Lane:
    """One process's start-up: phases in the order reached, each marked once."""

    def __init__(self, name: str):
        self.name = name
        self.marks: dict[str, float] = {"process up": process_started()}
        self._lock = threading.Lock()
        self._handed_on = False

    def mark(self, phase: str, at: float | None = None) -> None:
        """``phase`` reached now (or at ``at``); a phase already marked keeps its first time."""
        self.marks.setdefault(phase, time.time() if at is None else at)

    def column(self, rows: int, carried: np.ndarray | None = None) -> np.ndarray:
        """The ``startup`` column of a batch of ``rows``: the lanes ``carried`` in (the input's
        column), and this lane too on the first batch asked."""
        values = np.full(rows, "", dtype=object) if carried is None else np.array(carried, dtype=object)
        with self._lock:
            if not self._handed_on and rows:
                self._handed_on = True
                values[0] = json.dumps([*(json.loads(values[0]) if values[0] else []), self.as_dict()])
        return values

    def as_dict(self) -> dict[str, Any]:
        return {"lane": self.name, "node": node_name(), "pid": os.getpid(), "marks": dict(self.marks)}


def process_started() -> float:
    """When this process started, on the wall clock. On Linux from its start in clock ticks since
    boot and the boot clock now: psutil adds the boot time that /proc/stat gives in whole seconds,
    which puts every process up to a second early."""
    try:
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, AttributeError, ValueError, IndexError):
        return psutil.Process().create_time()


def lanes_in(values) -> list[dict[str, Any]]:
    """The lanes a batch's ``startup`` column carries."""
    return [lane for value in values if value for lane in json.loads(value)]


_preprocessing: Lane | None = None


def preprocessing_lane() -> Lane:
    """This process's preprocessing lane, made at its first preprocessed block."""
    global _preprocessing
    if _preprocessing is None:
        _preprocessing = Lane("preprocessing")
    return _preprocessing


def forget_preprocessing_lane() -> None:
    """Starts this process's preprocessing lane again at its next block."""
    global _preprocessing
    _preprocessing = None
