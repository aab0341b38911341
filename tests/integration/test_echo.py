"""The echo backend over real loopback HTTP, against upstream echo-basic's behaviour
(kubernetes-sigs/gateway-api conformance/echo-basic/echo-basic.go)."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.echo import EchoServer, canonical_header_key, parse_go_duration


@pytest.fixture()
def echo() -> EchoServer:
    with EchoServer(pod="backend-7d9f-abcde", namespace="ns1", service="svc") as server:
        yield server  # type: ignore[misc]


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
    [("1s", 1.0), ("100ms", 0.1), ("1h2m", 3720.0), ("1.5s", 1.5), ("0", 0.0), ("-2s", -2.0),
     ("250us", 0.00025), ("10µs", 0.00001)],
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
