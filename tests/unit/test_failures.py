"""Failures from Ray, pyarrow and torch reach the user as one line that says what failed and the
fix, never as a raw traceback; the traceback is kept in a log file, or shown with --verbose."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time

import pytest
import typer

from data_prep.common import cli as common_cli, failures
from helpers import free_port, run_cli, synth_dataset, tmpfs

# Messages as Ray 2.60 raises them (ray/_private/services.py and node.py), and as seen here.
STORE_BELOW_MINIMUM = ValueError("Attempting to cap object store memory usage at 60397977 bytes, but the minimum "
                                 "allowed is 78643200 bytes.")
STORE_OVER_SHM = ValueError("The configured object store size (12.0 GB) exceeds /dev/shm size (0.06 GB). This will "
                            "harm performance. Consider deleting files in /dev/shm or increasing its size with "
                            "--shm-size in Docker. To ignore this warning, set RAY_OBJECT_STORE_ALLOW_SLOW_STORAGE=1.")
GCS_PORT_TAKEN = RuntimeError("Failed to start GCS.  Last 1 lines of error files:\n[2026-12-02 06:37:56,464 C 22084 "
                              "22084] (gcs_server) grpc_server.cc:134: Check failed: server_ Failed to start the grpc "
                              "server. The specified port is 6390. If the server startup error message is `Address "
                              "already in use`, ...")
NO_CLUSTER = ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                             "setting the `--address` flag or `RAY_ADDRESS` environment variable.")


@pytest.mark.parametrize("exc, words", [
    (STORE_BELOW_MINIMUM, ["58 MB", "below Ray's minimum of 75 MB", "--shm-size"]),
    (STORE_OVER_SHM, ["(12.0 GB) does not fit in /dev/shm (0.06 GB)", "--shm-size", "RAY_OBJECT_STORE_ALLOW_SLOW_STORAGE"]),
    (OSError(errno.ENOSPC, "No space left on device", "/tmp/ray/session_x/logs/raylet.out"),
     ["no space left", "/tmp/ray/session_x/logs/raylet.out", "RAY_TMPDIR"]),
    (GCS_PORT_TAKEN, ["port 6390 is already in use", "ss -ltnp"]),
    (NO_CLUSTER, ["does not answer", "ray start --head", "--address"]),
    (ConnectionError("ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing "
                     "or incorrect."), ["authentication token", "~/.ray/auth_token", "RAY_AUTH_MODE"]),
])
def test_known_failures_get_their_own_message(exc, words):
    message = failures.explain(exc)
    assert message and all(word in message for word in words), message
    assert "\n" not in message


def test_a_known_cause_is_found_behind_the_exceptions_raised_from_it():
    try:
        try:
            raise STORE_BELOW_MINIMUM
        except ValueError as inner:
            raise RuntimeError("ray.init failed") from inner
    except RuntimeError as outer:
        assert "below Ray's minimum" in failures.explain(outer)
    assert failures.explain(KeyError("something else")) is None


def test_a_ray_task_errors_cause_is_its_last_line():
    text = "ray::MapWorker(Predictor) (pid=1, ip=10.0.0.1)\n  File \"x.py\", line 3\nValueError: bad pixels"
    assert failures.first_line(text) == "ValueError: bad pixels"
    assert failures.first_line("plain message\nsecond") == "plain message"


def toy_app(raise_what: BaseException) -> typer.Typer:
    app = common_cli.make_app("toy")
    common_cli.add_version_option(app, "toy", "0")

    @app.command()
    def go(flag: bool = False) -> None:
        raise raise_what

    @app.command()
    def other() -> None:
        pass

    return app


def run_toy(monkeypatch, capsys, exc: BaseException, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["toy", "go", *args])
    main = common_cli.run_app(toy_app(exc), "toy")
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def test_an_unexpected_failure_is_one_line_with_its_traceback_in_a_log(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(common_cli.VERBOSE_ENV, raising=False)
    code, err = run_toy(monkeypatch, capsys, RuntimeError("the engine broke\nwith details"))
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "error: RuntimeError: the engine broke" in err
    logs = list((tmp_path / "raybench" / "logs").glob("toy-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    kept = logs[0].read_text()
    assert "Traceback (most recent call last)" in kept and "the engine broke" in kept


def test_verbose_shows_the_traceback_wherever_it_is_given(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(common_cli.VERBOSE_ENV, raising=False)
    code, err = run_toy(monkeypatch, capsys, RuntimeError("boom"), "--verbose")  # after the command
    assert code == 1 and "Traceback (most recent call last)" in err and "error: RuntimeError: boom" in err
    assert not (tmp_path / "raybench" / "logs").exists() or not list((tmp_path / "raybench" / "logs").iterdir())


def test_a_known_failure_exits_2_with_its_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(common_cli.VERBOSE_ENV, raising=False)
    code, err = run_toy(monkeypatch, capsys, STORE_BELOW_MINIMUM)
    assert code == 2 and "below Ray's minimum of 75 MB" in err and len(err.strip().splitlines()) == 1


def test_verbose_is_moved_before_the_command_and_nothing_else_changes():
    assert common_cli.hoist_verbose(["bench", "run", "mini", "--verbose"]) == ["bench", "--verbose", "run", "mini"]
    assert common_cli.hoist_verbose(["bench", "run", "mini"]) == ["bench", "run", "mini"]


# The real failures, as a user meets them: each within seconds, one line, no traceback.

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return synth_dataset(tmp_path_factory.mktemp("failures") / "tiny", 8, 4)


def one_clear_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_an_address_nothing_answers_is_refused_within_seconds(tiny):
    port = free_port()
    started = time.monotonic()
    line = one_clear_line(run_cli("bench", "run", "--data", str(tiny), "--address", f"127.0.0.1:{port}", "-q"))
    assert time.monotonic() - started < 30  # Ray alone retries such an address for minutes
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in line and "ray start --head" in line


def test_a_port_ray_must_use_that_is_taken_is_named(tiny):
    with socket.socket() as holder:
        holder.bind(("", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = one_clear_line(run_cli("bench", "run", "--data", str(tiny), "-q", env={"RAY_GCS_SERVER_PORT": str(port)}))
    assert f"port {port} (RAY_GCS_SERVER_PORT) is already in use" in line


def test_a_full_disk_under_rays_temp_dir_is_named(tiny, tmp_path):
    with tmpfs(tmp_path / "full", 64 * 1024) as full:
        line = one_clear_line(run_cli("bench", "run", "--data", str(tiny), "-q", env={"RAY_TMPDIR": str(full)}))
    assert f"under {full}/ray, Ray's temp dir" in line and "RAY_TMPDIR" in line


def test_the_object_store_goes_to_a_file_where_dev_shm_is_too_small(monkeypatch):
    from bench.run import connect as starting

    real = starting.shutil.disk_usage

    def usage(path):
        if str(path) == "/dev/shm":
            return real(path)._replace(free=64 * 2**20)  # Docker's default
        return real(path)

    monkeypatch.setattr(starting.shutil, "disk_usage", usage)
    store, notice = starting.object_store()
    assert store["_plasma_directory"] and os.path.isdir(store["_plasma_directory"])
    assert store["object_store_memory"] > 64 * 2**20
    assert "/dev/shm has 64 MB free" in notice and "--shm-size=" in notice and "\n" not in notice


def test_the_object_store_is_rays_default_where_dev_shm_holds_it(monkeypatch):
    from bench.run import connect as starting

    monkeypatch.setattr(starting.shutil, "disk_usage", lambda path: starting.shutil._ntuple_diskusage(2**50, 0, 2**50))
    assert starting.object_store() == ({}, None)
