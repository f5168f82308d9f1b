"""The engines users pick instead of Ray Data, one module each (spark, daft), run on the same
data as Ray. They are optional and live in an environment of their own (`make peers`,
requirements/peers.txt): daft needs a pyarrow older than the kit's lock, which the Ray path keeps."""

from __future__ import annotations

import importlib
from types import ModuleType

from bench.errors import BenchError

ENGINES = ("ray", "spark", "daft")
PEERS = ("spark", "daft")
INSTALL = "make peers, then run .venv-peers/bin/bench"


def peer(name: str) -> ModuleType:
    """The module of peer engine ``name``, refused in one line when its library is missing."""
    if name not in PEERS:
        raise BenchError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    module = importlib.import_module(f"bench.peers.{name}")
    module.check_installed()
    return module


def missing(library: str) -> BenchError:
    return BenchError(f"{library} is not installed in this environment ({INSTALL})")


def check_local(engine: str, uri: str) -> None:
    """The peers read datasets on this machine's filesystem; S3 is refused with the way round."""
    if uri.startswith("s3://"):
        raise BenchError(f"--engine {engine} reads local datasets; {uri} is on S3: copy it to a local folder and "
                         "pass --data")
