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

import threading
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc

from sandbox.echo.wire import (
    IMPLEMENTED,
    SERVICE,
    EchoContext,
    EchoResponse,
    full_method,
    split_method,
)

# --------------------------------------------------------------------------------------------
# Protobuf wire format (only what these messages need)
# --------------------------------------------------------------------------------------------


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
