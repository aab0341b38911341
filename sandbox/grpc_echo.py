"""The upstream echo backend's gRPC mode: a client (the gRPC probe) and a server that answers alike.

Source followed: kubernetes-sigs/gateway-api v1.5.1/v1.6.1

- ``conformance/echo-basic/grpcecho.proto`` (generated ``grpcechoserver/grpcecho.pb.go``):
  package ``gateway_api_conformance.echo_basic.grpcecho``, service ``GrpcEcho`` with the unary
  methods ``Echo``, ``EchoTwo`` and ``EchoThree`` (``EchoRequest`` -> ``EchoResponse``), and

      message Header        { string key = 1; string value = 2; }
      message Context       { string namespace = 1; string ingress = 2;
                              string service_name = 3; string pod = 4; }
      message Assertions    { string fully_qualified_method = 1; repeated Header headers = 2;
                              string authority = 3; Context context = 4;
                              TLSAssertions tls_assertions = 5; }
      message EchoRequest   { }
      message EchoResponse  { Assertions assertions = 1; EchoRequest request = 2; }

- ``conformance/echo-basic/grpc/grpc.go``: the server implements ``Echo`` and ``EchoTwo`` only
  (``EchoThree`` answers UNIMPLEMENTED), echoes every incoming metadata pair as a Header (Go's
  incoming metadata includes ``:authority``), the ``:authority`` value, and its Context from the
  env ``NAMESPACE``, ``INGRESS_NAME``, ``SERVICE_NAME``, ``POD_NAME``;
- ``conformance/utils/grpc/grpc.go``: the client dials in plaintext (h2c), sets the authority
  when the test names one, sends the metadata pairs, and compares the status code, the fully
  qualified method, the namespace and the pod-name prefix.

Nothing generated or fetched is committed: the few messages are encoded and decoded here by hand
(protobuf wire format: varint tags, length-delimited strings and sub-messages), and grpcio is
used with raw bytes (no (de)serializers).

gRPC answers carry a gRPC status, not an HTTP one. So that the same ``expect.status`` works for
both, ``Observed.status`` holds the HTTP status a gRPC code stands for, the inverse of the
table gateways use to turn an HTTP status into a gRPC one (grpc/grpc
``doc/http-grpc-status-mapping.md``; Envoy ``Grpc::Utility::httpToGrpcStatus``): OK 200,
UNIMPLEMENTED 404 (no route), UNKNOWN 500 (e.g. invalid backends), UNAVAILABLE 503,
UNAUTHENTICATED 401, PERMISSION_DENIED 403, DEADLINE_EXCEEDED 504, INTERNAL 500. When a
gateway answered with a non-gRPC HTTP status, grpcio reports it ("Received http2 header with
status: 404") and that status is used as is.
"""

from __future__ import annotations

import os

# grpc core logs INFO lines (e.g. "Got goaway") to stderr unless told otherwise; read at import
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import re
import socket
import ssl
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc

from sandbox.probe import Observed, SeenRequest
from sandbox.scenario.model import Check
from sandbox.targets import Address

PACKAGE = "gateway_api_conformance.echo_basic.grpcecho"
SERVICE = f"{PACKAGE}.GrpcEcho"
METHODS = ("Echo", "EchoTwo", "EchoThree")
IMPLEMENTED = ("Echo", "EchoTwo")  # upstream grpc.go has no EchoThree handler

# gRPC code -> the HTTP status it stands for (inverse of httpToGrpcStatus, see module doc)
HTTP_STATUS_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNIMPLEMENTED: 404,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}
# HTTP status -> gRPC code, as a gateway maps its own local replies (Envoy httpToGrpcStatus)
GRPC_CODE_OF: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}
_HTTP2_STATUS_RE = re.compile(r"http2 header with status: (\d{3})")
# grpcio details when nothing answered at all (no HTTP/2 response): a connection problem
_NO_ANSWER_RE = re.compile(
    r"failed to connect|connection refused|dns resolution failed|connection reset|"
    r"socket closed|connection attempt timed out|ssl handshake",
    re.IGNORECASE,
)


def grpc_code_for_http(status: int) -> grpc.StatusCode:
    return GRPC_CODE_OF.get(status, grpc.StatusCode.UNKNOWN)


def http_status_for(code: grpc.StatusCode, details: str = "") -> int:
    m = _HTTP2_STATUS_RE.search(details or "")
    if m:
        return int(m.group(1))
    return HTTP_STATUS_OF.get(code, 500)


# --------------------------------------------------------------------------------------------
# Protobuf wire format (only what these messages need)
# --------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings and sub-messages."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode()) if text else b""  # proto3: empty strings are omitted


def _fields(buf: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a message, in order; other wire types are skipped."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            out.append((number, buf[pos : pos + length]))
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != len(buf):
        raise ValueError("truncated message")
    return out


@dataclass
class EchoContext:
    namespace: str = ""
    ingress: str = ""
    service_name: str = ""
    pod: str = ""

    def encode(self) -> bytes:
        return (
            _string(1, self.namespace)
            + _string(2, self.ingress)
            + _string(3, self.service_name)
            + _string(4, self.pod)
        )

    @classmethod
    def decode(cls, buf: bytes) -> EchoContext:
        ctx = cls()
        for number, data in _fields(buf):
            text = data.decode(errors="replace")
            if number == 1:
                ctx.namespace = text
            elif number == 2:
                ctx.ingress = text
            elif number == 3:
                ctx.service_name = text
            elif number == 4:
                ctx.pod = text
        return ctx


@dataclass
class EchoResponse:
    """``EchoResponse.assertions`` flattened (``tls_assertions`` is not decoded)."""

    fully_qualified_method: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    authority: str = ""
    context: EchoContext = field(default_factory=EchoContext)

    def encode(self) -> bytes:
        assertions = _string(1, self.fully_qualified_method)
        for key, value in self.headers:
            assertions += _field(2, _string(1, key) + _string(2, value))
        assertions += _string(3, self.authority)
        assertions += _field(4, self.context.encode())
        return _field(1, assertions)

    @classmethod
    def decode(cls, buf: bytes) -> EchoResponse:
        resp = cls()
        for number, data in _fields(buf):
            if number != 1:
                continue  # 2: the (empty) EchoRequest
            for n, d in _fields(data):
                if n == 1:
                    resp.fully_qualified_method = d.decode(errors="replace")
                elif n == 2:
                    key = value = ""
                    for hn, hd in _fields(d):
                        if hn == 1:
                            key = hd.decode(errors="replace")
                        elif hn == 2:
                            value = hd.decode(errors="replace")
                    resp.headers.append((key, value))
                elif n == 3:
                    resp.authority = d.decode(errors="replace")
                elif n == 4:
                    resp.context = EchoContext.decode(d)
        return resp

    def header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self.headers:
            out.setdefault(key, []).append(value)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "fully_qualified_method": self.fully_qualified_method,
            "headers": [{"key": k, "value": v} for k, v in self.headers],
            "authority": self.authority,
            "context": {
                "namespace": self.context.namespace,
                "ingress": self.context.ingress,
                "service_name": self.context.service_name,
                "pod": self.context.pod,
            },
        }


def full_method(service: str, method: str) -> str:
    return f"/{service}/{method}"


def split_method(path: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> ("pkg.Service", "Method")."""
    service, _, method = path.lstrip("/").rpartition("/")
    return service, method


def call_authority(call_details: Any, context: Any = None) -> str:
    """The ``:authority`` of an incoming call. grpcio's public server API does not expose it;
    its call details (``context._rpc_event.call_details.host``, bytes) carry it."""
    host = getattr(call_details, "host", None)
    if host is None and context is not None:
        event = getattr(context, "_rpc_event", None)
        host = getattr(getattr(event, "call_details", None), "host", None)
    if isinstance(host, bytes):
        return host.decode(errors="replace")
    return host if isinstance(host, str) else ""


# --------------------------------------------------------------------------------------------
# Client: the gRPC probe
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Server: answers like echo-basic with GRPC_ECHO_SERVER set
# --------------------------------------------------------------------------------------------


class _EchoHandler(grpc.GenericRpcHandler):
    def __init__(self, server: GrpcEchoServer) -> None:
        self._server = server

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        service, method = split_method(handler_call_details.method)
        if service != SERVICE or method not in IMPLEMENTED:
            return None  # grpcio answers UNIMPLEMENTED

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._server.answer(method, context)

        return grpc.unary_unary_rpc_method_handler(echo)


class GrpcEchoServer:
    """A gRPC echo backend on ``host:port`` (port 0 picks a free one), plaintext HTTP/2.

    >>> with GrpcEchoServer(pod="grpc-backend-v1-7d9-abcde", namespace="default") as echo:
    ...     grpc_probe(Address("127.0.0.1", echo.port), "grpc.example.com")
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
        workers: int = 16,
    ) -> None:
        self.host = host
        self.context = EchoContext(
            namespace=namespace, ingress=ingress, service_name=service, pod=pod
        )
        self.calls: list[str] = []  # fully qualified methods answered, for tests and diagnostics
        self._lock = threading.Lock()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc-echo"),
            handlers=[_EchoHandler(self)],
            options=[("grpc.so_reuseport", 0)],
        )
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port: int = self._server.add_insecure_port(bind)
        if not self.port:
            raise OSError(f"cannot listen on {bind}")
        self._started = False
        self._closed = False

    def answer(self, method: str, context: grpc.ServicerContext) -> bytes:
        authority = call_authority(None, context)
        headers = [(":authority", authority)] if authority else []
        for item in context.invocation_metadata():
            key, value = item[0], item[1]
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            headers.append((key, text))
        fqm = full_method(SERVICE, method)
        with self._lock:
            self.calls.append(fqm)
        return EchoResponse(
            fully_qualified_method=fqm, headers=headers, authority=authority, context=self.context
        ).encode()

    def start(self) -> GrpcEchoServer:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.stop(grace=None).wait(5)

    def __enter__(self) -> GrpcEchoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
