"""Pipeline variants, selected by name like the backends of the MLCommons reference.

Each variant is a module with ``preprocess(batch) -> batch`` and a ``Predictor`` class; a new
variant is a new module registered here, not a branch in every function.
"""

from __future__ import annotations

from types import ModuleType

from bench.stages import fast, seed

VARIANTS: dict[str, ModuleType] = {"fast": fast, "seed": seed}


def variant(name: str) -> ModuleType:
    return VARIANTS[name]
