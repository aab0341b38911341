"""The echo backend over real loopback HTTP, against upstream echo-basic's behaviour
(kubernetes-sigs/gateway-api conformance/echo-basic/echo-basic.go)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from sandbox.echo.http import EchoServer, canonical_header_key, parse_go_duration


@pytest.fixture()
def echo() -> Iterator[EchoServer]:
    with EchoServer(pod="backend-7d9f-abcde", namespace="ns1", service="svc") as server:
        yield server


def test_echo_json_shape(echo: EchoServer) -> None:
    r = requests.get(
        echo.url + "/get?x=1&y=",
        headers={"Host": "www.example.com", "x-foo": "bar", "Connection": "close"},
        timeout=5,
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Server" not in r.headers
    body = r.json()
    assert list(body)[:5] == ["path", "host", "method", "proto", "headers"]
    assert body["path"] == "/get?x=1&y="
    assert body["host"] == "www.example.com"
    assert body["method"] == "GET"
    assert body["proto"] == "HTTP/1.1"
    assert body["headers"]["X-Foo"] == ["bar"]
    assert "Host" not in body["headers"]
    assert body["pod"] == "backend-7d9f-abcde"
    assert body["namespace"] == "ns1"
    assert body["service"] == "svc"
    assert body["ingress"] == ""
    assert body["httpPort"] == str(echo.port)


def test_echo_any_method_and_body(echo: EchoServer) -> None:
    r = requests.request("PATCH", echo.url + "/p", data=b"x" * 1000, timeout=5)
    assert r.json()["method"] == "PATCH"
    assert r.json()["headers"]["Content-Length"] == ["1000"]


def test_echo_set_header(echo: EchoServer) -> None:
    r = requests.get(
        echo.url + "/", headers={"X-Echo-Set-Header": "X-A:1, X-A:2,Foo:bar"}, timeout=5
    )
    assert r.headers["X-A"] == "1,2"
    assert r.headers["Foo"] == "bar"


def test_status_endpoint(echo: EchoServer) -> None:
    assert requests.get(echo.url + "/status/503", timeout=5).status_code == 503
    assert requests.get(echo.url + "/status/201", timeout=5).text == ""
    # upstream matches ^/status/(\d\d\d)$ against the RequestURI: a query makes it 400
    assert requests.get(echo.url + "/status/503?a=b", timeout=5).status_code == 400
    assert requests.get(echo.url + "/status/abc", timeout=5).status_code == 400


def test_health(echo: EchoServer) -> None:
    r = requests.get(echo.url + "/health", timeout=5)
    assert (r.status_code, r.text) == (200, "OK")


def test_delay(echo: EchoServer) -> None:
    start = time.monotonic()
    r = requests.get(echo.url + "/?delay=300ms", timeout=5)
    assert r.status_code == 200
    assert time.monotonic() - start >= 0.3
    bad = requests.get(echo.url + "/?delay=soon", timeout=5)
    assert bad.status_code == 500
    assert bad.json() == {"message": 'time: invalid duration "soon"'}


def test_close_is_idempotent() -> None:
    server = EchoServer().start()
    port = server.port
    server.close()
    server.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("100ms", 0.1),
        ("1h2m", 3720.0),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("-2s", -2.0),
        ("250us", 0.00025),
        ("10µs", 0.00001),
    ],
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1", "1x", "abc", "1s2"])
def test_parse_go_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_canonical_header_key() -> None:
    assert canonical_header_key("x-foo-BAR") == "X-Foo-Bar"
    assert canonical_header_key("content-length") == "Content-Length"
    assert canonical_header_key("bad header") == "bad header"


def _raw(echo: EchoServer, request_line: str, headers: str = "Host: h\r\n") -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", echo.port), timeout=5) as s:
        s.sendall(f"{request_line}\r\n{headers}Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_echo_keys_in_upstream_struct_order(echo: EchoServer) -> None:
    # echo-basic.go (v1.5.1+): RequestAssertions{Path, Host, Method, Proto, Headers, HTTPPort,
    # Context{Namespace, Ingress, Service, Pod}, TLS omitempty}, json.MarshalIndent(.., "", " ")
    body = _raw(echo, "GET /k HTTP/1.1").split(b"\r\n\r\n", 1)[1].decode()
    import json

    assert list(json.loads(body)) == [
        "path",
        "host",
        "method",
        "proto",
        "headers",
        "httpPort",
        "namespace",
        "ingress",
        "service",
        "pod",
    ]
    assert body.startswith('{\n "path": "/k",\n "host": "h",\n')


def test_echo_path_is_the_raw_request_uri(echo: EchoServer) -> None:
    # Go's r.RequestURI keeps a leading "//" (Python's http.server collapses it in self.path),
    # dot segments and brackets; encoding/json escapes & < > as \u0026 \u003c \u003e
    body = _raw(echo, "GET //a//b?x[0]=1&y=<z> HTTP/1.1").split(b"\r\n\r\n", 1)[1].decode()
    assert '"path": "//a//b?x[0]=1\\u0026y=\\u003cz\\u003e"' in body
    import json

    assert json.loads(body)["path"] == "//a//b?x[0]=1&y=<z>"


@pytest.mark.parametrize(
    ("target", "location"),
    [("/a/../b?x=1", "/b?x=1"), ("/a/./b/", "/a/b/"), ("//a/..//b", "/b"), ("/%2e%2e/x", "/x")],
)
def test_dot_segments_get_a_301_to_the_clean_path_like_go_servemux(
    echo: EchoServer, target: str, location: str
) -> None:
    head = _raw(echo, f"GET {target} HTTP/1.1").split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 301 ")
    assert f"\r\nLocation: {location}\r\n" in head


def test_echo_header_bytes_are_utf8(echo: EchoServer) -> None:
    import json

    raw = _raw(
        echo,
        "GET / HTTP/1.1",
        "Host: h\r\nX-Caf: caf\u00e9\r\n".replace("caf\u00e9", "caf\u00c3\u00a9"),
    )  # the UTF-8 bytes of "café", sent as Latin-1 text
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["headers"]["X-Caf"] == ["caf\u00e9"]


def test_cli_echo_on_a_busy_port_says_what_to_do() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "sandbox", "echo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert r.returncode == 2
    assert r.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert "--port 0" in r.stderr
    assert "Traceback" not in r.stderr
