"""`sandbox check` and `sandbox run` say why a route of the scenario is attached to no listener,
as `sandbox explain` does (the reference model's notes), with the route's file:line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart"


def sandbox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def broken(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "qs"
    shutil.copytree(QUICKSTART, folder)
    manifest = folder / "quickstart.yaml"
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new, 1))
    return folder


def route_line(folder: Path) -> int:
    """The 1-based line where the HTTPRoute's document starts (its apiVersion line)."""
    lines = (folder / "quickstart.yaml").read_text().splitlines()
    return lines.index("kind: HTTPRoute")  # the 0-based index of the line after it


SECTION = (
    "  parentRefs:\n    - name: eg\n",
    "  parentRefs:\n    - name: eg\n      sectionName: https\n",
)
WHY_SECTION = (
    "HTTPRoute default/backend is attached to no listener: parentRef Gateway default/eg "
    "sectionName=https: not accepted (sectionName https names no listener of Gateway "
    "default/eg (listeners: http:80))"
)


def test_check_adds_why_a_route_is_attached_nowhere(tmp_path: Path) -> None:
    folder = broken(tmp_path, *SECTION)
    r = sandbox("check", "qs", "--no-model", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # valid: only the model can tell
    r = sandbox("check", "qs", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "status: model says 404, expected 200" in r.stderr
    assert f"  qs/quickstart.yaml:{route_line(folder)}: {WHY_SECTION}\n" in r.stderr
    r = sandbox("check", "qs", "-o", "json", cwd=tmp_path)
    [entry] = json.loads(r.stdout)
    assert f"qs/quickstart.yaml:{route_line(folder)}: {WHY_SECTION}" in entry["model"]


def test_check_says_nothing_of_the_kind_when_the_model_agrees(tmp_path: Path) -> None:
    # the route is attached nowhere on purpose and the scenario expects 404s: no disagreement
    folder = broken(tmp_path, *SECTION)
    text = (folder / "scenario.yaml").read_text()
    (folder / "scenario.yaml").write_text(
        text.replace("status: 200", "status: 404")
        .replace("      backend: backend\n", "")
        .replace("      namespace: default\n", "")
        .replace("      request: {host: www.example.com, path: /get, method: GET}\n", "")
        .replace('      request: {path: "/search?q=gateway&page=2"}\n', "")
    )
    r = sandbox("check", "qs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "attached to no listener" not in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (*SECTION, WHY_SECTION),
        (
            "kind: HTTPRoute\nmetadata:\n  name: backend\n",
            "kind: HTTPRoute\nmetadata:\n  name: backend\n  namespace: apps\n",
            "HTTPRoute apps/backend is attached to no listener: parentRef Gateway apps/eg: no such "
            "Gateway (Gateways in the manifests: default/eg)",
        ),
        (
            "      port: 80\n",
            "      port: 80\n      hostname: api.example.com\n",
            "not accepted (listener http: no route hostname (www.example.com) intersects listener "
            "hostname api.example.com)",
        ),
    ],
)
def test_run_on_the_local_provider_says_why_in_the_diagnostics(
    tmp_path: Path, old: str, new: str, why: str
) -> None:
    broken(tmp_path, old, new)
    if "namespace: apps" in new:  # the route's namespace must exist
        with (tmp_path / "qs" / "quickstart.yaml").open("a") as f:
            f.write("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n")
    r = sandbox("run", "qs", "--provider", "local", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    diagnostics = r.stdout.split("diagnostics for qs:", 1)[1]
    assert "    not attached: " in diagnostics and why in diagnostics, diagnostics
