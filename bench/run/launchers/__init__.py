"""How a run's stages are driven: through Ray Data on a Ray cluster (``ray``, the benchmark), in
one process without any engine (``local``: the practical limit, and a GPU machine's fallback
where Ray is not installed), or on the engines users pick instead (``spark``, ``daft``: the
peers, installed with `make peers`). All run the same variant's stages and write the same
predictions; bench.run.runner makes the same Result of each."""

from __future__ import annotations

from bench.errors import BenchError
from bench.run.launchers.base import Launcher

NAMES = ("ray", "local", "spark", "daft")


def launcher(name: str, **options) -> Launcher:
    """The launcher called ``name``, with its ``options`` (each launcher's docstring lists them)."""
    if name == "ray":
        from bench.run.launchers.ray import RayLauncher

        return RayLauncher(**options)
    if name == "local":
        from bench.run.launchers.local import LocalLauncher

        return LocalLauncher(**options)
    if name == "spark":
        from bench.run.launchers.spark import SparkLauncher

        return SparkLauncher(**options)
    if name == "daft":
        from bench.run.launchers.daft import DaftLauncher

        return DaftLauncher(**options)
    raise BenchError(f"unknown --engine {name!r}: choose one of {', '.join(NAMES)}")


__all__ = ["NAMES", "Launcher", "launcher"]
