"""`bench`: run the benchmark and work with result bundles. Thin: parse, call, print."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bench import __version__
from data_prep.cli_support import run_app

app = typer.Typer(
    help="Run the Ray Data batch-inference benchmark (MLPerf ResNet-50, offline) and work with its result bundles.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"bench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_print_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    pass


main = run_app(app)
