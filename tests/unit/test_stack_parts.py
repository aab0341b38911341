"""Pure parts of the stack: settings from flags/env, names, phases, Docker messages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from rich.console import Console

from sandbox.cli.common import ConsoleReporter
from sandbox.cli.stack import settings_from
from sandbox.errors import DockerUnavailable, InputError
from sandbox.infra import docker_engine, stack
from sandbox.infra.progress import Phases


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CLUSTER_NAME", "from-env")
    monkeypatch.setenv("SANDBOX_K3S_IMAGE", "rancher/k3s:v1.34.0-k3s1")
    s = settings_from(name=None, k3s_image=None, k3d_version="v5.9.1")
    assert (s.cluster_name, s.k3s_image, s.k3d_version) == (
        "from-env",
        "rancher/k3s:v1.34.0-k3s1",
        "v5.9.1",
    )
    assert settings_from(name="flag").cluster_name == "flag"
    assert settings_from(name="flag").kube_context == "k3d-flag"


@pytest.mark.parametrize("name", ["sandbox", "a", "sbx-1", "x" * 32, "a.b"])
def test_valid_cluster_names(name: str) -> None:
    stack.validate_cluster_name(name)


@pytest.mark.parametrize("name", ["", "-x", "x-", "a_b", "a b", "x" * 33])
def test_invalid_cluster_names(name: str) -> None:
    with pytest.raises(InputError) as info:
        stack.validate_cluster_name(name)
    assert info.value.field == "--name"


def test_api_port_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_API_PORT", raising=False)
    assert stack.api_port_spec() == "127.0.0.1:random"
    monkeypatch.setenv("SANDBOX_API_PORT", "6550")
    assert stack.api_port_spec() == "127.0.0.1:6550"


def test_kubeconfig_port(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    assert stack._kubeconfig_port(path) is None
    path.write_text("clusters:\n- name: k3d-s\n  cluster: {server: 'https://127.0.0.1:41234'}\n")
    assert stack._kubeconfig_port(path) == "41234"
    path.write_text("not: [a kubeconfig")
    assert stack._kubeconfig_port(path) is None


def test_phases_record_durations_and_report_interrupts() -> None:
    console = Console(record=True, width=200)
    phases = Phases(ConsoleReporter(console))
    with phases.phase("one", "first") as act:
        act.append("done it")
    assert [(r.name, r.action) for r in phases.results] == [("one", "done it")]
    assert phases.results[0].seconds >= 0
    with pytest.raises(KeyboardInterrupt), phases.phase("two", "second"):
        raise KeyboardInterrupt
    text = console.export_text()
    assert "✓ one: done it" in text
    assert "✗ two: interrupted" in text
    assert "run `sandbox up` again" in text
    assert len(phases.results) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
            "no such socket",
        ),
        (
            "HTTPConnectionPool: Max retries exceeded (Caused by NewConnectionError: [Errno 111] Connection refused)",
            "connection refused",
        ),
        ("('Connection aborted.', PermissionError(13, 'Permission denied'))", "permission denied"),
        (
            "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=4)",
            "no answer within 4s",
        ),
    ],
)
def test_docker_reasons(raw: str, reason: str) -> None:
    assert docker_engine._reason(Exception(raw), 4).startswith(reason)


def test_docker_fix_names_the_remedies() -> None:
    hint = docker_engine.fix_hint()
    assert "DOCKER_HOST" in hint and "docker info" in hint


def _docker_config(tmp_path: Path, current: str | None, contexts: dict[str, str]) -> Path:
    """A ~/.docker as the Docker CLI writes it: config.json with currentContext, and
    contexts/meta/<sha256(name)>/meta.json (docker/cli cli/context/store/metadatastore.go)."""
    root = tmp_path / "docker-config"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"currentContext": current} if current else {}))
    for name, host in contexts.items():
        meta = root / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        (meta / "meta.json").write_text(
            json.dumps(
                {
                    "Name": name,
                    "Metadata": {},
                    "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
                }
            )
        )
    return root


def test_engine_is_chosen_as_the_docker_cli_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desktop = "unix:///Users/me/.docker/run/docker.sock"
    colima = "unix:///Users/me/.colima/default/docker.sock"
    config = _docker_config(tmp_path, "desktop-linux", {"desktop-linux": desktop, "colima": colima})
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    # the current context wins over the default socket, existing or not (Docker Desktop, macOS)
    assert docker_engine.engine_host() == desktop
    assert docker_engine.Engine(docker_engine.engine_host(), "27", "1.47", "linux").env() == {
        "DOCKER_HOST": desktop
    }
    monkeypatch.setenv("DOCKER_CONTEXT", "colima")  # DOCKER_CONTEXT over currentContext
    assert docker_engine.engine_host() == colima
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")  # DOCKER_HOST over everything
    assert docker_engine.engine_host() == "tcp://127.0.0.1:2375"


def test_default_context_means_the_default_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(_docker_config(tmp_path, None, {})))
    assert docker_engine.engine_host() is None
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert docker_engine.engine_host() is None
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")  # unknown context: the SDK default
    assert docker_engine.engine_host() is None


def test_lookahead_runs_looks_together_and_hides_a_failed_one() -> None:
    # a warm `up` confirms the stack with its read-only looks in threads: together, they take
    # the time of the slowest; a look that raised gives None, so the phase looks again itself
    # (and reports what it finds, in order)
    import threading
    import time

    looks = stack._Lookahead()
    both = threading.Barrier(2, timeout=5)  # only met when the two looks run at once

    def look(answer: bool) -> bool:
        both.wait()
        return answer

    def broken() -> bool:
        raise DockerUnavailable("no engine")

    started = time.monotonic()
    looks.start("controller", lambda: look(True))
    looks.start("class", lambda: look(False))
    looks.start("preload", broken)
    assert looks.get("controller") is True
    assert looks.get("class") is False
    assert looks.get("preload") is None
    assert looks.get("never started") is None
    assert time.monotonic() - started < 5
    looks.close()
