"""Start-up marks, each taken inside its own process on the wall clock (``time.time()``), so
that a run's bundle can show where its first seconds went, one lane per process (Result.startup).

A model stage keeps a ``Lane`` and hands it on with its first batch's predictions, in the
``startup`` column (the JSON of the lane on that batch's first row, "" elsewhere): it travels
with the data, through whichever engine, and costs no process or actor of its own. The
predictions file never holds the column (bench.run.predictions)."""

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
        self.marks: dict[str, float] = {"process up": psutil.Process().create_time()}
        self._lock = threading.Lock()
        self._handed_on = False

    def mark(self, phase: str, at: float | None = None) -> None:
        """``phase`` reached now (or at ``at``); a phase already marked keeps its first time."""
        self.marks.setdefault(phase, time.time() if at is None else at)

    def column(self, rows: int) -> np.ndarray:
        """The ``startup`` column of a batch of ``rows``: the lane on the first batch asked, then empty."""
        values = np.full(rows, "", dtype=object)
        with self._lock:
            if not self._handed_on and rows:
                self._handed_on = True
                values[0] = json.dumps(self.as_dict())
        return values

    def as_dict(self) -> dict[str, Any]:
        return {"lane": self.name, "node": node_name(), "pid": os.getpid(), "marks": dict(self.marks)}


def lanes_in(values) -> list[dict[str, Any]]:
    """The lanes a batch's ``startup`` column carries."""
    return [json.loads(value) for value in values if value]
