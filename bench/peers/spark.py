"""Apache Spark (pyspark) in local mode, ``local[N]`` over the cores this process may use, or
a cluster at ``master``. Its configuration, each for a reason:

- Arrow between the JVM and Python (spark.sql.execution.arrow.pyspark.enabled): the pandas
  UDFs that Databricks documents for model inference need it, and it is the fast path.
- Half the machine's memory for the driver, which in local mode is also the executor: the cached
  images must fit, as they fit in Ray's object store.
- No web UI, no console progress, and only fatal errors logged (a log4j2 file of its own, as the JVM
  starts): a quiet screen, as with Ray.
- Python workers on this interpreter (PYSPARK_PYTHON), not whatever `python3` is on PATH.
"""

from __future__ import annotations

import importlib.util
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.errors import BenchError
from bench.measure.micro import figures
from bench.peers import missing
from data_prep.common.cores import usable_cores
from data_prep.common.shard_format import COLUMNS

# Spark's JVM logs only fatal errors, on stderr: a failed job reaches the user as the kit's one
# line; the repl logger at the root's level stops pyspark's "Setting default log level" notice.
LOG4J2 = """rootLogger.level = fatal
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = fatal
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
"""
JAVA = "Spark needs Java 17 or newer"
JAVA_FIX = "apt-get install openjdk-17-jre-headless (Debian/Ubuntu), or put a JDK 17 on PATH"


def check_installed() -> None:
    if importlib.util.find_spec("pyspark") is None:
        raise missing("pyspark")
    check_java()


def check_java() -> None:
    """Spark's JVM: a ``java`` on PATH, of version 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise BenchError(f"{JAVA}, and no `java` is on PATH: {JAVA_FIX}")
    shown = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)', shown)
    if found is None or int(found.group(1)) < 17:
        raise BenchError(f"{JAVA}; {java} is {shown.splitlines()[0] if shown else 'unknown'}: {JAVA_FIX}")


def version() -> str:
    import pyspark

    return pyspark.__version__


def session(master: str | None = None, task_cpus: int = 1):
    """A Spark session on ``master`` (default ``local[N]`` over this process's cores), each task
    reserving ``task_cpus`` cores."""
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    memory_mib = psutil.virtual_memory().total // 2**21
    folder = tempfile.mkdtemp(prefix="raybench-spark-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    log4j2 = Path(folder) / "log4j2.properties"
    log4j2.write_text(LOG4J2)
    spark = (SparkSession.builder.master(master or f"local[{usable_cores()}]").appName("raybench")
             .config("spark.ui.enabled", "false")
             .config("spark.task.cpus", str(task_cpus))
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.driver.memory", f"{memory_mib}m")
             .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j2.as_uri()}")
             .getOrCreate())
    spark.sparkContext.setLogLevel("FATAL")
    return spark


def _sleep_one_second(batches):
    time.sleep(1)
    yield from batches


def micro(files: list[str], partitions: int, master: str | None = None) -> dict[str, Any]:
    """The reference microbenchmark on Spark: read ``partitions`` partitions and cache them, then
    time a pandas map that sleeps 1 s per partition and returns its input."""
    spark = session(master)
    try:
        df = spark.read.parquet(*files).select(*COLUMNS).repartition(partitions).cache()
        df.count()  # forces the read, and fills the cache
        parallelism = spark.sparkContext.defaultParallelism
        start = time.perf_counter()
        df.mapInPandas(_sleep_one_second, schema=df.schema).write.format("noop").mode("overwrite").save()
        measured = time.perf_counter() - start
    finally:
        spark.stop()
    return figures("spark", version(), partitions, parallelism, measured)
