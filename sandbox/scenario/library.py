"""The scenario library: where named scenarios are found (``SANDBOX_SCENARIOS``, ./scenarios,
the shipped ``sandbox.library``), and a name or path resolved to a scenario folder."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from sandbox.errors import InputError
from sandbox.manifests import did_you_mean, display_path
from sandbox.scenario.model import (
    SCENARIO_FILE,
)


def scenario_roots() -> list[Path]:
    """Where scenario names are looked up, in order: ``$SANDBOX_SCENARIOS`` (os.pathsep-separated
    folders), ``./scenarios``, and the library that comes with the package."""
    roots: list[Path] = []
    env = os.environ.get("SANDBOX_SCENARIOS")
    if env:
        roots.extend(Path(p) for p in env.split(os.pathsep) if p)
    roots.append(Path.cwd() / "scenarios")
    # the library: shipped in the wheel as sandbox/library; in a clone (or an editable install)
    # the scenarios/ folder beside the package
    package = Path(__file__).resolve().parents[1]  # sandbox/
    roots.append(package / "library")
    roots.append(package.parent / "scenarios")
    out: list[Path] = []
    for r in roots:
        if r.is_dir() and all(r.resolve() != o.resolve() for o in out):
            out.append(r)
    return out


def find_scenarios(root: str | Path) -> list[Path]:
    """Scenario folders (holding scenario.yaml) under ``root``, at any depth, sorted by path."""
    base = Path(root)
    if (base / SCENARIO_FILE).is_file():
        return [base]
    if not base.is_dir():
        return []
    return sorted(p.parent for p in base.rglob(SCENARIO_FILE) if p.is_file())


def _iter_named() -> Iterator[tuple[str, Path]]:
    for root in scenario_roots():
        for folder in find_scenarios(root):
            yield folder.name, folder


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def resolve_scenario(arg: str) -> Path:
    """A scenario folder from a path (folder or scenario.yaml) or a name under the roots."""
    p = Path(arg)
    if p.is_dir() and (p / SCENARIO_FILE).is_file():
        return p
    if p.is_file() and p.name in (SCENARIO_FILE, "scenario.yml"):
        return p.parent
    if p.is_dir():
        raise InputError(
            f"no {SCENARIO_FILE} in {display_path(p)}",
            hint="a scenario is a folder holding scenario.yaml and its manifests",
        )
    if _NAME_RE.match(arg):
        named = dict(reversed(list(_iter_named())))  # the first root wins
        if arg in named:
            return named[arg]
        hint = did_you_mean(arg, sorted(named))
        roots = (
            ", ".join(display_path(r) for r in scenario_roots()) or "(no scenarios folder found)"
        )
        raise InputError(
            f"no scenario named {arg!r}{hint}",
            hint=f"looked in {roots}; `sandbox list` shows the names",
        )
    raise InputError(
        f"scenario not found: {arg}",
        hint="give a scenario name (see `sandbox list`) or a folder path",
    )


def list_scenarios() -> list[Path]:
    """Every scenario folder under the roots (first root wins for a name), sorted by name."""
    named: dict[str, Path] = {}
    for name, folder in _iter_named():
        named.setdefault(name, folder)
    return [named[n] for n in sorted(named)]
