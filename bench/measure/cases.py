"""The measurement suites of cases.toml, loaded and checked before anything runs."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError
from bench.run.launchers import NAMES as LAUNCHERS

CASES_FILE = Path(__file__).with_name("cases.toml")
KINDS = ("run", "ceiling", "preprocess", "micro", "copy", "batch_effect")
DATA_KEYS = {"size", "images", "format", "scale", "uri"}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    launcher: str = "ray"
    launcher_options: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    memory: bool = False
    after_each_run: bool = False

    def run_config(self, device: str | None = None) -> RunConfig:
        """The case's settings, with ``device`` (an override for the whole suite) when given."""
        return RunConfig(**{**self.config, **({"device": device} if device else {})})


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    data: dict[str, Any]
    cases: tuple[Case, ...]

    def only(self, names: list[str]) -> Suite:
        """The suite with just the cases named (in the suite's order)."""
        unknown = set(names) - {c.name for c in self.cases}
        if unknown:
            raise BenchError(f"suite {self.name} has no case {', '.join(sorted(unknown))}: its cases are "
                             f"{', '.join(c.name for c in self.cases)}")
        return replace(self, cases=tuple(c for c in self.cases if c.name in names))


def load(path: Path = CASES_FILE) -> dict[str, Suite]:
    """Every suite of ``path``, each case checked: a known kind and launcher, a config RunConfig
    accepts, unique names."""
    raw = tomllib.loads(path.read_text())
    suites = {}
    for name, body in raw.get("suites", {}).items():
        cases, seen = [], set()
        for entry in body.get("cases", []):
            where = f"{path.name}, suite {name}, case {entry.get('name', '?')}"
            unknown = set(entry) - {f for f in Case.__dataclass_fields__}
            if unknown:
                raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            case = Case(**entry)
            if case.kind not in KINDS:
                raise BenchError(f"{where}: kind {case.kind!r} is not one of {', '.join(KINDS)}")
            if case.launcher not in LAUNCHERS:
                raise BenchError(f"{where}: launcher {case.launcher!r} is not one of {', '.join(LAUNCHERS)}")
            if set(case.data) - DATA_KEYS:
                raise BenchError(f"{where}: data takes {', '.join(sorted(DATA_KEYS))}")
            if case.name in seen:
                raise BenchError(f"{where}: a second case of that name")
            case.run_config()  # RunConfig checks its fields now, not half-way through a suite
            seen.add(case.name)
            cases.append(case)
        suites[name] = Suite(name, body.get("summary", ""), body.get("data", {}), tuple(cases))
    return suites


def suite(name: str, path: Path = CASES_FILE) -> Suite:
    suites = load(path)
    if name not in suites:
        raise BenchError(f"no suite {name!r} in {path.name}: choose one of {', '.join(suites)}")
    return suites[name]
