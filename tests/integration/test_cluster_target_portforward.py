"""PortForward against the fake kubectl port-forward (tests/fakes/kubectl_pf.py), real loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.echo.http import EchoServer
from sandbox.errors import WaitTimeout
from sandbox.infra.portforward import PortForward, PortForwardError

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "kubectl_pf.py"
KUBECTL = [sys.executable, str(FAKE), "--kubeconfig", "/nonexistent", "--context", "k3d-test"]


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer(pod="envoy-pod", namespace="envoy-gateway-system") as server:
        yield server


def _env(echo: EchoServer, state: Path, **extra: str) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update({"FAKE_PF_UPSTREAM": f"127.0.0.1:{echo.port}", "FAKE_PF_STATE": str(state)})
    env.update(extra)
    return env


def _get(port: int, path: str = "/get") -> dict[str, object]:
    r = requests.get(
        f"http://127.0.0.1:{port}{path}", headers={"Host": "www.example.com"}, timeout=5
    )
    assert r.status_code == 200
    data = json.loads(r.text)
    assert isinstance(data, dict)
    return data


def _wait_dead(pf: PortForward, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while pf.alive():
        assert time.monotonic() < deadline, "fake kubectl did not exit"
        time.sleep(0.02)


def _runs(state: Path) -> list[str]:
    return (state / "runs.log").read_text().splitlines()


def test_forwards_to_the_service_and_reports_ports(echo: EchoServer, tmp_path: Path) -> None:
    with PortForward(
        KUBECTL,
        "svc/envoy-ns-eg-1234",
        80,
        namespace="envoy-gateway-system",
        env=_env(echo, tmp_path),
    ) as pf:
        port = pf.port()
        assert port > 0
        assert pf.target_port == 10080  # EG's +10000 shift, as kubectl prints it
        seen = _get(port, "/get?x=1")
        assert seen["path"] == "/get?x=1"
        assert seen["host"] == "www.example.com"
        assert seen["pod"] == "envoy-pod"
        assert pf.port() == port
    assert not pf.alive()
    assert "-n envoy-gateway-system svc/envoy-ns-eg-1234 :80" in _runs(tmp_path)[0]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _wait_restarts(pf: PortForward, n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not (pf.restarts >= n and pf.alive()):
        assert time.monotonic() < deadline, f"no restart #{n}"
        time.sleep(0.02)


def test_supervisor_restarts_on_the_same_port(echo: EchoServer, tmp_path: Path) -> None:
    env = _env(echo, tmp_path, FAKE_PF_DIE_AFTER="2", FAKE_PF_DIE_RUNS="1")
    with PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=env) as pf:
        port = pf.port()
        _get(port)
        _get(port)  # the second connection; then the fake "loses the pod"
        _wait_restarts(pf, 1)  # nobody called port(): the supervisor restarted it
        _get(port)  # the address handed out before still works
        _get(pf.port())
        assert pf.port() == port
        assert pf.restarts == 1
    runs = _runs(tmp_path)
    assert len(runs) == 2
    assert runs[0].endswith(" :80") and runs[1].endswith(f" {port}:80")


def test_port_restarts_when_it_finds_kubectl_gone_first(echo: EchoServer, tmp_path: Path) -> None:
    env = _env(echo, tmp_path, FAKE_PF_DIE_AFTER="1", FAKE_PF_DIE_RUNS="1")
    with PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=env, restart_backoff=30) as pf:
        port = pf.port()
        _get(port)
        _wait_dead(pf)
        assert pf.port() == port  # restarted here, not by the (backing-off) supervisor
        assert pf.restarts == 1
        _get(port)
    assert len(_runs(tmp_path)) == 2


def test_restart_takes_a_new_port_when_the_old_one_is_taken(
    echo: EchoServer, tmp_path: Path
) -> None:
    env = _env(echo, tmp_path, FAKE_PF_DIE_AFTER="1", FAKE_PF_DIE_RUNS="1")
    with PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=env, restart_backoff=30) as pf:
        port = pf.port()
        _get(port)
        _wait_dead(pf)
        squatter = socket.socket()
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        try:
            new = pf.port()
        finally:
            squatter.close()
        assert new != port
        assert pf.restarts == 1
        _get(new)
    runs = _runs(tmp_path)
    assert [r.split()[-1] for r in runs] == [":80", f"{port}:80", ":80"]


def test_gives_up_after_bounded_restarts_with_kubectl_stderr(
    echo: EchoServer, tmp_path: Path
) -> None:
    env = _env(echo, tmp_path, FAKE_PF_DIE_AFTER="1")
    pf = PortForward(
        KUBECTL, "svc/envoy-x", 80, namespace="ns", env=env, max_restarts=2, restart_backoff=0.01
    )
    with pf, pytest.raises(PortForwardError) as info:
        for _ in range(20):
            _get(pf.port())
            _wait_dead(pf)
    assert pf.restarts == 2
    message = str(info.value)
    assert "restart limit 2" in message
    assert "error: lost connection to pod" in message
    assert info.value.exit_code == 3
    assert len(_runs(tmp_path)) == 3


def test_start_failure_says_what_kubectl_said(echo: EchoServer, tmp_path: Path) -> None:
    reason = "unable to forward port because pod is not running. Current status=Pending"
    env = _env(echo, tmp_path, FAKE_PF_FAIL=reason)
    pf = PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=env)
    with pytest.raises(PortForwardError) as info:
        pf.start()
    assert f"error: {reason}" in str(info.value)
    assert "did not start" in str(info.value)
    pf.close()


def test_ready_timeout_is_bounded_and_stops_kubectl(echo: EchoServer, tmp_path: Path) -> None:
    env = _env(echo, tmp_path, FAKE_PF_DELAY="30")
    pf = PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=env, ready_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        pf.start()
    assert time.monotonic() - t0 < 8
    assert "Forwarding from" in str(info.value)
    assert not pf.alive()
    pf.close()


def test_missing_kubectl_is_a_tool_error(tmp_path: Path) -> None:
    pf = PortForward([str(tmp_path / "no-kubectl")], "svc/x", 80, namespace="ns")
    with pytest.raises(PortForwardError, match="cannot run"):
        pf.start()


def test_close_interrupts_kubectl_cleanly(echo: EchoServer, tmp_path: Path) -> None:
    pf = PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=_env(echo, tmp_path))
    pf.start()
    run = pf._run
    assert run is not None
    pf.close()
    assert run.proc.returncode == 0  # SIGINT: the fake, like kubectl, closes and exits 0
    pf.close()  # idempotent
    with pytest.raises(PortForwardError, match="closed"):
        pf.port()


def test_fake_reports_port_in_use_like_kubectl(tmp_path: Path) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    port = squatter.getsockname()[1]
    try:
        result = subprocess.run(
            [*KUBECTL, "port-forward", "--address", "127.0.0.1", "svc/web", f"{port}:8080"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    finally:
        squatter.close()
    assert result.returncode == 1
    assert f"Unable to listen on port {port}:" in result.stderr
    assert (
        f"error: unable to listen on any of the requested ports: [{{{port} 8080}}]" in result.stderr
    )


def test_an_interrupted_kubectl_is_restarted_only_on_demand(
    echo: EchoServer, tmp_path: Path
) -> None:
    import signal

    with PortForward(KUBECTL, "svc/envoy-x", 80, namespace="ns", env=_env(echo, tmp_path)) as pf:
        port = pf.port()
        run = pf._run
        assert run is not None
        run.proc.send_signal(signal.SIGINT)  # what the terminal's Ctrl-C does to the child
        assert run.proc.wait(timeout=10) == 0
        time.sleep(0.5)  # more than the supervisor's back-off: it must not restart
        assert not pf.alive() and pf.restarts == 0
        assert pf.port() == port  # on demand
        assert pf.restarts == 1
        _get(port)
