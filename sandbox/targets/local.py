"""The ``local`` provider: a scenario served on loopback by the reference model, no cluster at all.

``LocalTarget().deploy(scenario)`` builds the reference ``Model`` from the scenario's objects and
starts, all on 127.0.0.1 with OS-chosen ports:

- **echo backends standing in for pods**: for every Deployment selected by a Service,
  ``replicas`` (default 1) :class:`~sandbox.echo.EchoServer` instances named like the pods a
  ReplicaSet makes (``<deployment>-<pod-template-hash>-<5 chars>``), with the logical namespace
  and the Service name set;
- **one reference gateway per (Gateway, listener port)**: a threaded HTTP/1.1 proxy (TLS on
  HTTPS listeners) that asks the model for a :class:`~sandbox.reference.decision.Decision` on
  every request and carries it out: 404/500 and redirects are answered by the gateway itself;
  otherwise one backend is drawn by weight (an invalid backend's share answers 500), the
  request the Decision describes (method, path, Host, headers, after filters and rewrites) is sent
  to one pod of that Service (round robin), mirrors are sent fire-and-forget, the rule's
  timeouts answer 504, and the Decision's response headers are set on the way back.

Nothing here imitates a particular proxy: the gateway adds no ``Server`` header and names itself
"local reference gateway" in the bodies it writes.

gRPC hook: a connection that opens with the HTTP/2 preface (``PRI * HTTP/2.0``, i.e. gRPC over
h2c, or h2 via ALPN on HTTPS listeners) is handed, as a :class:`GrpcConnection`, to
``handle_connection(conn)`` of the optional module ``sandbox.targets.local_grpc``; without that
module it is closed and the diagnostics say so. The same module may define
``echo_server(pod=, namespace=, service=)`` returning a started server with ``.port`` and
``.close()``: it then stands in for the pods of Deployments whose literal env sets
``GRPC_ECHO_SERVER`` (as the upstream gRPC echo backends do), and ``close_fronts(model)``,
called when the deployment ends.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import io
import json
import random
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from sandbox.echo import EchoServer
from sandbox.errors import EnvironmentProblem, InputError, SandboxError, WaitTimeout
from sandbox.infra.certs import self_signed
from sandbox.reference.decision import BackendChoice, Decision, ModelRequest
from sandbox.reference.filters import apply_header_ops
from sandbox.reference.model import DeploymentInfo, ListenerInfo, Model
from sandbox.scenario.model import Scenario
from sandbox.targets import Address

PROVIDER = "local"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 5.0  # s, for every server of a deployment to answer
DEFAULT_UPSTREAM_TIMEOUT = 15.0  # s, when the route sets no timeout: a bound, never forever
MIRROR_TIMEOUT = 5.0  # s, for one fire-and-forget mirror request
DRAIN_TIMEOUT = 30.0  # s, a too-slow backend may take to finish before its connection is closed
MAX_REPLICAS = 16  # more pods than this add nothing to a loopback run
# Images whose pods the local echo backends stand in for: the upstream conformance echo
# backend (the one the scenario library uses, `registry.k8s.io/gateway-api/echo-basic:v1.5.1`,
# and its gRPC mode) at any tag or digest, and its staging copy.
ECHO_IMAGES = (
    "registry.k8s.io/gateway-api/echo-basic",
    "gcr.io/k8s-staging-gateway-api/echo-basic",
)


def is_echo_image(image: str) -> bool:
    """``registry.k8s.io/gateway-api/echo-basic``, at any ``:tag`` or ``@digest``."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return repository in ECHO_IMAGES


def image_warnings(model: Model) -> list[str]:
    """One line per Deployment behind a Service whose containers run no echo backend image:
    the local provider answers for it with an echo backend all the same, which a cluster would
    not."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for svc in model.services:
        for dep in model.backends_of(svc.namespace, svc.name):
            key = (dep.namespace, dep.name)
            if key in seen or not dep.images or any(is_echo_image(i) for i in dep.images):
                continue  # (no images: a model built by hand, not from manifests)
            seen.add(key)
            images = ", ".join(dep.images)
            out.append(
                f"Deployment {dep.namespace}/{dep.name} runs {images}, not the echo backend "
                f"({ECHO_IMAGES[0]}): the local provider answers for its pods with an echo "
                "backend all the same, so its checks may pass here and fail on a cluster"
            )
    return out


DIAGNOSTIC_LINES = 30  # requests kept for diagnostics()
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def weighted_choice(
    backends: list[BackendChoice], random_fraction: Callable[[], float]
) -> BackendChoice | None:
    """One of ``backends`` with probability weight/total (a weight below 0 counts as 0), the
    way Envoy splits weighted clusters; ``random_fraction`` in [0, 1) is called once, only when
    some weight is positive. None when every weight is 0. HTTP and gRPC both pick with this."""
    total = sum(max(b.weight, 0) for b in backends)
    if total <= 0:
        return None
    point = random_fraction() * total
    for b in backends:
        w = max(b.weight, 0)
        if point < w:
            return b
        point -= w
    return next(b for b in reversed(backends) if b.weight > 0)


# ---------------------------------------------------------------------------------------------
# Pod names, as Kubernetes makes them
#
# - ReplicaSet name: ``<deployment>-<pod-template-hash>``, where the hash is
#   ``rand.SafeEncodeString(fmt.Sprint(fnv32a(pod template).Sum32()))``
#   (kubernetes/kubernetes pkg/controller/controller_utils.go ``ComputeHash``);
# - SafeEncodeString maps each character ``c`` of the decimal string to
#   ``alphanums[int(c) % len(alphanums)]`` with ``alphanums = "bcdfghjklmnpqrstvwxz2456789"``
#   (staging/src/k8s.io/apimachinery/pkg/util/rand/rand.go), so a hash has 1-10 characters, all
#   from "4567 89bcdf" (the digits' code points modulo 27);
# - pod name: ``generateName = "<replicaset>-"`` truncated to 58 characters, plus
#   ``rand.String(5)`` from the same alphabet (staging/src/k8s.io/apiserver/pkg/storage/names/
#   generate.go: maxNameLength 63, randomLength 5).
# ---------------------------------------------------------------------------------------------

K8S_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
MAX_NAME_LENGTH = 63
RANDOM_LENGTH = 5
MAX_GENERATED_NAME_LENGTH = MAX_NAME_LENGTH - RANDOM_LENGTH


def safe_encode_string(text: str) -> str:
    """Kubernetes' ``rand.SafeEncodeString``."""
    return "".join(K8S_ALPHANUMS[ord(c) % len(K8S_ALPHANUMS)] for c in text)


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a hash (Go's ``hash/fnv.New32a``)."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(deployment: DeploymentInfo) -> str:
    """A stable pod-template-hash for a Deployment: FNV-1a of its template's content, encoded
    like Kubernetes does (the exact bytes Kubernetes hashes are a Go dump we do not reproduce)."""
    template = {
        "namespace": deployment.namespace,
        "name": deployment.name,
        "labels": deployment.labels,
        "env": deployment.env,
    }
    digest = fnv32a(json.dumps(template, sort_keys=True).encode())
    return safe_encode_string(str(digest))


def random_suffix(rng: random.Random, length: int = RANDOM_LENGTH) -> str:
    """Kubernetes' ``rand.String(n)``."""
    return "".join(rng.choice(K8S_ALPHANUMS) for _ in range(length))


def generate_name(base: str, rng: random.Random) -> str:
    """Kubernetes' ``SimpleNameGenerator.GenerateName``: base truncated to 58, plus 5 random."""
    return base[:MAX_GENERATED_NAME_LENGTH] + random_suffix(rng)


def pod_names(deployment: DeploymentInfo, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct pod names for a Deployment, like its ReplicaSet would create."""
    base = f"{deployment.name}-{pod_template_hash(deployment)}-"
    names: list[str] = []
    for _ in range(count * 20):  # bounded: collisions among 27**5 names are rare
        if len(names) == count:
            break
        name = generate_name(base, rng)
        if name not in names:
            names.append(name)
    return names


def deployment_of_pod(pod: str) -> str:
    """The Deployment part of a pod name (the upstream weight test drops the last two parts)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


# ---------------------------------------------------------------------------------------------
# What a deployment is made of
# ---------------------------------------------------------------------------------------------


class _Server(Protocol):
    port: int

    def close(self) -> None: ...


@dataclass
class LocalPod:
    """An echo backend standing in for one pod."""

    name: str
    namespace: str  # logical
    deployment: str
    service: str  # the Service name it echoes
    port: int
    server: _Server
    requests: deque[str] = field(default_factory=lambda: deque(maxlen=2000))  # access-log lines

    def saw(self, path: str) -> bool:
        """Whether this pod received a request for exactly ``path`` (path + query)."""
        return any(f" {path} HTTP/" in line for line in self.requests.copy())


@dataclass
class LocalGateway:
    gateway: str  # "ns/name"
    port: int  # listener port (as in the manifests)
    protocol: str  # HTTP | HTTPS
    listeners: list[ListenerInfo]
    address: Address  # where it really listens
    server: _ProxyServer


@dataclass
class GrpcConnection:
    """A connection that opened with the HTTP/2 preface, for ``sandbox.targets.local_grpc``.

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


def _load_grpc_module() -> tuple[ModuleType | None, str]:
    """The optional gRPC part, and why it is missing (for diagnostics) when it is."""
    try:
        return importlib.import_module("sandbox.targets.local_grpc"), ""
    except ModuleNotFoundError as e:
        if e.name == "sandbox.targets.local_grpc":
            return None, "no sandbox.targets.local_grpc"
        return None, f"sandbox.targets.local_grpc needs {e.name}, which is not installed"
    except ImportError as e:
        return None, f"sandbox.targets.local_grpc failed to import: {e}"


# ---------------------------------------------------------------------------------------------
# The reference gateway
# ---------------------------------------------------------------------------------------------


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
        module = srv.router.grpc_module
        handler = getattr(module, "handle_connection", None) if module else None
        if handler is None:
            srv.router.record(
                f"HTTP/2 (gRPC) connection to {srv.gateway}:{srv.listener_port} closed: the local "
                f"provider serves HTTP/1.1 only ({srv.router.grpc_missing or 'no handle_connection'})"
            )
            return
        handler(
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


def _describe(decision: Decision) -> str:
    """One line on what the model decided: its own reason when it gives one."""
    if decision.reason:
        return decision.reason
    parts = []
    if decision.listener:
        parts.append(f"listener {decision.listener}")
    if decision.route:
        parts.append(f"route {decision.route}")
    if decision.rule is not None:
        parts.append(f"rule {decision.rule}")
    if decision.match:
        parts.append(f"match {decision.match}")
    return ", ".join(parts)


@dataclass
class _Outcome:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    content_length: str | None = None  # the backend's, for HEAD
    from_backend: bool = False  # a backend's answer (not one the gateway wrote itself)


def _backend_request(decision: Decision, choice: BackendChoice) -> ModelRequest:
    """The request as the chosen backend receives it (with its backendRef's own filters)."""
    return choice.request if choice.request is not None else decision.request


def _modify_response_headers(
    decision: Decision, choice: BackendChoice, headers: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Apply the ResponseHeaderModifiers to a backend's response headers: the chosen backend's
    list (the rule's, then the backendRef's own), else the rule's."""
    ops = choice.response_header_ops or decision.response_header_ops
    if not ops:
        return headers
    joined: dict[str, str] = {}
    for name, value in headers:
        key = next((k for k in joined if k.lower() == name.lower()), None)
        if key is None:
            joined[name] = value
        else:
            joined[key] += "," + value
    for op in ops:
        joined = apply_header_ops(op, joined)
    return list(joined.items())


class _Router:
    """Carries out the model's decisions: shared by every gateway server of one deployment."""

    def __init__(self, model: Model, rng: random.Random, grpc_module: ModuleType | None) -> None:
        self.model = model
        self.rng = rng
        self.grpc_module = grpc_module
        self.grpc_missing = ""  # why there is no gRPC part, when there is none
        self.pods: dict[tuple[str, str], list[LocalPod]] = {}  # (namespace, service) -> pods
        self._next: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.log: deque[str] = deque(maxlen=DIAGNOSTIC_LINES)
        self.mirror_threads: list[threading.Thread] = []

    def record(self, line: str) -> None:
        with self._lock:
            self.log.append(line)

    def pick_pod(self, namespace: str, service: str) -> LocalPod | None:
        key = (namespace, service)
        with self._lock:
            pods = self.pods.get(key) or []
            if not pods:
                return None
            i = self._next.get(key, 0)
            self._next[key] = i + 1
            return pods[i % len(pods)]

    def _random(self) -> float:
        with self._lock:
            return self.rng.random()

    def choose_backend(self, backends: list[BackendChoice]) -> BackendChoice | None:
        """Weighted random choice over every backendRef, invalid ones included (their share
        answers 500). None when every weight is 0."""
        return weighted_choice(backends, self._random)

    def carry_out(self, decision: Decision, body: bytes, started: float) -> _Outcome:
        if decision.redirect is not None:
            return _Outcome(
                decision.status,
                headers=[("Location", decision.redirect.location)],
                note=f" redirect to {decision.redirect.location}",
            )
        if decision.status != 200:
            text = {
                404: "no route matched",
                500: "no valid backend",
            }.get(decision.status, "answered by the gateway")
            return _Outcome(
                decision.status,
                f"local reference gateway: {text}\n".encode(),
                [("Content-Type", "text/plain; charset=utf-8")],
            )
        choice = self.choose_backend(decision.backends)
        if choice is None:
            return self._error(500, "every backend has weight 0")
        if not choice.valid:
            return self._error(
                500, f"backend {choice.namespace}/{choice.name} is invalid: {choice.invalid_reason}"
            )
        pod = self.pick_pod(choice.namespace, choice.name)
        if pod is None:
            return self._error(503, f"Service {choice.namespace}/{choice.name} has no pods")
        for mirror in decision.mirrors:
            if mirror.percent >= 100 or self._random() * 100 < mirror.percent:
                self.mirror(mirror.namespace, mirror.name, decision.request, body)
        limits = [t for t in (decision.request_timeout, decision.backend_timeout) if t and t > 0]
        timeout = min(limits) if limits else DEFAULT_UPSTREAM_TIMEOUT
        remaining = timeout - (time.monotonic() - started)
        outcome = self.forward(pod, _backend_request(decision, choice), body, remaining, timeout)
        if outcome.from_backend:
            outcome.headers = _modify_response_headers(decision, choice, outcome.headers)
        return outcome

    def _error(self, status: int, text: str) -> _Outcome:
        return _Outcome(
            status,
            f"local reference gateway: {text}\n".encode(),
            [("Content-Type", "text/plain; charset=utf-8")],
            note=f" [{text}]",
        )

    def forward(
        self, pod: LocalPod, request: ModelRequest, body: bytes, remaining: float, timeout: float
    ) -> _Outcome:
        if remaining <= 0:
            return self._error(504, f"timed out after {timeout:g}s")
        conn = http.client.HTTPConnection(HOST, pod.port, timeout=remaining)
        drain = False
        try:
            _send(conn, request, body)
            resp = conn.getresponse()
            data = resp.read()
            headers = [
                (n, v)
                for n, v in resp.getheaders()
                if n.lower() not in HOP_BY_HOP
                and n.lower() not in ("content-length", "date")
                # the stand-in's http.server banner: a real echo pod sends no Server header
                and not (n.lower() == "server" and v.startswith("BaseHTTP/"))
            ]
            return _Outcome(
                resp.status,
                data,
                headers,
                note=f" -> pod {pod.namespace}/{pod.name}",
                content_length=resp.getheader("Content-Length"),
                from_backend=True,
            )
        except TimeoutError:
            drain = True
            return self._error(504, f"upstream timed out after {timeout:g}s (pod {pod.name})")
        except (OSError, http.client.HTTPException, ValueError) as e:
            return self._error(503, f"upstream {pod.name} failed: {e}")
        finally:
            if drain:
                _drain_later(conn)
            else:
                conn.close()

    def mirror(self, namespace: str, service: str, request: ModelRequest, body: bytes) -> None:
        pod = self.pick_pod(namespace, service)
        if pod is None:
            self.record(f"mirror to {namespace}/{service} dropped: no pods")
            return

        def send() -> None:
            conn = http.client.HTTPConnection(HOST, pod.port, timeout=MIRROR_TIMEOUT)
            try:
                _send(conn, request, body)
                conn.getresponse().read()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.record(f"mirror to {pod.name} failed: {e}")
            finally:
                conn.close()

        t = threading.Thread(target=send, name=f"mirror-{pod.name}", daemon=True)
        with self._lock:
            self.mirror_threads = [x for x in self.mirror_threads if x.is_alive()]
            self.mirror_threads.append(t)
        t.start()


def _drain_later(conn: http.client.HTTPConnection) -> None:
    """Let a backend that was too slow finish its answer (bounded) before closing, so that it
    does not write into a closed socket."""

    def drain() -> None:
        try:
            if conn.sock is not None:
                conn.sock.settimeout(DRAIN_TIMEOUT)
            conn.getresponse().read()
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()

    threading.Thread(target=drain, name="drain", daemon=True).start()


def _send(conn: http.client.HTTPConnection, request: ModelRequest, body: bytes) -> None:
    """Send exactly the request the Decision describes."""
    conn.putrequest(request.method, request.path or "/", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", request.host)
    for name, value in request.headers.items():
        if name.lower() in ("host", "content-length") or name.lower() in HOP_BY_HOP:
            continue
        conn.putheader(name, value)
    if body:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body or None)


# ---------------------------------------------------------------------------------------------
# TLS for HTTPS listeners
# ---------------------------------------------------------------------------------------------


def _tls_entries(scenario: Scenario) -> list[tuple[str, list[str]]]:
    """("ns/name" of the Secret, hosts) of the scenario's ``tls:`` entries."""
    return [(f"{t.namespace or 'default'}/{t.secret}", list(t.hosts)) for t in scenario.tls]


def _self_signed(hosts: list[str], directory: Path, stem: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``hosts``, as (cert file, key file) in ``directory``."""
    cert, key = self_signed(hosts)
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    return cert_file, key_file


def hostname_matches(pattern: str | None, host: str) -> bool:
    """Listener hostname match: exact, or ``*.x`` matching any name with at least one more label."""
    if not pattern:
        return True
    host = host.lower().rstrip(".")
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _tls_context(
    listeners: list[ListenerInfo],
    scenario: Scenario,
    directory: Path,
    alpn: list[str],
) -> ssl.SSLContext:
    """One server context per certificate; SNI picks the listener (exact hostname, then the
    longest wildcard, then one without hostname) and so its certificate."""
    entries = _tls_entries(scenario)

    def hosts_for(listener: ListenerInfo) -> list[str]:
        for ref in listener.tls_secrets:
            secret = ref if "/" in ref else f"default/{ref}"
            for name, hosts in entries:
                if name == secret and hosts:
                    return hosts
        return [listener.hostname] if listener.hostname else ["localhost"]

    contexts: list[tuple[ListenerInfo, ssl.SSLContext]] = []
    by_hosts: dict[tuple[str, ...], ssl.SSLContext] = {}
    for i, listener in enumerate(listeners):
        hosts = hosts_for(listener)
        ctx = by_hosts.get(tuple(hosts))
        if ctx is None:
            cert, key = _self_signed(hosts, directory, f"{i}-{listener.name}")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            ctx.set_alpn_protocols(alpn)
            by_hosts[tuple(hosts)] = ctx
        contexts.append((listener, ctx))

    def rank(listener: ListenerInfo) -> tuple[int, int]:
        h = listener.hostname or ""
        return (2, 0) if h and not h.startswith("*") else (1, len(h)) if h else (0, 0)

    def pick(server_name: str | None) -> ssl.SSLContext:
        candidates = [
            (rank(lst), ctx)
            for lst, ctx in contexts
            if server_name is None or hostname_matches(lst.hostname, server_name)
        ]
        if not candidates:
            return contexts[0][1]
        return max(candidates, key=lambda c: c[0])[1]

    default = contexts[0][1]

    def sni(
        sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        chosen = pick(server_name)
        if chosen is not default:
            sock.context = chosen

    default.sni_callback = sni
    return default


# ---------------------------------------------------------------------------------------------
# Target and Deployment
# ---------------------------------------------------------------------------------------------


class LocalDeployment:
    """A scenario served on loopback. See the module docstring."""

    # the reference gateway answers the same request the same way from the first one on (it
    # is ready before deploy() yields): a check's first full round decides, nothing converges
    settled = True

    def __init__(self, scenario: Scenario, model: Model, router: _Router) -> None:
        self.namespace = ""  # no run namespace: logical names are used as written
        self.scenario = scenario
        self.model = model
        self._router = router
        self.gateways: dict[tuple[str, int], LocalGateway] = {}
        self.pods: list[LocalPod] = []
        self.skipped: list[str] = []  # listeners not served, with the reason
        self.warnings: list[str] = []  # e.g. a Deployment that is not an echo backend

    def _resolve_gateway(self, gateway: str) -> str:
        keys = sorted({g for g, _ in self.gateways} | set(self.model.gateways()))
        if "/" in gateway:
            if gateway in keys:
                return gateway
        else:
            if f"default/{gateway}" in keys:
                return f"default/{gateway}"
            named = [k for k in keys if k.split("/", 1)[1] == gateway]
            if len(named) == 1:
                return named[0]
        raise InputError(
            f"no Gateway {gateway!r} in scenario {self.scenario.name}; Gateways: {', '.join(keys) or 'none'}",
            file=str(self.scenario.file),
            field="gateway",
        )

    def address(self, gateway: str, port: int) -> Address:
        key = self._resolve_gateway(gateway)
        served = self.gateways.get((key, port))
        if served is None:
            ports = sorted(p for g, p in self.gateways if g == key)
            raise InputError(
                f"Gateway {key} has no listener the local provider serves on port {port}; "
                f"ports: {', '.join(map(str, ports)) or 'none'}",
                file=str(self.scenario.file),
                field="request.port",
            )
        return served.address

    def namespace_of(self, logical: str) -> str:
        return logical

    def pods_of(self, namespace: str, service: str) -> list[LocalPod]:
        return list(self._router.pods.get((namespace, service), []))

    def wait_mirrors(self, timeout: float = MIRROR_TIMEOUT) -> None:
        """Wait (bounded) for mirror requests sent so far to finish."""
        deadline = time.monotonic() + timeout
        for t in list(self._router.mirror_threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def diagnostics(self) -> str:
        lines = [f"provider {PROVIDER}: reference model gateway on loopback (sandbox.reference)"]
        lines.extend(f"  warning: {w}" for w in self.warnings)
        for (gw, port), g in sorted(self.gateways.items()):
            names = ", ".join(
                f"{lst.name}" + (f" ({lst.hostname})" if lst.hostname else "")
                for lst in g.listeners
            )
            lines.append(
                f"  gateway {gw} port {port} {g.protocol} at {g.address.host}:{g.address.port}: listeners {names}"
            )
        for note in self.skipped:
            lines.append(f"  not served: {note}")
        for pod in self.pods:
            lines.append(
                f"  pod {pod.namespace}/{pod.name} (service {pod.service}) at {HOST}:{pod.port}"
            )
        from sandbox.reference.verify import unattached_lines

        lines.extend(f"  not attached: {line}" for line in unattached_lines(self.model))
        with self._router._lock:
            recent = list(self._router.log)
        lines.append("last requests (newest last):" if recent else "no requests yet")
        lines.extend(f"  {line}" for line in recent)
        return "\n".join(lines)


def _warn_on_stderr(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


class LocalTarget:
    """``sandbox run --provider local``: the reference gateway and echo backends on loopback.

    ``model_factory`` (default ``Model.from_objects``) and ``rng`` are for tests; ``warn``
    gets each warning line (default: ``warning: ...`` on stderr).
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        startup_timeout: float = STARTUP_TIMEOUT,
        rng: random.Random | None = None,
        model_factory: Callable[[list[dict[str, Any]]], Model] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.warn = warn or _warn_on_stderr
        self.startup_timeout = startup_timeout
        self.rng = rng or random.Random()
        self.model_factory = model_factory or Model.from_objects

    def finish(self) -> dict[str, SandboxError]:
        """Nothing is left running after a deploy here."""
        return {}

    @contextlib.contextmanager
    def deploy(self, scenario: Scenario) -> Iterator[LocalDeployment]:
        model = self.model_factory(scenario.objects)
        grpc_module, grpc_missing = _load_grpc_module()
        router = _Router(model, self.rng, grpc_module)
        router.grpc_missing = grpc_missing
        deployment = LocalDeployment(scenario, model, router)
        deployment.warnings = image_warnings(model)
        for line in deployment.warnings:
            self.warn(f"{scenario.name}: {line}")
        with (
            contextlib.ExitStack() as stack,
            tempfile.TemporaryDirectory(prefix="sandbox-local-") as tmp,
        ):
            close_fronts = getattr(grpc_module, "close_fronts", None)
            if close_fronts is not None:
                stack.callback(close_fronts, model)  # after the gateways (callbacks run LIFO)
            try:
                self._start_pods(model, router, deployment, stack, grpc_module)
                self._start_gateways(
                    scenario, model, router, deployment, stack, Path(tmp), grpc_module
                )
                self._wait_ready(deployment)
            except OSError as e:
                raise EnvironmentProblem(f"local provider: cannot listen on {HOST}: {e}") from None
            yield deployment

    def _start_pods(
        self,
        model: Model,
        router: _Router,
        deployment: LocalDeployment,
        stack: contextlib.ExitStack,
        grpc_module: ModuleType | None,
    ) -> None:
        started: dict[tuple[str, str], list[LocalPod]] = {}
        grpc_echo = getattr(grpc_module, "echo_server", None) if grpc_module else None
        for svc in model.services:
            pods: list[LocalPod] = []
            for dep in model.backends_of(svc.namespace, svc.name):
                key = (dep.namespace, dep.name)
                if key not in started:
                    started[key] = []
                    replicas = min(max(dep.replicas, 0), MAX_REPLICAS)
                    for name in pod_names(dep, replicas, self.rng):
                        service = dep.env.get("SERVICE_NAME", svc.name)
                        requests: deque[str] = deque(maxlen=2000)
                        server: _Server
                        if dep.env.get("GRPC_ECHO_SERVER") and grpc_echo is not None:
                            server = grpc_echo(pod=name, namespace=dep.namespace, service=service)
                        else:
                            server = EchoServer(
                                HOST,
                                0,
                                pod=name,
                                namespace=dep.namespace,
                                service=service,
                                ingress=dep.env.get("INGRESS_NAME", ""),
                                log=requests.append,
                            ).start()
                        stack.callback(server.close)
                        pod = LocalPod(
                            name, dep.namespace, dep.name, service, server.port, server, requests
                        )
                        started[key].append(pod)
                        deployment.pods.append(pod)
                pods.extend(started[key])
            router.pods[(svc.namespace, svc.name)] = pods

    def _start_gateways(
        self,
        scenario: Scenario,
        model: Model,
        router: _Router,
        deployment: LocalDeployment,
        stack: contextlib.ExitStack,
        tmp: Path,
        grpc_module: ModuleType | None,
    ) -> None:
        for gw in model.gateways():
            by_port: dict[int, list[ListenerInfo]] = {}
            for listener in model.listeners(gw):
                if listener.protocol not in ("HTTP", "HTTPS"):
                    deployment.skipped.append(
                        f"{gw} listener {listener.name} ({listener.protocol} :{listener.port}): "
                        "only HTTP and HTTPS listeners are served locally"
                    )
                    continue
                by_port.setdefault(listener.port, []).append(listener)
            for port, listeners in sorted(by_port.items()):
                protocol = listeners[0].protocol
                same = [lst for lst in listeners if lst.protocol == protocol]
                for other in listeners:
                    if other.protocol != protocol:
                        deployment.skipped.append(
                            f"{gw} listener {other.name}: {other.protocol} conflicts with "
                            f"{protocol} on port {port}"
                        )
                ctx = None
                if protocol == "HTTPS":
                    alpn = (["h2"] if grpc_module else []) + ["http/1.1"]
                    ctx = _tls_context(same, scenario, tmp, alpn)
                server = _ProxyServer(router, gw, port, "https" if ctx else "http", ctx)
                stack.callback(server.close)
                server.start()
                deployment.gateways[(gw, port)] = LocalGateway(
                    gw, port, protocol, same, Address(HOST, server.port), server
                )

    def _wait_ready(self, deployment: LocalDeployment) -> None:
        """Every server accepts a connection within the startup timeout (bounded poll)."""
        deadline = time.monotonic() + self.startup_timeout
        pending = [(f"pod {p.name}", p.port) for p in deployment.pods] + [
            (f"gateway {g.gateway}:{g.port}", g.address.port) for g in deployment.gateways.values()
        ]
        last = "nothing tried"
        while pending:
            what, port = pending[0]
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    pending.pop(0)
                    continue
            except OSError as e:
                last = f"{what} on {HOST}:{port}: {e}"
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    "the local provider's servers to accept connections", self.startup_timeout, last
                )
            time.sleep(0.02)
