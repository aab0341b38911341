"""The wheel carries what an installed `sandbox` needs: the scenario library and the schema.

Builds a real wheel from this checkout (pip, with build isolation: the pinned setuptools comes
from the package index as it does for a user's `pip install .`).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_scenario_library(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = next(tmp_path.glob("gateway_sandbox-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.split("/")[2] for n in names
               if n.startswith("sandbox/library/") and n.endswith("/scenario.yaml")}
    in_repo = {p.parent.name for p in (ROOT / "scenarios").glob("*/scenario.yaml")}
    assert shipped == in_repo and "quickstart" in shipped
    for manifest in (ROOT / "scenarios" / "quickstart").glob("*.yaml"):
        assert f"sandbox/library/quickstart/{manifest.name}" in names
    assert "sandbox/data/scenario.schema.json" in names
    assert "sandbox/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "scenarios/"))]
