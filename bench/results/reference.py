"""The reference benchmark's published figures, kept as data in results/reference/."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "reference" / "published.json"


@lru_cache
def published() -> dict[str, Any]:
    return json.loads(PUBLISHED.read_text())


def ray_run_for(size: str | None) -> dict[str, Any] | None:
    """The published Ray figure for a named size, if the study measured one."""
    return next((r for r in published()["runs"] if r["system"] == "ray" and r["size"] == size), None)
