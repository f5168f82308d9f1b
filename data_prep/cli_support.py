"""What both CLIs share: one-sentence errors on stderr, and a clear word on Ctrl-C."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Optional

import typer
from rich.console import Console

from data_prep.errors import DataPrepError, Interrupted

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


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


def run_app(app: typer.Typer, user_errors: tuple[type[Exception], ...] = ()) -> Callable[[], None]:
    """An entry point that turns user-facing errors into ``error: ...`` and exit code 2."""

    def main() -> None:
        try:
            app()
        except (DataPrepError, *user_errors) as exc:
            stderr.print(f"[bold red]error:[/] {exc}")
            sys.exit(2)
        except Interrupted as exc:
            stderr.print(f"[bold yellow]interrupted:[/] {exc}")
            sys.exit(130)

    return main
