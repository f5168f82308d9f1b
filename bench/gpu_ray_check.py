"""The table of bench/gpu_ray_check.sh: one row per `bench run` bundle's result.json that the
script keeps (NAME.result.json), in the order they ran, with the figures that split a short
run's throughput into Ray's start-up and streaming.

    python3 -m bench.gpu_ray_check OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.telemetry.summary import mean_gpu_util


def row(name: str, result: dict[str, Any]) -> str:
    telemetry = result.get("telemetry") or {}
    util = mean_gpu_util(telemetry)
    events = result["events"]
    first = events["first_predictions"] - events["start"]
    streaming = result["images"] / (events["end"] - events["first_predictions"])  # start-up excluded
    placement = result["placement"]
    calls = RunConfig.from_dict(result["config"]).calls_in_parallel
    energy = telemetry.get("energy_j_per_image")
    cells = [name, placement["actors"], f"{placement['actor_num_gpus']:g}", calls, f"{result['images']:,}",
             f"{result['throughput_img_s']:,.0f}", f"{result['timings']['wall_s']:.1f}",
             f"{result['timings']['metadata_s']:.1f}", f"{first:.1f}", f"{streaming:,.0f}",
             "-" if util is None else f"{util:.0f}", "-" if energy is None else f"{energy:.3f}",
             result["predictions_sha256"][:16]]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(directory: Path) -> str:
    results = {path.name.removesuffix(".result.json"): json.loads(path.read_text())
               for path in directory.glob("*.result.json")}
    rows = ["| run | model actors | GPUs each | calls at once | images | img/s | wall s | listing s "
            "| first predictions at s | img/s after them | GPU util % | J/image | predictions sha256 |",
            "|" + "---|" * 13]
    for name, result in sorted(results.items(), key=lambda item: item[1]["events"]["start"]):
        rows.append(row(name, result))
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
