"""HTTP requests the way the upstream conformance round tripper sends them, and the echo backend's JSON answer read back (see ``sandbox.probe.prober`` for the sources followed)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from typing import Any

from sandbox.probe.types import (
    USER_AGENT,
    Observed,
    ProbeRequest,
    SeenRequest,
)

_METHODS_WITH_BODY = ("POST", "PUT", "PATCH")  # Content-Length: 0 without a body, as Go and


# http.client send it
_MAX_BODY = 1 << 20  # bytes of a response body read; an echo answer is a few hundred


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to the address with ``server_name`` as TLS SNI, checking no certificate."""

    def __init__(self, host: str, port: int, *, server_name: str, timeout: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(host, port, timeout=timeout, context=context)
        self._sni_context = context
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        # an IP address is never sent as SNI (RFC 6066), like Go and curl
        self.sock = self._sni_context.wrap_socket(sock, server_hostname=self._server_name)


def _join_headers(raw: Any) -> dict[str, str]:
    """Response headers with repeated names joined by "," (upstream), first spelling kept."""
    out: dict[str, str] = {}
    lower: dict[str, str] = {}
    items = raw.items() if hasattr(raw, "items") else []
    for name, value in items:
        key = lower.setdefault(name.lower(), name)
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def parse_echo(observed: Observed, body: Any) -> None:
    """Fill ``pod``, ``namespace`` and ``request`` from an echo-basic JSON body."""
    if not isinstance(body, dict) or "path" not in body:
        return
    headers_raw = body.get("headers") or {}
    headers: dict[str, list[str]] = {}
    if isinstance(headers_raw, dict):
        for k, v in headers_raw.items():
            headers[str(k)] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
    observed.request = SeenRequest(
        path=str(body.get("path", "")),
        host=str(body.get("host", "")),
        method=str(body.get("method", "")),
        headers=headers,
        proto=str(body.get("proto", "")),
    )
    pod = body.get("pod")
    observed.pod = str(pod) if pod is not None else None
    ns = body.get("namespace")
    observed.namespace = str(ns) if ns is not None else None


def send_http(req: ProbeRequest) -> Observed:
    """Send one request on a fresh connection (no keep-alive, no redirects) and describe it.

    The request line carries ``path`` exactly as the scenario wrote it (http.client, not
    requests/urllib3, which percent-encode ``[]{}`` and drop ``/./`` and ``/../`` segments), so
    what the backend sees is what the scenario says and what ``ProbeRequest.curl()`` prints.
    """
    start = time.monotonic()
    conn: http.client.HTTPConnection
    if req.scheme == "https":
        conn = _SNIConnection(
            req.address.host,
            req.address.port,
            server_name=req.host.rsplit(":", 1)[0] if req.host else req.address.host,
            timeout=req.timeout,
        )
    else:
        conn = http.client.HTTPConnection(req.address.host, req.address.port, timeout=req.timeout)
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Connection": "close",
        **req.all_headers(),
    }
    headers.setdefault("Host", req.host_header)
    if req.method in _METHODS_WITH_BODY and not any(k.lower() == "content-length" for k in headers):
        headers["Content-Length"] = "0"
    try:
        conn.putrequest(req.method, req.path or "/", skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read(_MAX_BODY)
        raw_headers = resp.getheaders()
        status = resp.status
    except TimeoutError:
        return Observed(
            status=None,
            error=f"timed out after {req.timeout:g}s",
            duration=time.monotonic() - start,
        )
    except (OSError, http.client.HTTPException, ValueError) as e:
        return Observed(status=None, error=_short_error(e), duration=time.monotonic() - start)
    finally:
        conn.close()
    observed = Observed(
        status=status,
        headers=_join_headers(_Pairs(raw_headers)),
        location=next((v for k, v in raw_headers if k.lower() == "location"), None),
        duration=time.monotonic() - start,
    )
    content_type = next((v for k, v in raw_headers if k.lower() == "content-type"), "")
    text = body.decode("utf-8", "replace")
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            observed.body = json.loads(body)
        except ValueError:
            observed.text = text[:500]
        parse_echo(observed, observed.body)
    else:
        observed.text = text[:500]
    return observed


class _Pairs:
    """(name, value) pairs with an ``items()`` that keeps repeated names, for _join_headers."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return self._pairs


def _short_error(e: Exception) -> str:
    """One line for a request that got no response: ``ConnectionError: Connection refused``."""
    if isinstance(e, ssl.SSLError):
        return f"SSLError: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return "ConnectionError: Connection refused"
    if isinstance(e, ConnectionResetError):
        return "ConnectionError: Connection reset"
    if isinstance(e, ConnectionAbortedError):
        return "ConnectionError: Connection aborted"
    if isinstance(e, http.client.RemoteDisconnected):
        return "ConnectionError: RemoteDisconnected (closed without a response)"
    if isinstance(e, http.client.BadStatusLine):
        return f"ConnectionError: BadStatusLine {str(e)[:80]!r}"
    if isinstance(e, socket.gaierror):
        return f"ConnectionError: {e.strerror or e}"
    if isinstance(e, http.client.InvalidURL):
        return f"InvalidURL: {e}"
    text = str(e)
    for marker in (
        "Connection refused",
        "Connection reset",
        "Connection aborted",
        "Name or service not known",
    ):
        if marker in text:
            return f"ConnectionError: {marker}"
    return f"{type(e).__name__}: {text[:200]}"
