"""The pipeline variants, by name: ``fast`` (ours, the default) and ``reference`` (the published
benchmark's, also called ``seed``). Each is a bench.variants.base.Variant."""

from __future__ import annotations

from bench.variants.base import Variant
from bench.variants.fast import Fast
from bench.variants.reference import Reference

VARIANTS: dict[str, Variant] = {v.name: v for v in (Fast(), Reference())}
ALIASES = {alias: v.name for v in VARIANTS.values() for alias in v.aliases}
NAMES = tuple(VARIANTS)


def canonical(name: str) -> str:
    """A variant's name from its name or an alias; KeyError for neither."""
    name = ALIASES.get(name, name)
    if name not in VARIANTS:
        raise KeyError(name)
    return name


def variant(name: str) -> Variant:
    """The variant called ``name`` (or an alias of it)."""
    return VARIANTS[canonical(name)]


__all__ = ["ALIASES", "NAMES", "VARIANTS", "Variant", "canonical", "variant"]
