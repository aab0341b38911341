"""The upstream echo service on the wire, shared by the gRPC echo server (``sandbox.echo.grpc``) and the gRPC probe (``sandbox.probe.grpc``): its names, the few protobuf messages encoded and decoded by hand, and the gRPC code <-> HTTP status tables (sources in ``sandbox.echo.grpc``)."""

from __future__ import annotations

import os

# grpc core logs INFO lines (e.g. "Got goaway") to stderr unless told otherwise; read at import
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import re
from dataclasses import dataclass, field
from typing import Any

import grpc

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


def grpc_code_for_http(status: int) -> grpc.StatusCode:
    return GRPC_CODE_OF.get(status, grpc.StatusCode.UNKNOWN)


def http_status_for(code: grpc.StatusCode, details: str = "") -> int:
    m = _HTTP2_STATUS_RE.search(details or "")
    if m:
        return int(m.group(1))
    return HTTP_STATUS_OF.get(code, 500)


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
