"""Kubeconfig files the providers write: parse a tool's output, write privately, and the opt-in
merge into the user's default kubeconfig that never changes its current context."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ToolError


def parse_kubeconfig(text: str, *, tool: str = "k3d kubeconfig get") -> dict[str, Any]:
    """A tool's kubeconfig output (k3d prints a ``---`` line first) as a mapping."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        raise ToolError(f"{tool} printed no kubeconfig: {e}") from e
    if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("kind") != "Config":
        raise ToolError(f"{tool} printed no kubeconfig: {text[:200]!r}")
    return docs[0]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def default_kubeconfig_path() -> Path:
    """Where kubectl merges new entries: the first existing file of ``$KUBECONFIG``, else its
    last one, else ``~/.kube/config`` (client-go clientcmd loading rules; kind's
    kubeconfig/internal/kubeconfig/paths.go ``pathForMerge`` does the same)."""
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if paths:
        return Path(next((p for p in paths if os.path.isfile(p)), paths[-1]))
    return Path.home() / ".kube" / "config"


def merge_kubeconfig_into_default(config: dict[str, Any]) -> str:
    """Merge the clusters, users and contexts of ``config`` into the user's default kubeconfig
    (same-named entries are replaced; everything else, ``current-context`` included, stays).
    Returns the path written."""
    path = default_kubeconfig_path()
    current: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ToolError(
                f"{path} is not a kubeconfig: {e}", hint="fix or move it, then retry"
            ) from e
        if not isinstance(loaded, dict):
            raise ToolError(f"{path} is not a kubeconfig (not a mapping)")
        current = loaded
    current.setdefault("apiVersion", "v1")
    current.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        new = [e for e in config.get(key) or [] if isinstance(e, dict)]
        names = {e.get("name") for e in new}
        kept = [
            e for e in current.get(key) or [] if isinstance(e, dict) and e.get("name") not in names
        ]
        current[key] = kept + new
    current.setdefault("preferences", {})
    write_private(path, yaml.safe_dump(current, sort_keys=False))
    return str(path)
