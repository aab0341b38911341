"""The gRPC probe: a unary call of the upstream echo service sent the way the conformance client sends it, and the answer read back as an ``Observed`` (see ``sandbox.echo.grpc`` for the sources followed and the status mapping)."""

from __future__ import annotations

import os

# grpc core logs INFO lines (e.g. "Got goaway") to stderr unless told otherwise; read at import
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import re
import socket
import ssl
import time
from typing import Any

import grpc

from sandbox.echo.wire import SERVICE, EchoResponse, full_method, http_status_for
from sandbox.probe.types import Address, Observed, SeenRequest
from sandbox.scenario.model import Check

# grpcio details when nothing answered at all (no HTTP/2 response): a connection problem
_NO_ANSWER_RE = re.compile(
    r"failed to connect|connection refused|dns resolution failed|connection reset|"
    r"socket closed|connection attempt timed out|ssl handshake",
    re.IGNORECASE,
)


def grpc_probe(
    address: Address,
    host: str | None,
    service: str = SERVICE,
    method: str = "Echo",
    metadata: dict[str, str] | None = None,
    timeout: float = 10.0,
    scheme: str = "http",
) -> Observed:
    """One unary call with an empty request on a fresh connection: plaintext HTTP/2 (h2c), or
    for ``scheme="https"`` HTTP/2 over TLS with ``host`` as SNI.

    ``host`` is the ``:authority`` (default: the address). Metadata names are lowercased, as
    gRPC requires. The echo backend's answer fills ``pod``, ``namespace`` and ``request``
    (path: the fully qualified method, host: the authority it saw, method: POST, headers: the
    metadata it saw); ``status`` is the HTTP status the gRPC code stands for (module doc).

    grpcio cannot skip certificate verification, so over TLS the certificate the gateway
    presents is fetched first and trusted as its own root: this suits the self-signed
    certificates the sandbox generates, not a chain signed by a CA.
    """
    start = time.monotonic()
    target = (
        f"[{address.host}]:{address.port}"
        if ":" in address.host
        else (f"{address.host}:{address.port}")
    )
    options: list[tuple[str, Any]] = [
        ("grpc.enable_http_proxy", 0),  # loopback: never through a proxy from the environment
        ("grpc.enable_retries", 0),
        ("grpc.use_local_subchannel_pool", 1),  # a fresh connection, not a shared one
    ]
    if host:
        options.append(("grpc.default_authority", host))
    md: list[tuple[str, str | bytes]] = [(k.lower(), v) for k, v in (metadata or {}).items()]
    path = full_method(service, method)
    observed = Observed(status=None, protocol="grpc")
    if scheme == "https":
        try:
            pem = _presented_certificate(address, host, timeout)
        except (OSError, ssl.SSLError) as e:
            observed.error = f"TLS handshake with {target} failed: {e}"
            observed.duration = time.monotonic() - start
            return observed
        if host:
            options.append(("grpc.ssl_target_name_override", host))
        channel = grpc.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=pem), options=options
        )
    else:
        channel = grpc.insecure_channel(target, options=options)
    try:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            path, request_serializer=None, response_deserializer=None
        )
        try:
            body, info = call.with_call(b"", metadata=tuple(md), timeout=timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            details = (e.details() if hasattr(e, "details") else "") or ""
            observed.duration = time.monotonic() - start
            observed.text = details[:200]
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and observed.duration >= timeout * 0.9:
                observed.error = f"no answer within {timeout:g} s"
                return observed
            if code == grpc.StatusCode.UNAVAILABLE and _NO_ANSWER_RE.search(details):
                observed.error = details
                return observed
            observed.status = http_status_for(code, details)
            observed.headers = _metadata_headers(e, code)
            return observed
        observed.duration = time.monotonic() - start
        observed.status = 200
        observed.headers = _metadata_headers(info, grpc.StatusCode.OK)
        try:
            echo = EchoResponse.decode(bytes(body))
        except ValueError as e:
            observed.text = f"not an EchoResponse: {e}"
            return observed
        observed.body = echo.to_json()
        observed.pod = echo.context.pod
        observed.namespace = echo.context.namespace
        observed.request = SeenRequest(
            path=echo.fully_qualified_method,
            host=echo.authority,
            method="POST",
            headers=echo.header_map(),
            proto="HTTP/2.0",
        )
        return observed
    finally:
        channel.close()


def _presented_certificate(address: Address, host: str | None, timeout: float) -> bytes:
    """The PEM certificate a TLS server presents for SNI ``host`` (not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((address.host, address.port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host or None) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _metadata_headers(call: Any, code: grpc.StatusCode) -> dict[str, str]:
    out: dict[str, str] = {}
    for getter in ("initial_metadata", "trailing_metadata"):
        fn = getattr(call, getter, None)
        for key, value in (fn() if callable(fn) else None) or ():
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            out[key] = f"{out[key]},{text}" if key in out else text
    out["grpc-status"] = str(code.value[0])
    return out


def grpc_send(check: Check, address: Address) -> Observed:
    """The ``Prober(grpc_send=...)`` hook: a check's ``request.grpc`` as one call."""
    req = check.request
    assert req.grpc is not None
    return grpc_probe(
        address,
        req.host,
        req.grpc.service,
        req.grpc.method,
        req.grpc.metadata,
        check.request_timeout,
        req.scheme,
    )
