"""Through Ray Data on a Ray cluster (joined, or started on this machine): the benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError
from bench.results.secrets import scrub_uri
from bench.run import cluster, pipeline
from bench.run.cluster import Placement
from bench.run.connect import connect
from bench.run.datasets import Dataset
from bench.run.launchers.base import Launcher
from bench.run.predictions import Timings
from bench.run.shardcheck import node_problem
from bench.run.warmup import warm_workers
from bench.stages.startup import Lane
from bench.variants import variant
from bench.telemetry import collector
from data_prep.common.ray_cluster import alive_nodes, ask_every_node


class RayLauncher(Launcher):
    """No options: Ray Data's own settings come from the RunConfig."""

    name = "ray"

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def connect(self, address: str | None) -> None:
        connect(address)

    def version(self) -> str:
        import ray

        return ray.__version__

    def close(self) -> None:
        import ray

        ray.shutdown()

    def nodes(self) -> list[dict[str, Any]]:
        return alive_nodes()

    def place(self, config: RunConfig, nodes: list[dict[str, Any]]) -> Placement:
        return cluster.place(config, nodes)

    def start_telemetry(self, nodes: list[dict[str, Any]], interval_s: float) -> Any:
        return collector.start_cluster_telemetry(nodes, interval_s)

    def stop_telemetry(self, handle: Any):
        return collector.stop_cluster_telemetry(handle)

    def execute(self, dataset: Dataset, config: RunConfig, placement: Placement, predictions: Path,
                weights_sha256: str, show_progress: bool, int8_state: bytes | None,
                driver: Lane) -> tuple[Timings, str]:
        return pipeline.run(dataset.shard_files, dataset.filesystem, config, placement, predictions, dataset.images,
                            weights_sha256, show_progress, int8_state, dataset.manifest["format"], driver)

    def accuracy_costs(self, config: RunConfig, placement: Placement, weights_sha256: str,
                       sample: dict[str, Any], int8_state: bytes | None) -> dict[str, Any]:
        return pipeline.accuracy_costs_on_model_device(config, placement, weights_sha256, sample, int8_state)

    def check_readable(self, dataset: Dataset, placement: Placement) -> None:
        """On a multi-node cluster, a task on each node that reads (the preprocessing nodes, else
        every node with CPUs) lists the shards and opens one: a path only the driver's machine
        has is refused here, in seconds, not deep inside Ray."""
        if len(placement.nodes) < 2:
            return
        readers = [n for n in placement.nodes if (n["node_id"] in placement.preprocess_nodes if placement.preprocess_nodes
                                                   else n["resources"].get("CPU", 0) > 0)]
        sizes = {s["file"]: s["bytes"] for s in dataset.manifest["shards"] if s["file"] not in {b.file for b in dataset.bad}}
        problems = ask_every_node(readers, node_problem, dataset.uri, sizes)
        if problems:
            raise BenchError(
                f"{len(problems)} of {len(readers)} node(s) that read the shards cannot read {scrub_uri(dataset.uri)}: "
                + "; ".join(problems) + ". Every node reads them: put the dataset on s3:// (`data-prep synth ... --out "
                "s3://BUCKET/PATH --address auto` makes it there, from the cluster; each node needs credentials for the "
                "bucket) or on a filesystem every node mounts at the same path; no bundle was written")

    def warm_up(self, config: RunConfig, nodes: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The cluster's worker processes started, with what the read tasks import loaded
        (bench.run.warmup); none when the config says so (the reference keeps its cold start)."""
        if not config.warm_up:
            return None
        return warm_workers(nodes, variant(config.pipeline).warm_modules())

    def failure(self, exc: Exception, dataset: Dataset) -> Exception:
        """Ray's task errors, as one line that says what to do; anything else unchanged."""
        import ray.exceptions

        if isinstance(exc, BenchError) or not isinstance(exc, ray.exceptions.RayError):
            return exc
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = lines[-1] if lines else type(exc).__name__
        return BenchError(f"the pipeline failed after Ray's retries: {cause}. No bundle was written. If a shard may be "
                          f"damaged, `data-prep verify {dataset.uri}` names it (or rerun with --verify-data, and "
                          f"--skip-bad-shards to run without it)")
