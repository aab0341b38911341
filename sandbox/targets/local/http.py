"""The local reference gateway's HTTP/1.1 front: a threaded proxy server per (Gateway, listener port), handing HTTP/2 connections (gRPC) to ``sandbox.targets.local.grpc``."""

from __future__ import annotations

import io
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox.targets.local import grpc as local_grpc
from sandbox.targets.local.grpc import GrpcConnection
from sandbox.targets.local.pods import (
    HOST,
    STARTUP_TIMEOUT,
)
from sandbox.targets.local.router import HOP_BY_HOP, _describe, _Router


class _PrefixedReader(io.BufferedIOBase):
    """``inner`` with ``prefix`` put back in front (for the 4 bytes sniffed for HTTP/2)."""

    def __init__(self, prefix: bytes, inner: io.BufferedIOBase) -> None:
        super().__init__()
        self._prefix = prefix
        self._inner = inner

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data, self._prefix = self._prefix, b""
            return data + self._inner.read()
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._inner.read(size - len(data))
            return data
        return self._inner.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        if self._prefix:
            nl = self._prefix.find(b"\n")
            end = len(self._prefix) if nl < 0 else nl + 1
            if 0 <= limit < end:
                end = limit
            data, self._prefix = self._prefix[:end], self._prefix[end:]
            if data.endswith(b"\n") or len(data) == limit:
                return data
            rest = self._inner.readline(-1 if limit < 0 else limit - len(data))
            return data + rest
        return self._inner.readline(limit)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # listen backlog: weight checks send 10 requests at once

    def __init__(
        self,
        router: _Router,
        gateway: str,
        port: int,
        scheme: str,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.router = router
        self.gateway = gateway
        self.listener_port = port
        self.scheme = scheme
        self.ssl_context = ssl_context
        super().__init__((HOST, 0), _ProxyHandler)
        self.port: int = self.server_address[1]
        self._thread: threading.Thread | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            try:
                request.settimeout(STARTUP_TIMEOUT)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLEOFError, ConnectionError, TimeoutError):
                return  # the peer went away (readiness probes do this): nothing to report
            except (OSError, ssl.SSLError) as e:
                self.router.record(
                    f"TLS handshake on {self.gateway}:{self.listener_port} failed: {e}"
                )
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed connection goes to diagnostics, not as a traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away
        self.router.record(
            f"gateway {self.gateway}:{self.listener_port}: connection failed: "
            f"{type(exc).__name__}: {exc}"
        )

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"local-gateway-{self.gateway}:{self.listener_port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    timeout = 30  # s: a client that connects and says nothing is dropped

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._proxy
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # diagnostics() keeps what matters

    def handle(self) -> None:
        # the 4 sniffed bytes come straight from the socket, so that rfile has read nothing
        # ahead: a gRPC hand-off can then use the socket alone
        head = b""
        try:
            while len(head) < 4:
                chunk = self.connection.recv(4 - len(head))
                if not chunk:
                    return
                head += chunk
        except (OSError, ValueError):
            return
        if head == b"PRI ":
            self._grpc(head)
            return
        self.rfile = _PrefixedReader(head, self.rfile)
        self.close_connection = True
        self.handle_one_request()  # one request per connection: no keep-alive

    # -- gRPC hand-off --------------------------------------------------------------------
    def _grpc(self, head: bytes) -> None:
        srv = self.server
        local_grpc.handle_connection(
            GrpcConnection(
                sock=self.connection,
                rfile=self.rfile,
                preface=head,
                gateway=srv.gateway,
                port=srv.listener_port,
                scheme=srv.scheme,
                model=srv.router.model,
                pick_pod=srv.router.pick_pod,
                record=srv.router.record,
            )
        )

    # -- HTTP/1.1 ---------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit():
            return self.rfile.read(int(length))
        return b""

    def _request_headers(self) -> tuple[str, dict[str, str]]:
        host = ""
        headers: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower == "host":
                host = host or value
                continue
            if lower in HOP_BY_HOP or lower == "content-length":
                continue
            if lower in names:
                headers[names[lower]] += "," + value
            else:
                names[lower] = name
                headers[name] = value
        return host, headers

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        *,
        content_length: str | None = None,
    ) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", content_length or str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _text(self, status: int, text: str, extra: list[tuple[str, str]] | None = None) -> None:
        body = (text + "\n").encode()
        self._reply(status, body, [("Content-Type", "text/plain; charset=utf-8"), *(extra or [])])

    def _proxy(self) -> None:
        started = time.monotonic()
        srv = self.server
        router = srv.router
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self._text(400, "local reference gateway: unreadable request body")
            return
        host, headers = self._request_headers()
        summary = f"{self.command} {srv.scheme}://{host or '-'}{self.path} via {srv.gateway}:{srv.listener_port}"
        try:
            decision = router.model.decide(
                srv.gateway, srv.listener_port, self.command, host, self.path, headers, srv.scheme
            )
        except Exception as e:  # the model failing must not kill the connection silently
            router.record(f"{summary} -> 500: the reference model failed: {type(e).__name__}: {e}")
            self._text(500, f"local reference gateway: the reference model failed: {e}")
            return
        outcome = router.carry_out(decision, body, started)
        router.record(f"{summary} -> {outcome.status} {_describe(decision)}{outcome.note}")
        if self.command == "HEAD":
            self._reply(outcome.status, b"", outcome.headers, content_length=outcome.content_length)
        else:
            self._reply(outcome.status, outcome.body, outcome.headers)
