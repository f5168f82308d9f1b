"""What both CLIs share: how the app is made, one-sentence errors on stderr, and a clear word on Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from data_prep.common.errors import DataPrepError, Interrupted
from data_prep.common.failures import explain, first_line, save_traceback

# Progress bars, notices and errors: stdout is for results (and --json) alone.
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "RAYBENCH_VERBOSE"  # set by the flag, so that Ray's worker processes see it too


def verbose() -> bool:
    """Whether --verbose was given: full tracebacks and the engines' own log lines on screen."""
    return os.environ.get(VERBOSE_ENV) == "1"


def make_app(help: str) -> typer.Typer:
    """A Typer app as both CLIs want it: help reflowed to the terminal (markdown mode), the help
    page on a bare call, and no shell-completion options cluttering it."""
    return typer.Typer(help=help, rich_markup_mode="markdown", no_args_is_help=True, add_completion=False)


def add_version_option(app: typer.Typer, name: str, version: str) -> None:
    """``--version`` and ``--verbose`` on the app itself (--version is eager, so it works without
    a command; --verbose may also come after the command, see run_app)."""

    def print_version(value: bool) -> None:
        if value:
            typer.echo(f"{name} {version}")
            raise typer.Exit()

    @app.callback()
    def _options(
        show_version: Optional[bool] = typer.Option(None, "--version", callback=print_version, is_eager=True,
                                                   help="Print the version and exit."),
        show_all: bool = typer.Option(False, VERBOSE_FLAG, help="Show full tracebacks and Ray's own log lines "
                                      "(also accepted after the command, e.g. `run mini --verbose`)."),
    ) -> None:
        if show_all:
            os.environ[VERBOSE_ENV] = "1"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, a scheduler's preemption), delivered like Ctrl-C so that every
    ``except KeyboardInterrupt`` keeps what is complete and marks what is not."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def handle_sigterm() -> None:
    """Deliver SIGTERM as Terminated and SIGINT as KeyboardInterrupt (call again after
    ``ray.init``, which installs its own). SIGINT explicitly: a process started in the
    background by a non-interactive shell inherits SIGINT ignored, and Python then leaves it so."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_signal(exc: BaseException | None) -> str:
    """Which signal a KeyboardInterrupt stands for, as its name."""
    while exc is not None:
        if isinstance(exc, Terminated):
            return "SIGTERM"
        exc = exc.__cause__ or exc.__context__
    return "SIGINT"


def hoist_verbose(argv: list[str]) -> list[str]:
    """``argv`` with --verbose moved before the command, where the app's option takes it, so
    that it works wherever a user puts it."""
    if VERBOSE_FLAG not in argv[1:]:
        return argv
    return [argv[0], VERBOSE_FLAG, *(arg for arg in argv[1:] if arg != VERBOSE_FLAG)]


def run_app(app: typer.Typer, tool: str, user_errors: tuple[type[Exception], ...] = ()) -> Callable[[], None]:
    """An entry point that turns user-facing errors into ``error: ...`` and exit code 2,
    SIGINT/SIGTERM into ``interrupted: ...`` and exit code 130/143 (128 + the signal), and any
    other failure into one line (data_prep.common.failures) with exit code 1, its traceback in a log
    file (named after ``tool``) or, with --verbose, on screen."""

    def main() -> None:
        handle_sigterm()
        sys.argv = hoist_verbose(sys.argv)
        try:
            app()
        except (DataPrepError, *user_errors) as exc:
            stderr.print(f"[bold red]error:[/] {escape(str(exc))}")
            sys.exit(2)
        except Interrupted as exc:
            stderr.print(f"[bold yellow]interrupted:[/] {escape(str(exc))}")
            sys.exit(143 if stop_signal(exc) == "SIGTERM" else 130)
        except Exception as exc:  # from Ray, pyarrow, torch...: one line, never a raw traceback
            sys.exit(report_failure(tool, exc))

    return main


def report_failure(tool: str, exc: BaseException) -> int:
    """Print one line for an unexpected failure (the known kinds explained), keep its traceback;
    returns the exit code: 2 for a known cause the user can fix, 1 otherwise."""
    known = explain(exc)
    if verbose():
        traceback.print_exception(exc, file=sys.stderr)
        where = ""
    else:
        log = save_traceback(tool, exc)
        where = f" (full traceback: {log}; --verbose shows it here)" if log else " (--verbose shows the traceback)"
    line = known or f"{type(exc).__name__}: {first_line(str(exc)) or 'no message'}"
    stderr.print(f"[bold red]error:[/] {escape(line + where)}")
    return 2 if known else 1
