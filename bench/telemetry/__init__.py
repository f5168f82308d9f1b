"""Telemetry sampled alongside a run: NVML on GPU nodes, CPU/memory and Ray's object store on
every node. Samples are long-format rows ``(ts, node, source, device, uuid, metric, value)``
on the wall clock (``time.time()``), the same clock as the pipeline's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    rows: list[dict[str, Any]] = field(default_factory=list)
    unavailable: list[dict[str, str]] = field(default_factory=list)  # {source, metric, reason}
    nvml: list[dict[str, Any]] = field(default_factory=list)  # per node: what NVML said (telemetry.nvml.probe)

    def add(self, ts: float, node: str, source: str, metric: str, value: float,
            device: int | None = None, uuid: str | None = None) -> None:
        self.rows.append({"ts": ts, "node": node, "source": source, "device": device, "uuid": uuid,
                          "metric": metric, "value": float(value)})

    def mark_unavailable(self, source: str, metric: str, reason: str) -> None:
        entry = {"source": source, "metric": metric, "reason": reason}
        if entry not in self.unavailable:
            self.unavailable.append(entry)

    def extend(self, other: Samples) -> None:
        self.rows.extend(other.rows)
        self.nvml.extend(other.nvml)
        for entry in other.unavailable:
            if entry not in self.unavailable:
                self.unavailable.append(entry)
