"""The local provider stands in an echo backend for every Deployment behind a Service: it says
so when a Deployment's image is not the echo backend (an nginx Deployment would pass here and
fail on a cluster)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.cli.main import main
from sandbox.scenario.load import load_scenario
from sandbox.targets.local.pods import is_echo_image
from sandbox.targets.local.target import LocalTarget

ROOT = Path(__file__).resolve().parents[2]
ECHO = "registry.k8s.io/gateway-api/echo-basic:v1.5.1"


def _with_image(tmp_path: Path, image: str) -> Path:
    folder = tmp_path / "app"
    shutil.copytree(ROOT / "scenarios" / "quickstart", folder)
    manifest = folder / "quickstart.yaml"
    assert ECHO in manifest.read_text()
    manifest.write_text(manifest.read_text().replace(ECHO, image))
    return folder


@pytest.mark.parametrize(
    ("image", "echo"),
    [
        (ECHO, True),
        ("registry.k8s.io/gateway-api/echo-basic:v1.6.0", True),
        ("registry.k8s.io/gateway-api/echo-basic@sha256:" + "a" * 64, True),
        ("registry.k8s.io/gateway-api/echo-basic", True),
        ("nginx:1.27", False),
        ("registry.k8s.io/gateway-api/echo-advanced:v1.5.1", False),
        ("localhost:5000/echo-basic:v1", False),
    ],
)
def test_echo_images(image: str, echo: bool) -> None:
    assert is_echo_image(image) is echo


def test_an_nginx_deployment_is_warned_about(tmp_path: Path) -> None:
    scenario = load_scenario(_with_image(tmp_path, "nginx:1.27"))
    said: list[str] = []
    with LocalTarget(warn=said.append).deploy(scenario) as deployment:
        diagnostics = deployment.diagnostics()
    warning = (
        "app: Deployment default/backend runs nginx:1.27, not the echo backend "
        "(registry.k8s.io/gateway-api/echo-basic): the local provider answers for its "
        "pods with an echo backend all the same"
    )
    assert len(said) == 1 and said[0].startswith(warning)
    assert "  warning: Deployment default/backend runs nginx:1.27" in diagnostics


def test_the_echo_backend_is_not_warned_about() -> None:
    said: list[str] = []
    with LocalTarget(warn=said.append).deploy(load_scenario(ROOT / "scenarios" / "quickstart")):
        pass
    assert said == []


def test_run_says_it_on_stderr_and_in_the_report_diagnostics(tmp_path: Path) -> None:
    folder = _with_image(tmp_path, "nginx:1.27")
    scenario = folder / "scenario.yaml"
    scenario.write_text(
        scenario.read_text().replace(
            "expect: {status: 404}",  # fails, fast
            "expect: {status: 418}\n    timeout: 1",
        )
    )
    result = CliRunner().invoke(main, ["run", "--provider", "local", "-o", "json", str(folder)])
    assert result.exit_code == 1, result.output
    assert "warning: app: Deployment default/backend runs nginx:1.27" in result.stderr
    report = json.loads(result.stdout)
    assert (
        "warning: Deployment default/backend runs nginx:1.27"
        in report["scenarios"][0]["diagnostics"]
    )
