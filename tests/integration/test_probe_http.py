"""The probe over real loopback HTTP: the echo backend, a proxy that answers wrongly for a while
and then rightly (convergence), one that drops connections, one that is too slow."""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.echo.http import EchoServer
from sandbox.probe.prober import Prober
from sandbox.probe.types import Address
from sandbox.scenario.model import Check, Expect, ExpectedRedirect, ExpectedRequest, Request

FAST_BACKOFF = 0.02  # the 1 s upstream back-off, shortened for tests


def check(**kw: Any) -> Check:
    return Check(
        name="c",
        request=kw.pop("request", Request(host="www.example.com")),
        expect=kw.pop("expect", Expect()),
        **kw,
    )


@pytest.fixture()
def echo() -> Iterator[EchoServer]:
    with EchoServer(pod="backend-6d8f9-x2k4p", namespace="default") as server:
        yield server


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    upstream: int
    wrong_for: int  # the first N requests get a wrong answer
    seen: int
    lock: threading.Lock


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen += 1
            n = self.server.seen
        if n <= self.server.wrong_for:
            # what a gateway says while it is still programming: 503 or the wrong route
            body = b"no healthy upstream" if n % 2 else b"{}"
            self.send_response(503 if n % 2 else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=5)
        conn.request("GET", self.path, headers=dict(self.headers.items()))
        resp = conn.getresponse()
        body = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        conn.close()


def start_proxy(upstream: int, wrong_for: int) -> _Proxy:
    server = _Proxy(("127.0.0.1", 0), _ProxyHandler)
    server.upstream, server.wrong_for, server.seen = upstream, wrong_for, 0
    server.lock = threading.Lock()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


class _Dropper(socketserver.ThreadingTCPServer):
    """Accepts and closes the first ``drop`` connections, then relays to ``upstream``."""

    daemon_threads = True
    allow_reuse_address = True
    drop: int
    upstream: int
    count: int


class _DropHandler(socketserver.BaseRequestHandler):
    server: _Dropper

    def handle(self) -> None:
        self.server.count += 1
        sock: socket.socket = self.request
        if self.server.count <= self.server.drop:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()  # RST: "Connection reset by peer"
            return
        data = sock.recv(65536)
        with socket.create_connection(("127.0.0.1", self.server.upstream), timeout=5) as up:
            up.sendall(data)
            while chunk := up.recv(65536):
                sock.sendall(chunk)


def start_dropper(upstream: int, drop: int) -> _Dropper:
    server = _Dropper(("127.0.0.1", 0), _DropHandler)
    server.drop, server.upstream, server.count = drop, upstream, 0
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def addr(port: int) -> Address:
    return Address("127.0.0.1", port)


def test_echo_check_passes_with_everything_compared(echo: EchoServer) -> None:
    c = check(
        request=Request(
            host="www.example.com",
            path="/get?x=1",
            headers={"X-Foo": "bar"},
            backend_response_headers={"X-Resp": "v"},
        ),
        expect=Expect(
            backend="backend",
            namespace="default",
            headers={"x-resp": "v"},
            absent_headers=["Server"],
            request=ExpectedRequest(
                host="www.example.com",
                path="/get?x=1",
                headers={"x-foo": "bar"},
                absent_headers=["X-Bar"],
            ),
        ),
    )
    result = Prober(backoff=FAST_BACKOFF).run(c, addr(echo.port))
    assert result.passed, result.mismatches
    assert result.attempts == 3
    assert result.observed is not None and result.observed.request is not None
    assert result.observed.request.header("Connection") == "close"  # no keep-alive


def test_convergence_through_a_proxy_that_is_wrong_at_first(echo: EchoServer) -> None:
    proxy = start_proxy(echo.port, wrong_for=4)
    try:
        c = check(expect=Expect(backend="backend"), timeout=10)
        result = Prober(backoff=FAST_BACKOFF).run(c, addr(proxy.server_address[1]))
        assert result.passed, result.mismatches
        assert result.attempts == 4 + 3 and proxy.seen == 7
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_wrong_answers_until_the_timeout_report_the_last_response(echo: EchoServer) -> None:
    proxy = start_proxy(echo.port, wrong_for=10**6)
    try:
        result = Prober(backoff=FAST_BACKOFF).run(check(timeout=0.5), addr(proxy.server_address[1]))
        assert not result.passed and result.attempts >= 2
        assert result.observed is not None and result.observed.status in (404, 503)
        assert result.mismatches[0].field == "status"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_dropped_connections_are_retried(echo: EchoServer) -> None:
    dropper = start_dropper(echo.port, drop=3)
    try:
        result = Prober(backoff=FAST_BACKOFF).run(
            check(timeout=10), addr(dropper.server_address[1])
        )
        assert result.passed, result.mismatches
        assert result.attempts == 6
    finally:
        dropper.shutdown()
        dropper.server_close()


def test_always_dropped_gives_no_response_mismatch(echo: EchoServer) -> None:
    dropper = start_dropper(echo.port, drop=10**6)
    try:
        result = Prober(backoff=FAST_BACKOFF).run(
            check(timeout=0.3), addr(dropper.server_address[1])
        )
        assert not result.passed
        assert result.observed is not None and result.observed.status is None
        assert "no response" in result.mismatches[0].observed
    finally:
        dropper.shutdown()
        dropper.server_close()


def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = Prober(backoff=FAST_BACKOFF).run(check(timeout=0.2), addr(port))
    assert result.observed is not None and "Connection refused" in (result.observed.error or "")


def test_request_timeout(echo: EchoServer) -> None:
    c = check(request=Request(host="h", path="/?delay=2s"), request_timeout=0.3, timeout=0.2)
    result = Prober(backoff=FAST_BACKOFF).run(c, addr(echo.port))
    assert result.observed is not None
    assert result.observed.error == "timed out after 0.3s"


def test_status_endpoint_and_redirect_not_followed() -> None:
    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", "https://www.example.com/new")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = check(
            request=Request(host="www.example.com", path="/old"),
            expect=Expect(status=[301], redirect=ExpectedRedirect(scheme="https", path="/new")),
        )
        result = Prober(backoff=FAST_BACKOFF).run(c, addr(server.server_address[1]))
        assert result.passed, result.mismatches
        assert result.observed is not None and result.observed.status == 301
    finally:
        server.shutdown()
        server.server_close()


def test_weighted_shares_over_real_pods() -> None:
    with EchoServer(pod="v1-abc-1") as v1, EchoServer(pod="v2-abc-1") as v2:
        ports = [v1.port, v2.port, v1.port, v1.port]
        state = {"n": 0}
        lock = threading.Lock()

        class RoundRobin(_ProxyHandler):
            def do_GET(self) -> None:
                with lock:
                    self.server.upstream = ports[state["n"] % 4]
                    state["n"] += 1
                    self.server.wrong_for = 0
                    super().do_GET()

        server = _Proxy(("127.0.0.1", 0), RoundRobin)
        server.upstream, server.wrong_for, server.seen = v1.port, 0, 0
        server.lock = threading.Lock()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            c = check(expect=Expect(backends={"v1": 0.75, "v2": 0.25}), samples=40)
            result = Prober(backoff=FAST_BACKOFF).run(c, addr(server.server_address[1]))
            assert result.passed, result.mismatches
            assert result.shares == {"v1": 0.75, "v2": 0.25}
        finally:
            server.shutdown()
            server.server_close()


def test_repeated_response_headers_are_joined_with_a_comma() -> None:
    class Twice(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("X-A", "1")
            self.send_header("x-a", "2")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Twice)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = check(expect=Expect(headers={"X-A": "1,2"}), consecutive=1)
        result = Prober(backoff=FAST_BACKOFF).run(c, addr(server.server_address[1]))
        assert result.passed, result.mismatches
    finally:
        server.shutdown()
        server.server_close()


REPRODUCED = [
    Request(host="www.example.com", path="/q?a[0]=1&b={x}"),
    Request(host="www.example.com", path="//d//e?x=%2f"),
    Request(
        host="www.example.com",
        path="/p",
        method="POST",
        headers={"X-Empty": "", "X-Foo": "bar"},
        backend_response_headers={"X-Set": "v"},
    ),
]


@pytest.mark.parametrize("request_", REPRODUCED, ids=["globs", "slashes", "post"])
def test_the_backend_sees_the_path_as_written_and_curl_sends_the_same(
    echo: EchoServer, request_: Request
) -> None:
    import json
    import shutil
    import subprocess

    probe = Prober(backoff=FAST_BACKOFF)
    sent = probe.build(check(request=request_), addr(echo.port))
    result = probe.run(check(request=request_, consecutive=1), addr(echo.port))
    assert result.passed, result.mismatches  # the request arrived unchanged
    seen = result.observed.request if result.observed else None
    assert seen is not None and seen.path == request_.path and seen.method == request_.method
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the probe side is checked, the curl side is not")
    r = subprocess.run(sent.curl(), shell=True, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n\n")
    by_curl = json.loads(body)
    assert (by_curl["method"], by_curl["path"], by_curl["host"]) == (
        seen.method,
        seen.path,
        seen.host,
    )
    ours = {k: v for k, v in seen.headers.items() if k.startswith("X-")}
    assert {k: v for k, v in by_curl["headers"].items() if k.startswith("X-")} == ours
    if request_.backend_response_headers:
        assert "\nX-Set: v" in head


def test_dot_segments_reach_the_backend_and_curl_does_not_clean_them(echo: EchoServer) -> None:
    # echo-basic (Go's ServeMux) answers 301 to the clean path: proof that /./ and %2e%2e/
    # left the probe, and left curl (--path-as-is), uncleaned
    import shutil
    import subprocess

    request_ = Request(host="h", path="/a/b/./c/%2e%2e/?q=1", method="HEAD")
    c = check(
        request=request_,
        consecutive=1,
        expect=Expect(status=[301], redirect=ExpectedRedirect(path="/a/b/")),
    )
    result = Prober(backoff=FAST_BACKOFF).run(c, addr(echo.port))
    assert result.passed, result.mismatches
    assert result.observed is not None and result.observed.location == "/a/b/?q=1"
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the probe side is checked, the curl side is not")
    curl = Prober().build(c, addr(echo.port)).curl()
    assert " -I --path-as-is " in curl
    r = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("HTTP/1.1 301 "), r.stderr
    assert "\nLocation: /a/b/?q=1\n" in r.stdout


def test_head_is_answered_without_waiting_for_a_body(echo: EchoServer) -> None:
    result = Prober(backoff=FAST_BACKOFF).run(
        check(request=Request(host="h", method="HEAD"), consecutive=1, request_timeout=2),
        addr(echo.port),
    )
    assert result.observed is not None and result.observed.status == 200
    assert result.observed.duration < 2
