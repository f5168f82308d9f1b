"""What a launcher provides: a place to run (nodes), where the model goes (a Placement), the
timed run itself, and the accuracy cost measured on the model's kind of device."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from bench.config import RunConfig
from bench.run.cluster import Placement
from bench.run.datasets import Dataset
from bench.run.predictions import Timings
from bench.stages.startup import Lane


class Launcher(ABC):
    name: ClassVar[str]
    options: dict[str, Any]  # recorded in the bundle's result.json, under launcher

    def version(self) -> str | None:
        """The engine's version, recorded beside its name (none for the one-process launcher)."""
        return None

    def close(self) -> None:
        """Stop the processes the engine started (bench perf runs engines one after another in
        one process: each case's memory is then its own engine's)."""

    @abstractmethod
    def connect(self, address: str | None) -> None:
        """Get ready to run: join or start Ray, or check that nothing remote was asked for."""

    @abstractmethod
    def nodes(self) -> list[dict[str, Any]]:
        """The nodes the run may use: node_id, address, manager_port, resources (CPU, GPU)."""

    @abstractmethod
    def place(self, config: RunConfig, nodes: list[dict[str, Any]]) -> Placement:
        """Where the model actors run, and how many."""

    @abstractmethod
    def start_telemetry(self, nodes: list[dict[str, Any]], interval_s: float) -> Any:
        """Start sampling every node; a handle for stop_telemetry."""

    @abstractmethod
    def stop_telemetry(self, handle: Any):
        """The samples (bench.telemetry.Samples) since start_telemetry."""

    @abstractmethod
    def execute(self, dataset: Dataset, config: RunConfig, placement: Placement, predictions: Path,
                weights_sha256: str, show_progress: bool, int8_state: bytes | None,
                driver: Lane) -> tuple[Timings, str | None]:
        """The timed run: every image of ``dataset`` predicted into ``predictions``; its timings
        and the engine's own statistics text (None where there is none). ``driver`` is this
        process's start-up lane, marked from the timer's start on (bench.run.predictions.Stopwatch)."""

    @abstractmethod
    def accuracy_costs(self, config: RunConfig, placement: Placement, weights_sha256: str,
                       sample: dict[str, Any], int8_state: bytes | None) -> dict[str, Any]:
        """bench.stages.precision.accuracy_costs, on the model's kind of device."""

    def check_readable(self, dataset: Dataset, placement: Placement) -> None:
        """Before the timer: every node that will read ``dataset`` can (default: one process, which
        has read the manifest already)."""

    def warm_up(self, config: RunConfig, nodes: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Before the timer: what the engine did to start its workers, or None (default: nothing)."""
        return None

    def failure(self, exc: Exception, dataset: Dataset) -> Exception:
        """What to tell the user of an exception from the timed run (default: as it is)."""
        return exc
