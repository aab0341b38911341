"""An HTTP echo backend that answers like the upstream conformance image ``echo-basic``.

Source followed: kubernetes-sigs/gateway-api ``conformance/echo-basic/echo-basic.go`` (v1.6.1):

- any path (except the special ones) answers 200 with ``json.MarshalIndent(v, "", " ")`` of
  ``{path: RequestURI (with query, exactly as sent), host, method, proto,
  headers: {Canonical-Name: [values]}, httpPort, namespace, ingress, service, pod}`` (struct
  field order; ``<>&`` escaped like Go's encoding/json) plus ``Content-Type: application/json`` and
  ``X-Content-Type-Options: nosniff``; Go moves ``Host`` out of ``r.Header``, so it is not in
  ``headers``;
- ``X-Echo-Set-Header: Name:val,Name2:val2`` sets those response headers (a repeated name has its
  values joined with ``,``);
- a path with ``.`` or ``..`` segments answers 301 to the cleaned path (Go's ServeMux), after
  ``//`` was merged (echo-basic's ``preserveSlashes``);
- ``/health`` answers ``OK``; ``/status/NNN`` answers status NNN with an empty body (400 when the
  RequestURI is not exactly ``/status/<3 digits>``);
- ``?delay=<Go duration>`` delays the answer; an unparsable duration answers 500 with
  ``{"message": "time: invalid duration \\"x\\""}``.

Used by ``sandbox echo`` and by the local target to stand in for pods.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_STATUS_RE = re.compile(r"^/status/(\d\d\d)$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
MAX_DELAY = 300.0  # a loopback test tool: never sleep longer than this


def parse_go_duration(text: str) -> float:
    """Seconds in a Go ``time.ParseDuration`` string ("1.5s", "100ms", "1h2m", "-1s", "0")."""
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if not m:
            if re.match(r"\d+(?:\.\d*)?$|\.\d+$", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: "x-foo-bar" -> "X-Foo-Bar".

    Names with bytes that are not valid token characters are returned unchanged, like Go.
    """
    token = "!#$%&'*+-.^_`|~"
    if not name or any(not (c.isascii() and (c.isalnum() or c in token)) for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


def _split_request_uri(uri: str) -> tuple[str, str]:
    """(path, query) of a request-target; ``//a//b`` is a path (Go's ParseRequestURI), not
    an authority as urlsplit would read it."""
    if uri.startswith("/"):
        path, _, query = uri.partition("?")
        return path, query
    parts = urlsplit(uri)  # absolute-form (http://host/path), as sent to a proxy
    return parts.path, parts.query


def go_clean_path(p: str) -> str:
    """Go's net/http cleanPath: path.Clean of a rooted path, keeping a trailing slash."""
    if not p:
        return "/"
    if not p.startswith("/"):
        p = "/" + p
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    clean = "/" + "/".join(parts)
    if p.endswith("/") and clean != "/":
        clean += "/"
    return clean


_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json_indent(value: Any) -> str:
    """``json.MarshalIndent(value, "", " ")`` of Go: UTF-8 kept, ``<>&`` and U+2028/2029
    escaped (encoding/json HTML-safe escaping), keys in the order given (struct field order)."""
    text = json.dumps(value, indent=1, ensure_ascii=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _GO_ESCAPES[m.group(0)], text)


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EchoHTTPServer

    # every method is answered by the same handler (Go's mux is method-agnostic)
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    def _read_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            remaining = int(length)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

    def send_response(self, code: int, message: str | None = None) -> None:
        # like Go's net/http: a Date header and no Server header
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _request_uri(self) -> str:
        """The request-target exactly as sent (Go's ``r.RequestURI``).

        ``self.path`` is not: Python >= 3.11.? collapses a leading ``//`` (gh-87389).
        """
        words = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n").split()
        return words[1] if len(words) == 3 else self.path

    def _handle(self) -> None:
        self._read_body()
        uri = self._request_uri()
        raw_path, query = _split_request_uri(uri)
        mux_path = unquote(raw_path).replace("//", "/")
        if mux_path == "/health":
            self._send(200, b"OK", [("Content-Type", "text/plain; charset=utf-8")])
            return
        clean = go_clean_path(mux_path)
        if clean != mux_path and self.command != "CONNECT":
            # Go's ServeMux answers a path with . or .. segments with a 301 to the cleaned path
            # (net/http server.go: ServeMux.findHandler, cleanPath), query kept
            location = clean + (f"?{query}" if query else "")
            body = (
                f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
                if self.command == "GET"
                else b""
            )
            headers = [("Location", location)]
            if body:
                headers.append(("Content-Type", "text/html; charset=utf-8"))
            self._send(301, body, headers)
            return
        if mux_path.startswith("/status/"):
            m = _STATUS_RE.match(uri)
            self._send(int(m.group(1)) if m else 400, b"", [])
            return
        self._echo(uri)

    def _echo(self, uri: str) -> None:
        query = parse_qs(_split_request_uri(uri)[1], keep_blank_values=True)
        delay = (query.get("delay") or [""])[0]
        if delay:
            try:
                seconds = parse_go_duration(delay)
            except ValueError as e:
                body = json.dumps({"message": str(e)}, separators=(",", ":")).encode()
                self._send(
                    500,
                    body,
                    [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")],
                )
                return
            if seconds > 0:
                time.sleep(min(seconds, MAX_DELAY))

        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            key = canonical_header_key(name)
            if key == "Host":
                continue  # Go keeps it in r.Host, not r.Header
            # http.server reads header bytes as Latin-1; Go keeps the bytes, and its JSON
            # encoder writes invalid UTF-8 as U+FFFD
            headers.setdefault(key, []).append(
                value.encode("iso-8859-1", "replace").decode("utf-8", "replace")
            )
        srv = self.server
        payload: dict[str, Any] = {
            "path": uri,
            "host": self.headers.get("Host", ""),
            "method": self.command,
            "proto": self.request_version,
            "headers": headers,
            "httpPort": srv.http_port,
            "namespace": srv.namespace,
            "ingress": srv.ingress,
            "service": srv.service,
            "pod": srv.pod,
        }
        body = go_json_indent(payload).encode()

        response_headers: list[tuple[str, str]] = []
        set_headers: dict[str, str] = {}
        for kv_list in headers.get("X-Echo-Set-Header", []):
            for kv in kv_list.split(","):
                name, _, value = kv.strip().partition(":")
                if name in set_headers:
                    set_headers[name] += "," + value.strip()
                else:
                    set_headers[name] = value
        response_headers.extend((n, v) for n, v in set_headers.items() if n)
        response_headers.append(("Content-Type", "application/json"))
        response_headers.append(("X-Content-Type-Options", "nosniff"))
        self._send(200, body, response_headers)


class _EchoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    pod: str
    namespace: str
    service: str
    ingress: str
    http_port: str
    log: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away (timed out, reset) is normal for a test backend: no traceback
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class EchoServer:
    """An echo backend on ``host:port`` (port 0 picks a free one), served from a thread.

    >>> with EchoServer(pod="backend-7d9-abcde", namespace="default") as echo:
    ...     requests.get(echo.url + "/get")
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        pod: str = "",
        namespace: str = "",
        service: str = "",
        ingress: str = "",
        log: Any = None,
    ) -> None:
        self._server = _EchoHTTPServer((host, port), _EchoHandler)
        self._server.pod = pod
        self._server.namespace = namespace
        self._server.service = service
        self._server.ingress = ingress
        self._server.log = log
        self.host = host
        self.port: int = self._server.server_address[1]
        self._server.http_port = str(self.port)
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> EchoServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"echo-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``close()`` or KeyboardInterrupt."""
        self._server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
