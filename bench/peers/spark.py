"""Apache Spark (pyspark) in local mode, ``local[N]`` over the cores this process may use, or
a cluster at ``master``. Its configuration, each for a reason:

- Arrow between the JVM and Python (spark.sql.execution.arrow.pyspark.enabled): the pandas
  UDFs that Databricks documents for model inference need it, and it is the fast path.
- Half the machine's memory for the driver, which in local mode is also the executor: the cached
  images must fit, as they fit in Ray's object store.
- No web UI, no console progress, and the JVM's output in a log file of its own (``jvm_log``):
  its start-up notices, its warnings, and what its Python workers print when a failed job tears
  them down (a ConnectionResetError traceback). A quiet screen, as with Ray, whose logs also stay
  in files; a failed job still reaches the user as the kit's one line, which names the log.
- Python workers on this interpreter (PYSPARK_PYTHON), not whatever `python3` is on PATH.
"""

from __future__ import annotations

import importlib.util
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

# Spark's JVM logs warnings and worse, to its stderr (the session's log file): a failed job
# reaches the user as the kit's one line; the repl logger at the root's level stops pyspark's
# "Setting default log level" notice.
LOG4J2 = """rootLogger.level = warn
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
"""
LOG_KEY = "spark.raybench.jvmLog"  # where session() sent the JVM's output
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
    reserving ``task_cpus`` cores; its JVM writes to ``jvm_log(spark)``, kept after the run as
    Ray keeps its logs."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    memory_mib = psutil.virtual_memory().total // 2**21
    folder = Path(tempfile.mkdtemp(prefix="raybench-spark-"))
    log4j2, jvm_output = folder / "log4j2.properties", folder / "jvm.log"
    log4j2.write_text(LOG4J2)
    conf = (SparkConf().setMaster(master or f"local[{usable_cores()}]").setAppName("raybench")
            .set("spark.ui.enabled", "false")
            .set("spark.task.cpus", str(task_cpus))
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.sql.execution.arrow.pyspark.enabled", "true")
            .set("spark.driver.memory", f"{memory_mib}m")
            .set("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j2.as_uri()}")
            .set(LOG_KEY, str(jvm_output)))
    with open(jvm_output, "ab") as log:  # the JVM keeps its own copy of the descriptor
        gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    return SparkSession(SparkContext(conf=conf, gateway=gateway))



def jvm_log(spark) -> str:
    """The file that ``spark``'s JVM (and its local Python workers) write to."""
    return spark.sparkContext.getConf().get(LOG_KEY)


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
