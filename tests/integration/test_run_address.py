"""`sandbox run --address` end to end: the real CLI in a subprocess against an echo backend on
loopback (what `sandbox echo` serves). No cluster."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.echo.http import EchoServer

ROOT = Path(__file__).resolve().parents[2]

MANIFESTS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: 80}]
"""

PASSING = """\
description: The echo backend answers every host; what it saw is what was sent.
gateway: eg
consecutive: 2
timeout: 3
checks:
  - name: routed
    request: {host: www.example.com, path: "/get?x=1", headers: {X-Foo: bar}}
    expect:
      status: 200
      backend: backend
      namespace: default
      request: {host: www.example.com, path: "/get?x=1", headers: {x-foo: bar}}
  - name: response headers set by the backend
    request: {host: www.example.com, backend_response_headers: {X-Resp: v}}
    expect: {headers: {X-Resp: v}, absent_headers: [Server]}
"""

FAILING = """\
description: Expectations the echo backend does not meet.
gateway: eg
consecutive: 2
timeout: 1.5
checks:
  - name: routed
    request: {host: www.example.com, path: /get}
    expect: {status: 200, backend: backend}
  - name: other hosts get 404
    request: {host: other.example.com, path: /get}
    expect: {status: 404}
  - name: wrong backend and path
    request: {host: www.example.com, path: /get}
    expect:
      status: 200
      backend: infra-backend-v2
      request: {path: /rewritten}
"""


def _default_sigint() -> None:
    """In the child, before exec: SIGINT as a terminal's process gets it. A test run started in
    the background by a non-interactive shell inherits SIGINT ignored, and Python keeps an
    ignored SIGINT ignored, so the Ctrl-C these tests send would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def scenario(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "scenario.yaml").write_text(text)
    (folder / "gateway.yaml").write_text(MANIFESTS)
    return folder


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer(pod="backend-6f4d5c9b7-x7k2p", namespace="default") as server:
        yield server


def sandbox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_passing_scenario_exits_0(tmp_path: Path, echo: EchoServer) -> None:
    folder = scenario(tmp_path, "pass", PASSING)
    junit = tmp_path / "junit.xml"
    r = sandbox(
        "run",
        str(folder),
        "--address",
        f"127.0.0.1:{echo.port}",
        "--junit",
        str(junit),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS pass / routed (2 requests" in r.stdout
    assert "PASS pass / response headers set by the backend" in r.stdout
    assert "2 executed, 2 passed, 0 failed, 0 skipped" in r.stdout
    assert "Traceback" not in r.stderr
    assert ET.parse(junit).getroot().get("failures") == "0"


def test_failing_scenario_exits_1_and_shows_expected_vs_observed(
    tmp_path: Path, echo: EchoServer
) -> None:
    folder = scenario(tmp_path, "fail", FAILING)
    r = sandbox("run", str(folder), "--address", f"127.0.0.1:{echo.port}", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "PASS fail / routed" in out
    assert "FAILED fail / other hosts get 404\n  at      fail/scenario.yaml:9\n" in out
    assert (
        f"  request curl -sS -i -H 'Host: other.example.com' http://127.0.0.1:{echo.port}/get\n"
    ) in out
    assert "no matching response (needs 2 in a row within 1.5s)" in out
    assert "  field   expected  observed (last response)\n  status  404       200\n" in out
    assert (
        "  last response: 200; from pod backend-6f4d5c9b7-x7k2p in namespace default; "
        "backend saw GET /get Host: other.example.com"
    ) in out
    assert "  request.path  /rewritten         /get\n" in out
    assert "  backend       infra-backend-v2*  backend-6f4d5c9b7-x7k2p\n" in out
    assert "3 executed, 1 passed, 2 failed, 0 skipped" in out
    assert "Traceback" not in r.stderr


def test_quiet_and_verbose_after_the_command(tmp_path: Path, echo: EchoServer) -> None:
    # like pytest -q / hurl --verbose: the flags work where people type them, after the command
    folder = scenario(tmp_path, "fail", FAILING)
    r = sandbox("run", str(folder), "--address", f"127.0.0.1:{echo.port}", "-q", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "PASS" not in r.stdout  # -q: failures and the summary only
    assert "FAIL fail / other hosts get 404" in r.stdout
    assert "FAILED fail / other hosts get 404\n  at      fail/scenario.yaml:9" in r.stdout
    assert (
        r.stdout.rstrip()
        .splitlines()[-1]
        .startswith("3 executed, 1 passed, 2 failed, 0 skipped in ")
    )
    r = sandbox(
        "run",
        str(folder),
        "--address",
        f"127.0.0.1:{echo.port}",
        "-k",
        "routed",
        "-v",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "PASS fail / routed" in r.stdout


def test_json_output_and_k_pattern(tmp_path: Path, echo: EchoServer) -> None:
    folder = scenario(tmp_path, "fail", FAILING)
    r = sandbox(
        "run",
        str(folder),
        "--address",
        f"127.0.0.1:{echo.port}",
        "-o",
        "json",
        "-k",
        "404",
        cwd=tmp_path,
    )
    assert r.returncode == 1
    doc = json.loads(r.stdout)  # stdout is only the JSON document
    assert doc["target"] == "address" and doc["summary"]["failed"] == 1
    [check] = doc["scenarios"][0]["checks"]
    assert check["name"] == "other hosts get 404"
    assert check["mismatches"] == [{"field": "status", "expected": "404", "observed": "200"}]
    assert "FAILED fail / other hosts get 404" in r.stderr  # people still see why


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_listening_is_an_environment_error_within_seconds(tmp_path: Path) -> None:
    import time

    port = _closed_port()
    start = time.monotonic()
    # the library's quickstart (30 s a check) used to take 90 s and exit 1
    r = sandbox("run", "quickstart", "--address", f"127.0.0.1:{port}", cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert r.returncode == 3, r.stdout + r.stderr
    assert elapsed < 8, elapsed
    assert (
        f"ERROR quickstart: nothing listens at 127.0.0.1:{port}: every request was refused "
        "(3 in 2.0s)" in r.stdout
    )
    assert (
        f"hint: start the gateway you mean to test so that it listens at 127.0.0.1:{port} "
        f"(for a plain echo backend: `sandbox echo --port {port}`)" in r.stdout
    )
    # the first check shows what it sent and saw; the others were not sent at all
    assert "FAILED quickstart / www.example.com is routed to the backend" in r.stdout
    assert "no response (ConnectionError: Connection refused)" in r.stdout
    assert (
        f"SKIP quickstart / another host is not routed (not run: nothing listens at "
        f"127.0.0.1:{port}" in r.stdout
    )
    assert "1 executed, 0 passed, 1 failed, 2 skipped in " in r.stdout
    assert "Traceback" not in r.stderr


def test_a_check_shorter_than_the_grace_says_so_too(tmp_path: Path) -> None:
    port = _closed_port()
    folder = scenario(tmp_path, "pass", PASSING.replace("timeout: 3", "timeout: 0.5"))
    r = sandbox("run", str(folder), "--address", f"127.0.0.1:{port}", "--fail-fast", cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"nothing listens at 127.0.0.1:{port}: every request was refused (1 in " in r.stdout
    assert "SKIP pass / response headers set by the backend (not run: nothing listens" in r.stdout


def test_a_gateway_that_answered_and_then_refuses_is_still_waited_for(
    tmp_path: Path, echo: EchoServer
) -> None:
    # a gateway restarting under --address: refusals after an answer stay misses (exit 1)
    import socket
    import threading

    port = _closed_port()
    stop = threading.Event()
    listening = threading.Event()

    def answer_once_then_refuse() -> None:
        with socket.socket() as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", port))
            srv.listen()
            listening.set()
            conn, _ = srv.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
        stop.wait(10)

    t = threading.Thread(target=answer_once_then_refuse, daemon=True)
    t.start()
    assert listening.wait(5)
    try:
        folder = scenario(tmp_path, "pass", PASSING.replace("timeout: 3", "timeout: 4"))
        r = sandbox(
            "run", str(folder), "--address", f"127.0.0.1:{port}", "-k", "routed", cwd=tmp_path
        )
    finally:
        stop.set()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nothing listens" not in r.stdout
    assert "FAIL pass / routed (4 requests" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--address", "localhost"], "--address: expected HOST:PORT"),
        (
            ["--address", "http://127.0.0.1:8080/"],
            "not a URL: 'http://127.0.0.1:8080/'\nhint: --address 127.0.0.1:8080",
        ),
        (["--address", "127.0.0.1:99999"], "--address: port must be 1-65535"),
        (
            ["--address", "127.0.0.1:80", "--provider", "local"],
            "cannot be combined with --provider",
        ),
        (["-k", "zzz", "--address", "127.0.0.1:80"], "-k: -k 'zzz' matches no check"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    folder = scenario(tmp_path, "pass", PASSING)
    r = sandbox("run", str(folder), *args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_list_and_check_the_shipped_scenarios() -> None:
    r = sandbox("list", "-o", "json", cwd=ROOT)
    assert r.returncode == 0
    names = {row["name"]: row for row in json.loads(r.stdout)}
    assert names["quickstart"]["valid"] and names["quickstart"]["checks"] == 3
    r = sandbox("check", "--no-model", "quickstart", "scenarios/quickstart/scenario.yaml", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    # which validation depends on the CRDs at hand: either way the line says which one it did
    assert (
        len(
            re.findall(
                r"^ok quickstart: 3 checks; (manifests valid against the CRD "
                r"schemas|CRDs not at hand, manifests pass the reference model's "
                r"field check); model not consulted \(--no-model\)$",
                r.stdout,
                re.MULTILINE,
            )
        )
        == 2
    )
    r = sandbox(
        "check",
        "--no-model",
        "-q",
        "quickstart",
        str(ROOT / "tests" / "data" / "broken" / "tabs"),
        cwd=ROOT,
    )
    assert r.returncode == 2
    assert r.stdout == (
        "2 scenarios: 1 ok, 1 invalid, 0 where the reference model disagrees\n"
    )  # -q: no "ok" lines, the problems on stderr
    assert "tabs/scenario.yaml:4: invalid YAML" in r.stderr
    # a folder of scenarios, as pytest collects it, checks every one of them
    r = sandbox("check", "--no-model", "-o", "json", "scenarios", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    checked = {entry["name"] for entry in json.loads(r.stdout)}
    assert "quickstart" in checked and checked == set(names)


def test_sandbox_echo_command_serves_until_interrupted(tmp_path: Path) -> None:
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "POD_NAME": "echo-1-2", "NAMESPACE": "ns"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "echo", "--port", str(port), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/x", timeout=1).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "sandbox echo did not start"
                time.sleep(0.05)
        assert (body["pod"], body["namespace"], body["path"]) == ("echo-1-2", "ns", "/x")
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "stopped" in stderr and "Traceback" not in stderr
    assert '"GET /x HTTP/1.1" 200' in stderr  # -v: a line per request


def test_ctrl_c_exits_130_without_traceback(tmp_path: Path) -> None:
    import threading

    arrived = threading.Event()
    slow = textwrap.dedent("""\
        description: a fast check, then one whose backend answers only after 30s
        gateway: eg
        checks:
          - {name: fast, request: {path: /fast}, expect: {status: 200}}
          - {name: slow, request: {path: "/slow?delay=30s"}, expect: {status: 200}}
        """)
    folder = scenario(tmp_path, "slow", slow)
    with EchoServer(pod="backend-1-2", log=lambda line: arrived.set()) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox",
                "run",
                str(folder),
                "--address",
                f"127.0.0.1:{server.port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            preexec_fn=_default_sigint,
        )
        try:
            # the echo logs each answer: once the fast check's are in, the run goes on to the
            # slow one (?delay=30s), so the interrupt lands while the run is busy
            assert arrived.wait(20) or proc.poll() is not None
        finally:
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
