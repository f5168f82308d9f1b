"""Daft as the engine (``--engine daft``): the same stages and Predictor that Ray's model actors
run, as a Daft class UDF. Its configuration, each for a reason:

- Daft's native runner on this machine; its Ray runner on the cluster that ``--address`` names.
- The model is a class UDF (``daft.cls``), the stateful form Daft documents for models, built once
  per instance, each instance in a worker process of its own (Daft's default), as a Ray actor is.
- ``max_concurrency``: as many instances as a Ray model actor runs calls at once on a CPU (each
  instance's calls on its share of the cores, so the cores are used as Ray uses them), one per
  GPU on a GPU machine; batches of the kit's model batch size.
- Preprocessing inside the same UDF call: on Ray it is a stage of its own, but its uint8 crops
  cost a small fraction of the model's time.
- Predictions stream back as Daft makes them (``to_arrow_iter``): the first predictions, and the
  start-up figure, come when Daft has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.config import RunConfig
from bench.errors import BenchError
from bench.peers import check_local
from bench.run.cluster import Placement
from bench.run.datasets import Dataset
from bench.run.launchers.local import LocalLauncher, as_table
from bench.run.predictions import Stopwatch, Timings, prediction_schema, write_predictions
from bench.stages.startup import COLUMN as STARTUP_COLUMN
from bench.stages.startup import Lane
from bench.variants import variant
from data_prep.common.shard_format import COLUMNS, table_to_batch


class DaftLauncher(LocalLauncher):
    """Options: none; ``--address`` puts Daft on its Ray runner, on that cluster."""

    name = "daft"

    def __init__(self) -> None:
        from bench.peers import peer

        self._peer = peer("daft")  # not installed: one line, before any work
        self.options: dict[str, Any] = {}
        self._predictor = None

    def connect(self, address: str | None) -> None:
        import daft

        if address and self.options.get("runner") != "ray":
            daft.set_runner_ray(address=address)
            self.options = {"runner": "ray", "address": address}
        elif not address and not self.options:
            # Daft picks its Ray runner by itself where this process has joined Ray (bench perf).
            daft.set_runner_native()
            self.options = {"runner": "native"}

    def version(self) -> str:
        return self._peer.version()

    def check_readable(self, dataset: Dataset, placement: Placement) -> None:
        check_local(self.name, dataset.uri)

    def execute(self, dataset: Dataset, config: RunConfig, placement: Placement, predictions: Path,
                weights_sha256: str, show_progress: bool, int8_state: bytes | None,
                driver: Lane) -> tuple[Timings, None]:
        import daft

        schema = prediction_schema(config.save_logits).append(pa.field(STARTUP_COLUMN, pa.string()))
        args = variant(config.pipeline).predictor_args(config, placement.device, weights_sha256, int8_state)
        on_gpu = placement.device == "cuda"
        instances = int(placement.nodes[0]["resources"].get("GPU", 1)) if on_gpu else config.calls_in_parallel

        @daft.cls(max_concurrency=instances, gpus=1 if on_gpu else 0)
        class Predict:
            def __init__(self, pipeline: str, fmt: str, decode_on_device: bool, predictor_args: dict[str, Any]):
                chosen = variant(pipeline)
                self.preprocess = chosen.preprocess_for(fmt, decode_on_device)
                self.predictor = chosen.predictor()(**predictor_args)

            @daft.method.batch(return_dtype=daft.DataType.from_arrow_type(pa.struct(list(schema))), unnest=True,
                               batch_size=config.batch_size)
            def __call__(self, ids, labels, images):
                rows = pa.table({"id": ids.to_arrow(), "label": labels.to_arrow(), "image": images.to_arrow()})
                table = as_table(self.predictor(self.preprocess(table_to_batch(rows))))
                return daft.Series.from_arrow(pa.StructArray.from_arrays(
                    [table.column(f.name).combine_chunks().cast(f.type) for f in schema], fields=list(schema)))

        stopwatch = Stopwatch(driver)
        frame = daft.read_parquet(dataset.shard_files).select(*COLUMNS)
        if dataset.manifest["format"] == "raw":
            # Ray's tensor type as plain lists: in Ray's processes (the Ray runner) Ray's own
            # extension class takes the arrays over, and Daft's batches of it come out wrong.
            frame = frame.with_column("image", frame["image"].cast(daft.DataType.list(daft.DataType.uint8())))
        model = Predict(config.pipeline, dataset.manifest["format"], config.decode_on_device, args)
        frame = frame.select(model(frame["id"], frame["label"], frame["image"]))
        stopwatch.read_called()
        tables = (pa.Table.from_batches([batch]) for batch in frame.to_arrow_iter())
        images = write_predictions(tables, predictions, config.save_logits, dataset.images, stopwatch,
                                   config.stall_timeout_s, show_progress)
        return stopwatch.finish(images), None

    def failure(self, exc: Exception, dataset: Dataset) -> Exception:
        """Daft's failures (a UDF's exception, a damaged file), as one line."""
        if isinstance(exc, BenchError) or type(exc).__module__.split(".")[0] != "daft":
            return exc
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return BenchError(f"the pipeline failed on Daft: {(lines[-1] if lines else type(exc).__name__)[:400]}. No "
                          f"bundle was written. If a shard may be damaged, `data-prep verify {dataset.uri}` names it")
