"""The wheel carries what an installed `sandbox` needs: the scenario library, the schemas, and
pytest as a dependency, so that `pip install gateway-sandbox` then `pytest DIR` runs one's own
scenarios.

Builds a real wheel from this checkout once (pip, with build isolation: the pinned setuptools
comes from the package index as it does for a user's `pip install .`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return next(out.glob("gateway_sandbox-*.whl"))


def test_wheel_ships_the_scenario_library(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        n.split("/")[2]
        for n in names
        if n.startswith("sandbox/library/") and n.endswith("/scenario.yaml")
    }
    in_repo = {p.parent.name for p in (ROOT / "scenarios").glob("*/scenario.yaml")}
    assert shipped == in_repo and "quickstart" in shipped
    for manifest in (ROOT / "scenarios" / "quickstart").glob("*.yaml"):
        assert f"sandbox/library/quickstart/{manifest.name}" in names
    assert "sandbox/data/scenario.schema.json" in names
    assert "sandbox/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "scenarios/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist: pytest")
    ]
    assert any(r.startswith("Requires-Dist: pytest>=") and "extra" not in r for r in requires)


def test_pip_install_then_pytest_runs_ones_own_scenarios(wheel: Path, tmp_path: Path) -> None:
    # a fresh virtualenv, the package installed the plain way (its dependencies from the index,
    # pytest among them), then pytest in a folder of one's own scenarios: a copy of quickstart
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    mine = tmp_path / "mine"
    shutil.copytree(ROOT / "scenarios" / "quickstart", mine / "my-quickstart")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SANDBOX_", "PYTEST_", "VIRTUAL_ENV"))
    }
    env["SANDBOX_CACHE_DIR"] = str(tmp_path / "cache")  # nothing cached: the model's field check
    for args in (["mine"], []):
        result = subprocess.run(
            [
                str(python),
                "-m",
                "pytest",
                *args,
                "--sandbox-provider",
                "local",
                "-p",
                "no:cacheprovider",
            ],
            cwd=tmp_path if args else mine,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 passed" in result.stdout
        assert "my-quickstart/scenario.yaml" in result.stdout
