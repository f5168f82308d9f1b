"""The peer engines' set-up as a user meets it (bench.peers): a missing library or Java is one
line that names the fix, never a traceback."""

from __future__ import annotations

import importlib.util
import stat

import pytest

from bench.errors import BenchError
from bench.peers import spark


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from helpers import synth_dataset

    return synth_dataset(tmp_path_factory.mktemp("data") / "tiny", 8, 4)


@pytest.mark.parametrize("command", ["micro", "run"])
@pytest.mark.parametrize("engine, library", [("spark", "pyspark"), ("daft", "daft")])
def test_an_engine_not_installed_is_one_line_naming_the_install(cli, tiny, command, engine, library):
    if importlib.util.find_spec(library) is not None:
        pytest.skip(f"{library} is installed here (.venv-peers)")
    proc = cli("bench", command, "--data", str(tiny), "--engine", engine)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{library} is not installed" in lines[0] and "make peers" in lines[0], proc.stderr


def test_an_unknown_engine_for_a_run_names_the_choices(cli, tiny):
    proc = cli("bench", "run", "--data", str(tiny), "--engine", "dask")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown --engine 'dask'" in proc.stderr and "ray, local, spark, daft" in proc.stderr


def test_an_unknown_engine_names_the_choices(cli, tiny):
    proc = cli("bench", "micro", "--data", str(tiny), "--engine", "dask")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown engine 'dask'" in proc.stderr and "ray, spark, daft" in proc.stderr


def test_spark_without_java_says_which_package_to_install(monkeypatch):
    monkeypatch.setattr(spark.shutil, "which", lambda name: None)
    with pytest.raises(BenchError, match="Java 17.*no `java` is on PATH.*openjdk-17-jre-headless"):
        spark.check_java()


@pytest.mark.parametrize("shown, ok", [('openjdk version "11.0.22" 2024-01-16', False),
                                       ('openjdk version "17.0.19" 2026-04-21', True),
                                       ('java version "21.0.1" 2023-10-17 LTS', True)])
def test_spark_checks_the_java_version(tmp_path, monkeypatch, shown, ok):
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{shown}' >&2\n")  # java -version prints to stderr
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(spark.shutil, "which", lambda name: str(java))
    if ok:
        spark.check_java()
    else:
        with pytest.raises(BenchError, match="11.0.22.*openjdk-17-jre-headless"):
            spark.check_java()
