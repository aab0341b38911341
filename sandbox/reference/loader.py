"""Read Kubernetes manifests from files and folders, keeping "file:line" of every object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import InputError

SKIP_FILES = {"scenario.yaml", "scenario.yml"}  # a scenario folder's own description


def manifest_files(paths: list[str | Path]) -> list[Path]:
    """Files named directly, plus every *.yaml / *.yml of named folders (sorted, not recursive,
    without scenario.yaml)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.name not in SKIP_FILES and f.is_file()
            )
            if not found:
                raise InputError(f"no *.yaml manifests in folder {p}", file=str(p))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"no such file or folder: {p}", file=str(p))
    return out


def load_documents(path: Path) -> list[tuple[dict[str, Any], int]]:
    """The non-empty YAML documents of one file with the line each starts on (1-based)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        from sandbox.scenario import describe_decode_error

        line, message = describe_decode_error(e)
        raise InputError(message, file=str(path), line=line) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", file=str(path)) from None
    docs: list[tuple[dict[str, Any], int]] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            line = node.start_mark.line + 1
            data = loader.construct_document(node)
            if data is None:
                continue
            if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
                docs.extend((item, line) for item in data["items"])
                continue
            if not isinstance(data, dict):
                raise InputError("a manifest document must be a mapping", file=str(path), line=line)
            docs.append((data, line))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line_no = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise InputError(f"invalid YAML: {problem}", file=str(path), line=line_no) from None
    finally:
        loader.dispose()
    return docs


def load_manifests(paths: list[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects, sources) for Model.from_objects(objects, sources)."""
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    for f in manifest_files(paths):
        for obj, line in load_documents(f):
            objects.append(obj)
            sources.append(f"{f}:{line}")
    return objects, sources
