"""The local reference gateway's routing: the reference model's Decision for a request carried out (a backend drawn by weight, the request sent to one of its pods, mirrors, timeouts, response headers)."""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.reference.decision import BackendChoice, Decision, ModelRequest
from sandbox.reference.filters import apply_header_ops
from sandbox.reference.model import Model
from sandbox.targets.local.pods import HOST, LocalPod


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

    def __init__(self, model: Model, rng: random.Random) -> None:
        self.model = model
        self.rng = rng
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


DEFAULT_UPSTREAM_TIMEOUT = 15.0  # s, when the route sets no timeout: a bound, never forever


MIRROR_TIMEOUT = 5.0  # s, for one fire-and-forget mirror request


DRAIN_TIMEOUT = 30.0  # s, a too-slow backend may take to finish before its connection is closed


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
