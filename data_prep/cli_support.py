"""What both CLIs share: one-sentence errors on stderr, and clean Ctrl-C handling."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from rich.console import Console

from data_prep.errors import DataPrepError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def run_app(app: typer.Typer, user_errors: tuple[type[Exception], ...] = ()) -> Callable[[], None]:
    """An entry point that turns user-facing errors into ``error: ...`` and exit code 2."""

    def main() -> None:
        try:
            app()
        except (DataPrepError, *user_errors) as exc:
            stderr.print(f"[bold red]error:[/] {exc}")
            sys.exit(2)
        except KeyboardInterrupt:
            stderr.print("interrupted: finished work is kept; run the same command again to resume")
            sys.exit(130)

    return main
