"""Manifests for the reference model (``sandbox explain -f``): read by :mod:`sandbox.manifests`
(the one loader: file:line of every object, ``kind: List`` expanded, one error wording, the
alias limit) and checked by the model's field check (:mod:`sandbox.scenario.fields`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.manifests import (
    InvalidInput,
    Manifest,
    Problem,
    field_name,
    load_paths,
)
from sandbox.scenario import fields


def field_problems(found: list[Manifest]) -> list[Problem]:
    """The model's field check of ``found`` as Problems (``Kind/name: field: message``)."""
    out: list[Problem] = []
    for p in fields.check_manifests(found):
        out.append(
            Problem(
                p.manifest.file,
                p.manifest.line_of(p.path),
                None,
                f"{p.manifest.label}: {field_name(p.path)}: {p.message}",
            )
        )
    return out


def load_manifests(paths: list[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects, sources) for Model.from_objects(objects, sources): every object of the files
    and folders, with "file:line". Raises InvalidInput (exit 2) listing every problem."""
    found = load_paths(paths)
    problems = field_problems(found)
    if problems:
        raise InvalidInput(problems, what="manifests")
    return [m.obj for m in found], [m.source for m in found]
