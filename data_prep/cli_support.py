"""What both CLIs share: how the app is made, one-sentence errors on stderr, and a clear word on Ctrl-C."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Optional

import typer
from rich.console import Console

from data_prep.errors import DataPrepError, Interrupted

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def make_app(help: str) -> typer.Typer:
    """A Typer app as both CLIs want it: help reflowed to the terminal (markdown mode), the help
    page on a bare call, and no shell-completion options cluttering it."""
    return typer.Typer(help=help, rich_markup_mode="markdown", no_args_is_help=True, add_completion=False)


def add_version_option(app: typer.Typer, name: str, version: str) -> None:
    """``--version`` on the app itself (eager, so it works without a command)."""

    def print_version(value: bool) -> None:
        if value:
            typer.echo(f"{name} {version}")
            raise typer.Exit()

    @app.callback()
    def _options(
        show_version: Optional[bool] = typer.Option(None, "--version", callback=print_version, is_eager=True,
                                                   help="Print the version and exit."),
    ) -> None:
        pass


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


def run_app(app: typer.Typer, user_errors: tuple[type[Exception], ...] = ()) -> Callable[[], None]:
    """An entry point that turns user-facing errors into ``error: ...`` and exit code 2, and
    SIGINT/SIGTERM into ``interrupted: ...`` and exit code 130/143 (128 + the signal)."""

    def main() -> None:
        handle_sigterm()
        try:
            app()
        except (DataPrepError, *user_errors) as exc:
            stderr.print(f"[bold red]error:[/] {exc}")
            sys.exit(2)
        except Interrupted as exc:
            stderr.print(f"[bold yellow]interrupted:[/] {exc}")
            sys.exit(143 if stop_signal(exc) == "SIGTERM" else 130)

    return main
