"""Apache Spark as the engine (``--engine spark``): the same stages and Predictor that Ray's model
actors run, called from a pandas iterator UDF (``mapInPandas``), the form Databricks documents
for model inference. Its configuration, each for a reason:

- Local mode, ``local[N]`` over this process's cores (or ``--spark-master``), its session built
  before the timer as ``ray.init`` is (bench.peers.spark.session: Arrow on, a quiet log).
- One partition per shard (``maxPartitionBytes`` and ``openCostInBytes`` at the largest shard),
  Arrow batches of the model's batch size: each UDF call gets one model batch.
- ``spark.task.cpus`` = every core, so one task (one model) runs per machine at a time, as Ray
  places one model actor per CPU node; the UDF runs as many calls at once as an actor does.
- The model is built once per Python worker (workers are reused between tasks), not per task.
- Predictions stream back partition by partition (``toLocalIterator`` with the next partition
  prefetched), so the first predictions, and the start-up figure, come when Spark has them.
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
from bench.run.launchers.local import LocalLauncher, predicted
from bench.run.predictions import Stopwatch, Timings, prediction_schema, write_predictions
from bench.stages.startup import COLUMN as STARTUP_COLUMN
from bench.stages.startup import Lane
from bench.variants import variant
from data_prep.common.cores import usable_cores
from data_prep.common.shard_format import COLUMNS, table_to_batch

_PREDICTORS: dict[bytes, Any] = {}  # one model per Python worker and configuration


class SparkLauncher(LocalLauncher):
    """Options: ``master`` (a Spark master URL; default ``local[N]`` over this machine's cores)."""

    name = "spark"

    def __init__(self, master: str | None = None):
        from bench.peers import peer

        self._peer = peer("spark")  # not installed, or no Java: one line, before any work
        self.options = {"master": master} if master else {}
        self._predictor = None
        self._spark = None

    def connect(self, address: str | None) -> None:
        if address:
            raise BenchError(f"--address {address} is a Ray cluster's; --engine spark runs on Spark: give "
                             "--spark-master for a Spark cluster")
        if self._spark is None:
            # One task, so one model, per machine at a time, on all its cores.
            self._spark = self._peer.session(self.options.get("master"), task_cpus=usable_cores())

    def close(self) -> None:
        """The session and its JVM stopped (a later session starts a new JVM)."""
        from pyspark import SparkContext

        if self._spark is not None:
            self._spark.stop()
            self._spark = None
        if SparkContext._gateway is not None:
            SparkContext._gateway.shutdown()
            SparkContext._gateway = SparkContext._jvm = None

    def version(self) -> str:
        return self._peer.version()

    def check_readable(self, dataset: Dataset, placement: Placement) -> None:
        check_local(self.name, dataset.uri)

    def execute(self, dataset: Dataset, config: RunConfig, placement: Placement, predictions: Path,
                weights_sha256: str, show_progress: bool, int8_state: bytes | None,
                driver: Lane) -> tuple[Timings, None]:
        import pickle

        spark = self._spark
        shard_bytes = max(s["bytes"] for s in dataset.manifest["shards"])
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(shard_bytes))
        spark.conf.set("spark.sql.files.openCostInBytes", str(shard_bytes))
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(config.batch_size))
        chosen = variant(config.pipeline)
        args = chosen.predictor_args(config, placement.device, weights_sha256, int8_state)
        key = pickle.dumps((config.pipeline, sorted(args.items())))
        schema = prediction_schema(config.save_logits).append(pa.field(STARTUP_COLUMN, pa.string()))
        udf = _Predict(config.pipeline, dataset.manifest["format"], config.decode_on_device, args, key,
                       config.calls_in_parallel)

        stopwatch = Stopwatch(driver)
        frame = spark.read.parquet(*dataset.shard_files).select(*COLUMNS)
        stopwatch.read_called()
        rows = frame.mapInPandas(udf, schema=spark_schema(schema)).toLocalIterator(prefetchPartitions=True)
        images = write_predictions(as_tables(rows, schema, config.batch_size), predictions, config.save_logits,
                                   dataset.images, stopwatch, config.stall_timeout_s, show_progress)
        return stopwatch.finish(images), None

    def failure(self, exc: Exception, dataset: Dataset) -> Exception:
        """Spark's job failures (a Python worker's exception, a damaged file), as one line."""
        if isinstance(exc, BenchError) or type(exc).__module__.split(".")[0] not in ("pyspark", "py4j"):
            return exc
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().startswith("at ")]
        causes = [line for line in lines if "Error" in line or "Exception" in line] or lines or [type(exc).__name__]
        where = next((line for line in causes if "reading file" in line), None)  # Spark names the file it failed on
        cause = "; ".join(dict.fromkeys(line[:300] for line in (where, causes[-1]) if line))
        log = f" (Spark's own log: {self._peer.jvm_log(self._spark)})" if self._spark is not None else ""
        return BenchError(f"the pipeline failed on Spark: {cause}{log}. No bundle was written. If a shard may be "
                          f"damaged, `data-prep verify {dataset.uri}` names it")


class _Predict:
    """The UDF: each Arrow batch of rows preprocessed and predicted by this worker's model."""

    def __init__(self, pipeline: str, fmt: str, decode_on_device: bool, args: dict[str, Any], key: bytes,
                 calls_in_parallel: int):
        self.pipeline, self.fmt, self.decode_on_device = pipeline, fmt, decode_on_device
        self.args, self.key, self.calls_in_parallel = args, key, calls_in_parallel

    def __call__(self, frames):
        chosen = variant(self.pipeline)
        if self.key not in _PREDICTORS:
            _PREDICTORS[self.key] = chosen.predictor()(**self.args)
        preprocess = chosen.preprocess_for(self.fmt, self.decode_on_device)
        batches = (preprocess(table_to_batch(shard_table(frame))) for frame in frames)
        for table in predicted(_PREDICTORS[self.key], batches, self.calls_in_parallel):
            yield table.to_pandas()


def shard_table(frame) -> pa.Table:
    """A pandas batch of shard rows as the shard's own Arrow columns: Spark reads uint8 as its
    16-bit short, which the tensor's bytes are cast back from."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    image = table.column("image")
    if pa.types.is_list(image.type) and image.type.value_type != pa.uint8():
        table = table.set_column(table.column_names.index("image"), "image", image.cast(pa.list_(pa.uint8())))
    return table


def spark_schema(schema: pa.Schema):
    """The predictions' Spark schema: the same columns, with lists as Spark arrays."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pa.schema([pa.field(f.name, pa.list_(f.type.value_type)) if pa.types.is_fixed_size_list(f.type)
                                        else f for f in schema]))


def as_tables(rows, schema: pa.Schema, size: int):
    """Spark's rows, ``size`` at a time, as tables of the predictions' schema."""
    held = []
    for row in rows:
        held.append(row.asDict())
        if len(held) == size:
            yield pa.Table.from_pylist(held, schema)
            held = []
    if held:
        yield pa.Table.from_pylist(held, schema)
