"""Progress bars, always on stderr: stdout carries results and ``--json`` output alone."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, ProgressColumn

_console = Console(stderr=True)


def progress_bar(*columns: str | ProgressColumn, show: bool = True, transient: bool = False) -> Progress:
    """A rich Progress on stderr (the default columns when none are given); ``show=False``
    draws nothing."""
    return Progress(*columns, console=_console, disable=not show, transient=transient)
