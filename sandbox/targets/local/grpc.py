"""gRPC for the ``local`` provider: the reference gateway's gRPC front and gRPC echo backends.

``sandbox.targets.local.target`` calls two hooks of this module (see its module docstring):

- ``echo_server(pod=, namespace=, service=)``: a started :class:`~sandbox.echo.grpc.GrpcEchoServer`
  standing in for a pod of a Deployment whose env sets ``GRPC_ECHO_SERVER``;
- ``handle_connection(conn)``: a connection to a gateway listener that opened with the HTTP/2
  preface. Its bytes are piped to this module's *front*: a grpcio server on 127.0.0.1 (one per
  model, Gateway, listener port and scheme) whose generic handler takes every unary call as raw
  bytes (no (de)serializers), asks ``model.decide_grpc(...)`` where it goes, and forwards the
  bytes to one pod of the chosen Service: the gateway never decodes a message.

What the front does with a Decision, like a gateway would:

- status other than 200 (no route 404, invalid backends 500): the call fails with the gRPC code
  a gateway's local reply maps to (``grpc_echo.grpc_code_for_http``: 404 UNIMPLEMENTED,
  500 UNKNOWN, 503 UNAVAILABLE, ...);
- otherwise one backendRef is drawn by weight (an invalid one's share fails with UNKNOWN, i.e.
  500), the call goes to one of its pods (round robin) with the authority and metadata of the
  Decision's request (after filters), within the rule's timeouts (a timeout fails with
  UNAVAILABLE, as a gateway's 504 maps to); the Decision's response headers are sent as initial
  metadata; a backend's own error status is passed on.

Only unary calls are forwarded (the echo service has no streaming methods).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import random
import selectors
import socket
import threading
import weakref
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from sandbox.echo.grpc import GrpcEchoServer, call_authority
from sandbox.echo.wire import grpc_code_for_http, split_method
from sandbox.reference.decision import BackendChoice, Decision
from sandbox.reference.model import Model
from sandbox.targets.local.pods import LocalPod
from sandbox.targets.local.router import weighted_choice


@dataclass
class GrpcConnection:
    """A connection that opened with the HTTP/2 preface, for ``sandbox.targets.local.grpc``.

    ``preface`` holds the bytes already read from ``sock``; nothing more has been read, so
    read and write through ``sock`` alone (a TLS socket on HTTPS listeners, ALPN ``h2`` offered;
    its timeout is 30 s until changed), from one thread at a time: an ``ssl.SSLSocket`` must not
    be read and written concurrently. ``rfile`` is the handler's reader over the same socket.
    Return when the connection is done.
    """

    sock: socket.socket
    rfile: io.BufferedIOBase
    preface: bytes
    gateway: str  # "ns/name"
    port: int  # listener port
    scheme: str  # http | https
    model: Model
    pick_pod: Callable[[str, str], LocalPod | None]  # (namespace, service) -> a pod, round robin
    record: Callable[[str], None]  # adds a line to diagnostics()


FRONT_WORKERS = 32
PIPE_CHUNK = 65536
PIPE_JOIN_TIMEOUT = 30.0  # s to wait for the other half after one side closed
PIPE_IDLE_TIMEOUT = 300.0  # s a connection may stay silent both ways before it is dropped
# request metadata that belongs to the transport, not to the application: never forwarded
_RESERVED = {
    "user-agent",
    "te",
    "content-type",
    "host",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "connection",
    "keep-alive",
    "transfer-encoding",
}


def echo_server(*, pod: str, namespace: str, service: str) -> GrpcEchoServer:
    """A started gRPC echo backend on 127.0.0.1 standing in for ``pod``."""
    return GrpcEchoServer(pod=pod, namespace=namespace, service=service).start()


# --------------------------------------------------------------------------------------------
# The front: one grpcio server per (model, Gateway, listener port, scheme)
# --------------------------------------------------------------------------------------------


def _weak_callable(fn: Callable[..., Any]) -> Callable[[], Callable[..., Any] | None]:
    """A weak reference to a bound method (so a front does not keep a deployment alive)."""
    if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)
    return lambda: fn


class _Front:
    def __init__(self, conn: GrpcConnection) -> None:
        self.gateway = conn.gateway
        self.listener_port = conn.port
        self.scheme = conn.scheme
        self._model = weakref.ref(conn.model)
        self._pick_pod = _weak_callable(conn.pick_pod)
        self._record = _weak_callable(conn.record)
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._channels: dict[tuple[int, str], grpc.Channel] = {}
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=FRONT_WORKERS, thread_name_prefix="grpc-front"),
            handlers=[_FrontHandler(self)],
            options=[("grpc.so_reuseport", 0)],
        )
        self.port: int = self._server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise OSError("cannot listen on 127.0.0.1 for the local gRPC front")
        self._server.start()
        self._closed = False

    # -- helpers --------------------------------------------------------------------------
    def record(self, line: str) -> None:
        fn = self._record()
        if fn is not None:
            fn(line)

    def _channel(self, port: int, authority: str) -> grpc.Channel:
        key = (port, authority)
        with self._lock:
            ch = self._channels.get(key)
            if ch is None:
                options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
                if authority:
                    options.append(("grpc.default_authority", authority))
                ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
                self._channels[key] = ch
            return ch

    def _choose(self, backends: list[BackendChoice]) -> BackendChoice | None:
        def fraction() -> float:
            with self._lock:
                return self._rng.random()

        return weighted_choice(backends, fraction)

    # -- one call -------------------------------------------------------------------------
    def call(self, path: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        where = f"{self.gateway}:{self.listener_port}"
        model = self._model()
        pick_pod = self._pick_pod()
        if model is None or pick_pod is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "local reference gateway: shut down")
        assert model is not None and pick_pod is not None
        host = call_authority(None, context)
        service, method = split_method(path)
        metadata: dict[str, str] = {}
        for item in context.invocation_metadata():
            key = item[0].lower()
            value = item[1]
            if key.startswith(":") or key in _RESERVED or key.endswith("-bin"):
                continue
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            metadata[key] = f"{metadata[key]},{text}" if key in metadata else text
        try:
            decision = model.decide_grpc(
                self.gateway,
                self.listener_port,
                host,
                service,
                method,
                metadata,
                scheme=self.scheme,
            )
        except Exception as e:  # the model must not take the gateway down: report it
            self.record(f"gRPC {where} {host} {path}: model error: {e}")
            context.abort(grpc.StatusCode.INTERNAL, f"local reference gateway: model error: {e}")
            raise  # not reached: abort raises
        if decision.status != 200 or decision.redirect is not None:
            self.record(f"gRPC {where} {host} {path} -> {decision.status}: {decision.reason}")
            context.abort(
                grpc_code_for_http(decision.status),
                f"local reference gateway: {decision.status} {decision.reason}",
            )
        choice = self._choose(decision.backends)
        if choice is None or not choice.valid:
            why = (
                "no backend with a weight"
                if choice is None
                else (
                    f"backend {choice.namespace}/{choice.name} is invalid: {choice.invalid_reason}"
                )
            )
            self.record(f"gRPC {where} {host} {path} -> 500: {why}")
            context.abort(grpc_code_for_http(500), f"local reference gateway: 500 {why}")
        assert choice is not None
        pod: LocalPod | None = pick_pod(choice.namespace, choice.name)
        if pod is None:
            self.record(
                f"gRPC {where} {host} {path} -> 503: no pod for {choice.namespace}/{choice.name}"
            )
            context.abort(
                grpc_code_for_http(503),
                f"local reference gateway: 503 no pod for {choice.namespace}/{choice.name}",
            )
        assert pod is not None
        return self._forward(decision, pod, path, request, context, host)

    def _forward(
        self,
        decision: Decision,
        pod: LocalPod,
        path: str,
        request: bytes,
        context: grpc.ServicerContext,
        host: str,
    ) -> bytes:
        authority = decision.request.host or host
        md = tuple(
            (k.lower(), v)
            for k, v in decision.request.headers.items()
            if not k.startswith(":")
            and k.lower() not in _RESERVED
            and not k.lower().endswith("-bin")
        )
        limits = [t for t in (decision.request_timeout, decision.backend_timeout) if t]
        remaining = context.time_remaining()
        timeout = (
            min([*limits, remaining])
            if remaining is not None
            else (min(limits) if limits else None)
        )
        callable_: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self._channel(
            pod.port, authority
        ).unary_unary(path, request_serializer=None, response_deserializer=None)
        pod.requests.append(f"gRPC POST {path} HTTP/2.0")
        try:
            response: bytes = callable_(request, metadata=md, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            details = (e.details() if hasattr(e, "details") else "") or ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and limits:
                self.record(f"gRPC {path} -> 504: {pod.name} slower than the route timeout")
                context.abort(
                    grpc_code_for_http(504), "local reference gateway: upstream request timeout"
                )
            context.abort(code, details)
            raise  # not reached
        if decision.response_headers:
            context.send_initial_metadata(
                tuple((k.lower(), v) for k, v in decision.response_headers.items())
            )
        self.record(f"gRPC {self.gateway}:{self.listener_port} {host} {path} -> {pod.name}")
        return response

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            channels = list(self._channels.values())
            self._channels.clear()
        for ch in channels:
            ch.close()
        self._server.stop(grace=None).wait(5)


class _FrontHandler(grpc.GenericRpcHandler):
    def __init__(self, front: _Front) -> None:
        self._front = front

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        path = handler_call_details.method
        front = self._front

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return front.call(path, request, context)

        return grpc.unary_unary_rpc_method_handler(unary)


_FRONTS: dict[tuple[int, str, int, str], _Front] = {}
_FRONTS_LOCK = threading.Lock()


def _front_for(conn: GrpcConnection) -> _Front:
    key = (id(conn.model), conn.gateway, conn.port, conn.scheme)
    with _FRONTS_LOCK:
        front = _FRONTS.get(key)
        if front is None:
            if not any(k[0] == key[0] for k in _FRONTS):
                weakref.finalize(conn.model, _close_model_fronts, key[0])
            front = _Front(conn)
            _FRONTS[key] = front
        return front


def _close_model_fronts(model_id: int) -> None:
    with _FRONTS_LOCK:
        keys = [k for k in _FRONTS if k[0] == model_id]
        fronts = [_FRONTS.pop(k) for k in keys]
    for front in fronts:
        front.close()


def close_fronts(model: Model) -> None:
    """Stop the gRPC fronts serving ``model`` (the local provider may call this on cleanup;
    otherwise they stop when the model is garbage-collected or at exit)."""
    _close_model_fronts(id(model))


@atexit.register
def close_all() -> None:
    with _FRONTS_LOCK:
        fronts = list(_FRONTS.values())
        _FRONTS.clear()
    for front in fronts:
        front.close()


# --------------------------------------------------------------------------------------------
# The hand-off from the local gateway: pipe the HTTP/2 connection to the front
# --------------------------------------------------------------------------------------------


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways in ONE thread until both sides have closed (or, once one has, the
    other stays silent for PIPE_JOIN_TIMEOUT s; or nothing moves for PIPE_IDLE_TIMEOUT s).

    One thread because ``client`` may be an ``ssl.SSLSocket``, which must not be read and
    written from two threads at once; bytes OpenSSL has already decrypted (``pending()``) are
    not seen by select, so they are drained after each read.
    """
    peer = {client: upstream, upstream: client}
    sel = selectors.DefaultSelector()
    for s in peer:
        sel.register(s, selectors.EVENT_READ, data=s)
    open_ends = set(peer)
    try:
        while open_ends:
            timeout = PIPE_IDLE_TIMEOUT if len(open_ends) == 2 else PIPE_JOIN_TIMEOUT
            ready: list[socket.socket] = [key.data for key, _ in sel.select(timeout)]
            if not ready:
                return
            for s in ready:
                while True:
                    data = s.recv(PIPE_CHUNK)
                    if not data:
                        sel.unregister(s)
                        open_ends.discard(s)
                        with contextlib.suppress(OSError):
                            peer[s].shutdown(socket.SHUT_WR)
                        break
                    peer[s].sendall(data)
                    pending = getattr(s, "pending", None)
                    if not (callable(pending) and pending()):
                        break
    finally:
        sel.close()


def handle_connection(conn: GrpcConnection) -> None:
    """Serve one HTTP/2 connection (preface already read) through the front; returns when
    either side closes."""
    try:
        front = _front_for(conn)
        upstream = socket.create_connection(("127.0.0.1", front.port), timeout=5)
    except OSError as e:
        conn.record(f"gRPC connection to {conn.gateway}:{conn.port} dropped: no front ({e})")
        return
    try:
        upstream.sendall(conn.preface)
        _pump(conn.sock, upstream)
    except (OSError, ValueError):
        pass
    finally:
        upstream.close()
