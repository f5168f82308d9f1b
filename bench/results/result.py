"""The Result record: what one run measured, as ``result.json`` holds it. One definition, used by
the writer (bench.run.runner), the verifier (bench.results.bundle), compare, report and perf.

Schema versions:
- 1: the first bundles (results/published/ holds some): config under the old setting names, no
  ``launcher``.
- 2: config under today's names (bench.config.in_todays_terms), ``launcher``.
- 3: ``startup``, the start-up timeline.
All read as today's version (``Result.from_dict``); a bundle is never rewritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
_NUMBER = (int, float)
# The fields every version has, with the JSON types they may hold: what verify checks first.
REQUIRED = {"schema_version": (int,), "images": (int,), "throughput_img_s": _NUMBER,
            "throughput_img_s_excl_metadata": _NUMBER, "dataset_sha256": (str,), "weights_sha256": (str,),
            "predictions_sha256": (str,), "pipeline": (str,), "config": (dict,)}


@dataclass
class Result:
    images: int
    throughput_img_s: float  # images / wall time from before read_parquet: the reference's headline
    throughput_img_s_excl_metadata: float  # the reference's second figure: from after the metadata fetch
    timings: dict[str, float]  # wall_s, wall_s_excl_metadata, metadata_s
    dataset_sha256: str
    weights_sha256: str
    pipeline: str
    config: dict[str, Any]  # the resolved RunConfig, as_dict()
    predictions_sha256: str = ""  # set by the bundle's writer from the predictions (canonical)
    schema_version: int = SCHEMA_VERSION
    kit_version: str | None = None
    created_utc: str | None = None
    complete: bool = True
    launcher: dict[str, Any] = field(default_factory=lambda: {"name": "ray"})  # name and its options
    dataset_images: int | None = None  # the manifest's; images + skipped shards' images add up to it
    skipped_shards: list[dict[str, Any]] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)  # uri (scrubbed), size, kind, format, shards
    weights: str = "random"  # random, imagenet or file
    weights_file: str | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] | None = None
    precision_cost: dict[str, Any] | None = None
    decoding_cost: dict[str, Any] | None = None
    int8: dict[str, Any] | None = None
    images_per_node: dict[str, dict[str, int]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)  # per-operator wall times
    events: dict[str, float] = field(default_factory=dict)  # wall-clock marks: start, first_predictions, end
    telemetry: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None  # the reference study's figure for this size
    # The cluster's alive nodes when the timer started, and those gone when it stopped: a run that
    # lost a node and still predicted every image once says so here.
    nodes: dict[str, list[str]] | None = None
    # Start-up, one lane per process (the driver, each model stage), each phase marked on the
    # wall clock inside its own process (bench.stages.startup); ``warmup``: what ran before the
    # timer to start the cluster's worker processes, or None.
    startup: dict[str, Any] | None = None

    @staticmethod
    def type_problems(data: dict[str, Any]) -> list[str]:
        """What is missing from ``data`` or of the wrong type, among the fields every version has."""
        return [f"{key} is missing or not {' or '.join(k.__name__ for k in kinds)}"
                for key, kinds in REQUIRED.items()
                if isinstance(data.get(key), bool) or not isinstance(data.get(key), kinds)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """A result.json of any readable version, in today's terms (bench.config.in_todays_terms
        for version 1's config); keys this kit does not know are ignored."""
        from bench.config import in_todays_terms
        from bench.variants import ALIASES

        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"schema_version {version!r} is not one this kit reads ({', '.join(map(str, READABLE_VERSIONS))})")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["config"] = in_todays_terms(data.get("config") or {})
        values["pipeline"] = ALIASES.get(values["pipeline"], values["pipeline"])
        values["launcher"] = data.get("launcher") or {"name": "ray"}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def consistency_problems(self, prediction_rows: int, predictions_sha256: str) -> list[str]:
        """What does not add up against the bundle's predictions and against itself (a doctored
        figure is caught even when the checksums were made again)."""
        problems = []
        if prediction_rows != self.images:
            problems.append(f"images {self.images} but the predictions have {prediction_rows} rows")
        if predictions_sha256 != self.predictions_sha256:
            problems.append("predictions_sha256 does not match the predictions")
        if self.dataset_images is not None:
            skipped = sum(s.get("images", 0) for s in self.skipped_shards)
            if self.images + skipped != self.dataset_images:
                problems.append(f"{self.images} images predicted and {len(self.skipped_shards)} shard(s) skipped do "
                                f"not account for the dataset's {self.dataset_images} images")
        for figure, seconds in (("throughput_img_s", "wall_s"), ("throughput_img_s_excl_metadata", "wall_s_excl_metadata")):
            if self.timings.get(seconds, 0) > 0:
                expected = self.images / self.timings[seconds]
                if abs(expected - getattr(self, figure)) > 1e-6 * max(expected, 1.0):
                    problems.append(f"{figure} {getattr(self, figure)} is not images / timings.{seconds} ({expected:.6g})")
        return problems

    @property
    def first_predictions_s(self) -> float | None:
        """Seconds from the timer's start to the first predictions."""
        if "first_predictions" not in self.events or "start" not in self.events:
            return None
        return self.events["first_predictions"] - self.events["start"]

    @property
    def streaming_img_s(self) -> float | None:
        """Images per second once predictions flow: those after the first predictions, over the
        time from them to the end (None when the first predictions held every image)."""
        if "first_predictions" not in self.events or "end" not in self.events:
            return None
        streaming_s = self.events["end"] - self.events["first_predictions"]
        after = self.images - self.timings.get("first_predictions_images", 0)
        return after / streaming_s if streaming_s > 0 and after > 0 else None

    @property
    def startup_s(self) -> float | None:
        """The run's start-up, the third figure beside the headline and the streaming rate: the
        seconds from the timer's start to the first predictions."""
        return self.first_predictions_s

    @property
    def first_batch_s(self) -> float | None:
        """Seconds from the timer's start until the first model stage had computed its first
        batch (the start-up lanes; None for bundles from before them)."""
        done = [dict(lane["phases"])["first batch out"] for lane in self.startup_lanes()
                if lane["lane"] == "model stage" and "first batch out" in dict(lane["phases"])]
        return min(done) if done else None

    def startup_lanes(self) -> list[dict[str, Any]]:
        """Each start-up lane with its phases as seconds from the timer's start (negative: before
        it), in the order reached; [] for bundles from before the timeline."""
        start = self.events.get("start")
        if start is None or not self.startup:
            return []
        return [{"lane": lane["lane"], "node": lane["node"], "pid": lane["pid"],
                 "phases": sorted(((phase, at - start) for phase, at in lane["marks"].items()), key=lambda p: p[1])}
                for lane in self.startup.get("lanes", [])]

    @property
    def device(self) -> str | None:
        """Where the model ran: "cpu" or "cuda" (the placement's device)."""
        return self.placement.get("device")
