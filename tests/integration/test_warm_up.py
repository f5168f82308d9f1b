"""The fast pipeline's warm-up leaves the run's timer only the actors the run itself needs.

Ray Data starts cluster-wide helper actors (its stats actor, actor location tracker, autoscaling
coordinator) at a cluster's first dataset, each a worker process that imports ray.data, in the
first second of the run, beside the model actor (docs/performance.md, "Start-up"). The judge is
Ray's own actor table: each actor's start time against the run's timer.
"""

from __future__ import annotations

from bench.config import RunConfig
from bench.results import bundle
from bench.run import runner

from helpers import ray_actors, synth_dataset

# What a run itself starts: its model actors and its parquet footer readers.
RUNS_OWN = ("MapWorker(MapBatches(preprocess)->MapBatches(Predictor))", "FooterReader")


def actors_started(ray) -> list[tuple[str, str, float]]:
    """(class, name, start time in s) of every actor this Ray has started."""
    return [(actor["ActorClassName"], actor["Name"], actor["StartTime"] / 1000) for actor in ray_actors()
            if actor["StartTime"]]


def test_a_fresh_clusters_first_run_starts_no_ray_data_helper_inside_its_timer(ray_local, tmp_path):
    assert not actors_started(ray_local), "this module needs a Ray of its own"
    data = synth_dataset(tmp_path / "data", 16, rows_per_shard=8)
    result = bundle.load(runner.run(None, str(data), RunConfig(batch_size=8), None, tmp_path / "b",
                                    show_progress=False))
    start = result.events["start"]
    started = actors_started(ray_local)
    inside = sorted({cls for cls, _, at in started if at >= start})
    assert inside == sorted(RUNS_OWN), started
    # The bundle names the helpers the warm-up started, as Ray's actor table has them.
    helpers = {name for cls, name, at in started if name and at < start}
    assert {"datasets_stats_actor", "ActorLocationTracker"} <= helpers
    assert set(result.startup["warmup"]["ray_data_helpers"]) == helpers
    # The cluster's next run finds them running: its warm-up starts none, and its timer only its own.
    again = bundle.load(runner.run(None, str(data), RunConfig(batch_size=8), None, tmp_path / "again",
                                   show_progress=False))
    assert again.startup["warmup"]["ray_data_helpers"] == []
    later = sorted({cls for cls, _, at in actors_started(ray_local) if at >= again.events["start"]})
    assert later == sorted(RUNS_OWN)
