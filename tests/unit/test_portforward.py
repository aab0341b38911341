from __future__ import annotations

import pytest

from sandbox.infra.portforward import FORWARDING_RE, HANDLING_RE, PortForward


# Lines as client-go prints them: "Forwarding from %s -> %d" with net.JoinHostPort(addr, port)
# (staging/src/k8s.io/client-go/tools/portforward/portforward.go, getListener).
@pytest.mark.parametrize(
    ("line", "local", "remote"),
    [
        ("Forwarding from 127.0.0.1:43715 -> 10080", 43715, 10080),
        ("Forwarding from [::1]:43715 -> 10080", 43715, 10080),
        ("Forwarding from 0.0.0.0:8080 -> 8080\r", 8080, 8080),
    ],
)
def test_forwarding_line(line: str, local: int, remote: int) -> None:
    m = FORWARDING_RE.match(line)
    assert m is not None
    assert (int(m.group("local")), int(m.group("remote"))) == (local, remote)


@pytest.mark.parametrize(
    "line",
    [
        "Handling connection for 43715",
        "Failed to forward from 127.0.0.1:0 -> 80",
        "error: lost connection to pod",
        "Forwarding from 127.0.0.1 -> 80",
    ],
)
def test_other_lines_are_not_forwarding_lines(line: str) -> None:
    assert FORWARDING_RE.match(line) is None


def test_handling_line() -> None:
    assert HANDLING_RE.match("Handling connection for 43715")
    assert not HANDLING_RE.match("Handling connection for")


def test_argv_random_then_same_local_port() -> None:
    pf = PortForward(["kubectl", "--context", "c"], "svc/envoy-x", 80, namespace="ns")
    assert pf.argv() == [
        "kubectl",
        "--context",
        "c",
        "port-forward",
        "--address",
        "127.0.0.1",
        "--pod-running-timeout=60s",
        "-n",
        "ns",
        "svc/envoy-x",
        ":80",
    ]
    assert pf.argv(43715)[-1] == "43715:80"
