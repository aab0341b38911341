"""``sandbox run SCENARIO --provider local``: the real CLI, the real model, real loopback sockets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart"


def sandbox(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "NO_COLOR": "1", "SANDBOX_OUTPUT": "text"},
        check=False,
    )


@pytest.fixture(autouse=True)
def _needs_quickstart() -> None:
    # the quickstart is part of the project (README): missing is a failure, never a skip
    assert (QUICKSTART / "scenario.yaml").exists(), f"{QUICKSTART}/scenario.yaml is missing"


def test_run_quickstart_locally_passes() -> None:
    started = time.monotonic()
    result = sandbox("run", "quickstart", "--provider", "local", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == "local"
    assert report["summary"]["failed"] == 0
    assert report["summary"]["passed"] == len(report["scenarios"][0]["checks"]) >= 3
    assert "envoy" not in result.stderr.lower()
    assert time.monotonic() - started < 10  # interpreter start included


def test_run_with_a_wrong_expectation_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "quickstart-wrong"
    shutil.copytree(QUICKSTART, folder)
    text = (folder / "scenario.yaml").read_text()
    assert "backend: backend\n" in text
    text = text.replace("backend: backend\n", "backend: not-the-backend\n", 1)
    text = text.replace("gateway: eg\n", "gateway: eg\ntimeout: 0.5\n", 1)
    (folder / "scenario.yaml").write_text(text)
    result = sandbox("run", str(folder), "--provider", "local")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "not-the-backend" in out
    assert "FAIL" in out
    # the failure report carries the local provider's diagnostics, naming it
    assert "provider local" in out
    assert "www.example.com/get" in out
    assert "envoy proxy" not in out.lower() and "server: envoy" not in out.lower()


def test_a_wrong_expectation_fails_in_seconds_not_its_30s(tmp_path: Path) -> None:
    # the reference gateway never changes its answer: the first round of 3 requests decides
    folder = tmp_path / "quickstart-wrong"
    shutil.copytree(QUICKSTART, folder)
    text = (folder / "scenario.yaml").read_text()
    assert "expect: {status: 404}" in text and "timeout" not in text  # 30 s a check
    (folder / "scenario.yaml").write_text(
        text.replace("expect: {status: 404}", "expect: {status: 200}")
    )
    started = time.monotonic()
    result = sandbox("run", str(folder), "--provider", "local")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed <= 8, elapsed  # interpreter start included
    assert "FAIL quickstart-wrong / another host is not routed (3 requests, " in result.stdout
    assert (
        "no matching response (needs 3 in a row; the first 3 decide: this target's answers "
        "do not change over time)"
    ) in result.stdout
    assert "  status  200       404\n" in result.stdout


def test_timeout_option_and_env_replace_the_checks_own(tmp_path: Path) -> None:
    import os

    from sandbox.echo.http import EchoServer

    folder = tmp_path / "quickstart-wrong"
    shutil.copytree(QUICKSTART, folder)
    text = (folder / "scenario.yaml").read_text()
    (folder / "scenario.yaml").write_text(
        text.replace("expect: {status: 404}", "expect: {status: 418}")
    )
    # an echo backend as the gateway (not settled: it converges until the timeout)
    with EchoServer() as echo:
        address = f"127.0.0.1:{echo.port}"
        started = time.monotonic()
        result = sandbox(
            "run", str(folder), "--address", address, "-k", "another", "--timeout", "1.5"
        )
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stdout + result.stderr
        assert elapsed < 8, elapsed
        assert "no matching response (needs 3 in a row within 1.5s)" in result.stdout
        env = {**os.environ, "NO_COLOR": "1", "SANDBOX_CHECK_TIMEOUT": "1"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sandbox",
                "run",
                str(folder),
                "--address",
                address,
                "-k",
                "another",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 1, result.stderr
        [check] = json.loads(result.stdout)["scenarios"][0]["checks"]
        assert check["timeout"] == 1.0 and check["elapsed"] < 2
    for bad in ("0", "-1", "soon"):
        result = sandbox("run", str(folder), "--provider", "local", "--timeout", bad)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--timeout" in result.stderr and "Traceback" not in result.stderr
