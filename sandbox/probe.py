"""Send a check's request, read what the echo backend saw, compare, and wait for convergence.

Follows the upstream conformance suite (kubernetes-sigs/gateway-api v1.6.1):

- ``conformance/utils/roundtripper/roundtripper.go`` ``DefaultRoundTripper``: a new transport per
  request without keep-alive, a per-request timeout, redirects not followed
  (``UnfollowRedirect``), the body decoded as the echo JSON when the response's Content-Type is
  ``application/json``, the ``Location`` of a 3xx parsed into scheme/host/port/path;
- ``conformance/utils/http/http.go`` ``CompareRoundTrip``: status in the expected list (a 408 or
  504 also passes when a timeout code is expected); on a 200 or 204 the request the backend saw
  (exact path with query, method, host when given, headers case-insensitive with values joined
  by ``,``, absent headers), the namespace, response headers present and absent, and the backend
  by pod-name prefix; on a 3xx the redirect with the default-port rules;
- ``AwaitConvergence``: N consecutive matches within the timeout, the next try at once after a
  match and after a 1 s back-off after a miss (connection errors and 5xx count as misses);
  beyond upstream, a check whose every request so far was refused asks the target's
  ``unreachable`` hook whether anything will ever listen there (an ``--address`` with nothing
  behind it, a port-forward that gave up), which may end it with an environment error; and a
  target whose answers never change (``settled``: the local reference gateway) decides a check
  on its first full round, ``consecutive`` requests without back-off (a weighted check: up to
  ``SETTLED_ROUNDS`` rounds, its backends being drawn at random);
- ``conformance/utils/weight``: traffic shares over many requests, a backend's name being its pod
  name minus the last two ``-`` parts, exactly the backends with a share > 0 answering.

Everything that waits or sends is injectable (``Prober(send=..., clock=..., sleep=...)``) so the
logic is tested without the network or the wall clock.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sandbox import __version__
from sandbox.errors import TargetUnreachable
from sandbox.scenario.model import DEFAULT_REQUEST_TIMEOUT, Check, ExpectedRequest
from sandbox.targets import Address

BACKOFF = 1.0  # s after a miss (upstream AwaitConvergence)
TIMEOUT_CODES = (408, 504)  # upstream IsTimeoutError
WEIGHT_CONCURRENCY = 10  # upstream weight tests: 10 concurrent requests
USER_AGENT = f"gateway-sandbox/{__version__}"
SETTLED_ROUNDS = 5  # rounds of samples a weighted check gets on a settled target


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class SeenRequest:
    """The request as the backend received it (from the echo JSON)."""

    path: str
    host: str
    method: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    proto: str = ""

    def header(self, name: str) -> str | None:
        """Values of a header (any case), joined with "," like upstream; None if absent."""
        values = [v for k, vs in self.headers.items() if k.lower() == name.lower() for v in vs]
        return ",".join(values) if values else None


@dataclass
class Observed:
    """One response, protocol-neutral (an HTTP or a gRPC probe fills the same fields)."""

    status: int | None  # HTTP status (a gRPC probe maps its code); None: no response at all
    headers: dict[str, str] = field(default_factory=dict)  # response headers, values joined ","
    body: Any = None  # decoded JSON body, when it was JSON
    text: str = ""  # the body's first characters, when it was not JSON
    pod: str | None = None  # the answering echo backend's pod
    namespace: str | None = None  # its (real) namespace
    request: SeenRequest | None = None  # what the backend saw
    location: str | None = None  # Location header of a 3xx
    error: str | None = None  # connection error, timeout: why there is no response
    protocol: str = "http"
    duration: float = 0.0  # s

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None

    @property
    def refused(self) -> bool:
        """No response because the connection was refused: nothing listens there (now)."""
        return self.status is None and "connection refused" in (self.error or "").lower()

    def summary(self) -> str:
        if self.status is None:
            return f"no response ({self.error})"
        out = f"{self.status}"
        if self.pod:
            out += f" from pod {self.pod}"
            if self.namespace:
                out += f" in {self.namespace}"
        elif self.location:
            out += f" Location: {self.location}"
        return out


@dataclass
class Mismatch:
    field: str  # "status", "backend", "request.path", "headers.X-Foo", "backends.v1", ...
    expected: str
    observed: str


@dataclass
class ProbeRequest:
    """A request ready to send: where to, and exactly what."""

    address: Address
    scheme: str
    host: str | None  # Host header and SNI; None: the address
    method: str
    path: str
    headers: dict[str, str]
    timeout: float

    @property
    def url(self) -> str:
        host = f"[{self.address.host}]" if ":" in self.address.host else self.address.host
        return f"{self.scheme}://{host}:{self.address.port}{self.path}"

    @property
    def host_header(self) -> str:
        return self.host or f"{self.address.host}:{self.address.port}"

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.host:
            headers["Host"] = self.host
        return headers

    def curl(self) -> str:
        """The same request as a curl command a person can paste.

        ``-g`` keeps curl from reading ``[]{}`` as URL globs, ``--path-as-is`` keeps ``/./`` and
        ``/../``, ``-I`` (not ``-X HEAD``, which waits for a body) sends a HEAD, and an empty
        header is written ``-H 'Name;'`` (curl drops ``Name:`` with no value).
        """
        parts = ["curl", "-sS"]
        parts += ["-I"] if self.method == "HEAD" else ["-i"]
        if self.method not in ("GET", "HEAD"):
            parts += ["-X", self.method]
        if self.scheme == "https" and self.host:
            ip = f"[{self.address.host}]" if ":" in self.address.host else self.address.host
            parts += ["-k", "--resolve", f"{self.host}:{self.address.port}:{ip}"]
            url = f"https://{self.host}:{self.address.port}{self.path}"
        else:
            url = self.url
            if self.scheme == "https":
                parts.append("-k")
        if self.timeout != DEFAULT_REQUEST_TIMEOUT:  # the check's own request_timeout
            parts += ["-m", f"{self.timeout:g}"]
        if any(c in url for c in "[]{}"):
            parts.append("-g")
        if re.search(r"/\.\.?(/|$|\?)", self.path.split("?", 1)[0] + "?"):
            parts.append("--path-as-is")
        for name, value in self.all_headers().items():
            parts += ["-H", f"{name}: {value}" if value.strip() else f"{name};"]
        parts.append(url)
        return " ".join(shlex.quote(p) for p in parts)


@dataclass
class CheckResult:
    check: Check
    passed: bool
    attempts: int
    elapsed: float  # s
    observed: Observed | None  # the last response seen
    mismatches: list[Mismatch]  # of the last response (empty when passed)
    request: ProbeRequest | None = None
    matches: int = 0  # consecutive matches when it stopped
    shares: dict[str, float] | None = None  # for expect.backends: the last round's shares
    skipped: str | None = None  # why the check was not run
    error: str | None = None  # a problem that is not a mismatch (no address for the gateway...)
    settled: bool = False  # decided by the first round: the target's answers do not change

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        return "passed" if self.passed else "failed"


# --------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------


def backend_name(pod: str) -> str:
    """The backend a pod belongs to: its name minus the last two ``-`` parts (upstream weight)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _fmt_status(statuses: list[int]) -> str:
    return " or ".join(str(s) for s in statuses)


def compare(
    check: Check, observed: Observed, *, namespace_of: Callable[[str], str] = lambda ns: ns
) -> list[Mismatch]:
    """Every field where ``observed`` differs from ``check.expect`` (upstream CompareRoundTrip)."""
    exp = check.expect
    out: list[Mismatch] = []
    if observed.status is None:
        return [Mismatch("status", _fmt_status(exp.status), f"no response ({observed.error})")]
    status = observed.status
    if status not in exp.status:
        if not (status in TIMEOUT_CODES and any(s in TIMEOUT_CODES for s in exp.status)):
            out.append(Mismatch("status", _fmt_status(exp.status), str(status)))
            return out  # nothing else is meaningful for a different status
        return out  # a timeout that was expected: upstream stops here too

    if 300 <= status < 400 and exp.redirect is not None:
        out.extend(_compare_redirect(check, observed))

    if status in (200, 204):
        out.extend(_compare_backend(check, observed, namespace_of))

    for name, value in exp.headers.items():
        got = observed.header(name)
        if got != value:
            out.append(Mismatch(f"headers.{name}", value, "(absent)" if got is None else got))
    for name in exp.absent_headers:
        present = observed.header(name)
        if present is not None:
            out.append(Mismatch(f"absent_headers.{name}", "(absent)", present))
    return out


def _effective_expected_request(check: Check) -> ExpectedRequest:
    """What the backend must have seen: ``expect.request``, else the sent request unchanged."""
    req = check.request
    er = check.expect.request
    if er is None:
        return ExpectedRequest(
            path=req.path, host=req.host, method=req.method, headers=dict(req.headers)
        )
    return ExpectedRequest(
        path=er.path if er.path is not None else req.path,
        host=er.host,
        method=er.method if er.method is not None else req.method,
        headers=er.headers,
        absent_headers=er.absent_headers,
    )


def _compare_backend(
    check: Check, observed: Observed, namespace_of: Callable[[str], str]
) -> list[Mismatch]:
    exp = check.expect
    out: list[Mismatch] = []
    needs_echo = (
        exp.backend is not None
        or exp.namespace is not None
        or exp.request is not None
        or exp.backends is not None
    )
    seen = observed.request
    if seen is None:
        if needs_echo:
            snippet = observed.text[:80] if observed.text else "(empty body)"
            out.append(Mismatch("body", "the echo backend's JSON", f"not echo JSON: {snippet!r}"))
        return out
    er = _effective_expected_request(check)
    if er.host is not None and seen.host != er.host:
        out.append(Mismatch("request.host", er.host, seen.host))
    if er.path is not None and seen.path != er.path:
        out.append(Mismatch("request.path", er.path, seen.path))
    if er.method is not None and seen.method != er.method:
        out.append(Mismatch("request.method", er.method, seen.method))
    for name, value in er.headers.items():
        got = seen.header(name)
        if got != value:
            out.append(
                Mismatch(f"request.headers.{name}", value, "(absent)" if got is None else got)
            )
    for name in er.absent_headers:
        present = seen.header(name)
        if present is not None:
            out.append(Mismatch(f"request.absent_headers.{name}", "(absent)", present))
    if exp.namespace is not None:
        real = namespace_of(exp.namespace)
        if observed.namespace != real:
            shown = exp.namespace if real == exp.namespace else f"{exp.namespace} ({real})"
            out.append(Mismatch("namespace", shown, observed.namespace or "(none)"))
    if exp.backend is not None and not (observed.pod or "").startswith(exp.backend):
        out.append(Mismatch("backend", f"{exp.backend}*", observed.pod or "(no pod name)"))
    return out


def _compare_redirect(check: Check, observed: Observed) -> list[Mismatch]:
    exp = check.expect.redirect
    assert exp is not None
    req = check.request
    if not observed.location:
        return [Mismatch("redirect", _describe_redirect(check), "(no Location header)")]
    loc = urlsplit(observed.location)
    out: list[Mismatch] = []
    scheme = loc.scheme or req.scheme
    want_scheme = exp.scheme or req.scheme
    if scheme != want_scheme:
        out.append(Mismatch("redirect.scheme", want_scheme, scheme))
    host = loc.hostname or ""
    if exp.host is not None and host.lower() != exp.host.lower():
        out.append(Mismatch("redirect.host", exp.host, host or "(none)"))
    try:
        port = loc.port
    except ValueError:
        port = None
    if exp.port is None:
        if port not in (None, _default_port(scheme)):
            out.append(Mismatch("redirect.port", f"(none) or {_default_port(scheme)}", str(port)))
    elif port != exp.port:
        out.append(
            Mismatch("redirect.port", str(exp.port), "(none)" if port is None else str(port))
        )
    want_path = exp.path if exp.path is not None else urlsplit(req.path).path
    if loc.path != want_path:
        out.append(Mismatch("redirect.path", want_path, loc.path or "(empty)"))
    return out


def _describe_redirect(check: Check) -> str:
    r = check.expect.redirect
    assert r is not None
    parts = [
        f"{k}={v}"
        for k, v in (("scheme", r.scheme), ("host", r.host), ("port", r.port), ("path", r.path))
        if v
    ]
    return "a Location" + (f" with {', '.join(parts)}" if parts else "")


def compare_shares(check: Check, pods: list[str | None]) -> tuple[dict[str, float], list[Mismatch]]:
    """Traffic shares by backend over a round of samples, and where they miss expectations."""
    want = check.expect.backends or {}
    total = len(pods)
    counts: dict[str, int] = {}
    for pod in pods:
        name = backend_name(pod) if pod else "(no backend)"
        counts[name] = counts.get(name, 0) + 1
    shares = {k: v / total for k, v in sorted(counts.items())} if total else {}
    out: list[Mismatch] = []
    for name, share in sorted(want.items()):
        got = shares.get(name, 0.0)
        n = counts.get(name, 0)
        if share > 0 and n == 0:
            out.append(
                Mismatch(f"backends.{name}", f"{share:.2f}", f"0.00 (0/{total}): no traffic")
            )
        elif share == 0 and n > 0:
            out.append(
                Mismatch(f"backends.{name}", "0.00 (no traffic)", f"{got:.2f} ({n}/{total})")
            )
        elif abs(got - share) > check.tolerance:
            out.append(
                Mismatch(
                    f"backends.{name}",
                    f"{share:.2f} ± {check.tolerance:g}",
                    f"{got:.2f} ({n}/{total})",
                )
            )
    for name, n in sorted(counts.items()):
        if name not in want:
            out.append(
                Mismatch(
                    f"backends.{name}", "0.00 (not expected)", f"{n / total:.2f} ({n}/{total})"
                )
            )
    return shares, out


# --------------------------------------------------------------------------------------------
# Converging
# --------------------------------------------------------------------------------------------


def _default_grpc_send() -> Callable[[Check, Address], Observed]:
    """``sandbox.grpc_echo.grpc_send``: imported here, lazily, because grpc_echo imports probe."""
    from sandbox.grpc_echo import grpc_send

    return grpc_send


Sender = Callable[[ProbeRequest], Observed]


@dataclass(frozen=True)
class Refusals:
    """Requests of a check refused in a row, for a target's ``unreachable`` hook."""

    address: Address
    count: int  # refused in a row, up to the last request
    seconds: float  # from the first of them to now
    answered: bool  # anything but a refusal came back earlier in the check
    final: bool  # the check's time is up


#: ``unreachable(refusals)``: asked after each refused request; returns the environment error
#: that ends the check (nothing will listen there), or None to go on converging
Unreachable = Callable[[Refusals], "TargetUnreachable | None"]


class _Streak:
    """Refused requests in a row, and whether anything else came back before them."""

    def __init__(self) -> None:
        self.count = 0
        self.since = 0.0
        self.answered = False

    def saw(self, observed: list[Observed], sent: float) -> None:
        if observed and all(o.refused for o in observed):
            if self.count == 0:
                self.since = sent
            self.count += len(observed)
        else:
            self.answered = self.answered or bool(observed)
            self.count = 0

    def ask(
        self, hook: Unreachable | None, address: Address, now: float, final: bool
    ) -> TargetUnreachable | None:
        if hook is None or self.count == 0:
            return None
        return hook(Refusals(address, self.count, now - self.since, self.answered, final))


class Prober:
    """Runs checks against addresses until they converge or time out."""

    def __init__(
        self,
        *,
        send: Sender = send_http,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = BACKOFF,
        grpc_send: Callable[[Check, Address], Observed] | None = None,
        stop: threading.Event | None = None,
        on_miss: Callable[[Check, int, float, Observed, list[Mismatch]], None] | None = None,
    ) -> None:
        """``on_miss(check, attempts, elapsed, observed, mismatches)`` is told of every response
        that did not match while a check converges (live progress on a terminal)."""
        self.on_miss = on_miss
        self.send = send
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff
        self.grpc_send: Callable[[Check, Address], Observed] = (
            grpc_send if grpc_send is not None else _default_grpc_send()
        )
        self.stop = stop

    def build(self, check: Check, address: Address) -> ProbeRequest:
        req = check.request
        headers = dict(req.headers)
        if req.backend_response_headers:
            # upstream MakeRequest: X-Echo-Set-Header built from BackendSetResponseHeaders
            headers["X-Echo-Set-Header"] = ",".join(
                f"{k}:{v}" for k, v in req.backend_response_headers.items()
            )
        return ProbeRequest(
            address=address,
            scheme=req.scheme,
            host=req.host,
            method=req.method,
            path=req.path,
            headers=headers,
            timeout=check.request_timeout,
        )

    def _send(self, check: Check, address: Address, probe: ProbeRequest) -> Observed:
        if check.request.grpc is not None:
            return self.grpc_send(check, address)
        return self.send(probe)

    def run(
        self,
        check: Check,
        address: Address,
        *,
        namespace_of: Callable[[str], str] = lambda ns: ns,
        unreachable: Unreachable | None = None,
        settled: bool = False,
    ) -> CheckResult:
        """Send ``check`` to ``address`` until it converges or its timeout passes.

        ``unreachable`` (see :data:`Unreachable`) is asked after each refused request (for a
        weighted check: each round refused throughout); the error it returns is raised, with
        this check's result so far as its ``check_result``. ``settled``: the target's answers
        never change, so the first ``consecutive`` requests decide (sent without back-off)."""
        probe = self.build(check, address)
        if check.expect.backends is not None:
            return self._run_weighted(check, address, probe, unreachable, settled)
        start = self.clock()
        attempts = 0
        matches = 0
        streak = _Streak()
        observed: Observed | None = None
        mismatches: list[Mismatch] = []
        while True:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            attempts += 1
            sent = self.clock()
            observed = self._send(check, address, probe)
            mismatches = compare(check, observed, namespace_of=namespace_of)
            elapsed = self.clock() - start
            streak.saw([observed], sent)
            if not mismatches:
                matches += 1
                if matches >= check.consecutive:
                    return CheckResult(
                        check, True, attempts, elapsed, observed, [], request=probe, matches=matches
                    )
                if elapsed >= check.timeout or (settled and attempts >= check.consecutive):
                    break
                continue
            matches = 0
            if self.on_miss is not None:
                self.on_miss(check, attempts, elapsed, observed, mismatches)
            backoff = 0.0 if settled else self.backoff
            final = elapsed + backoff >= check.timeout or (
                settled and attempts >= check.consecutive
            )
            error = streak.ask(unreachable, address, self.clock(), final)
            if error is not None:
                error.check_result = CheckResult(
                    check, False, attempts, elapsed, observed, mismatches, request=probe
                )
                raise error
            if final:
                break
            if not settled:
                self.sleep(self.backoff)
        return CheckResult(
            check,
            False,
            attempts,
            self.clock() - start,
            observed,
            mismatches,
            request=probe,
            matches=matches,
            settled=settled,
        )

    def _round(
        self, check: Check, address: Address, probe: ProbeRequest
    ) -> tuple[list[Observed], list[Mismatch], dict[str, float]]:
        workers = min(WEIGHT_CONCURRENCY, check.samples)
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(
                    pool.map(lambda _: self._send(check, address, probe), range(check.samples))
                )
        else:
            results = [self._send(check, address, probe) for _ in range(check.samples)]
        for obs in results:
            mismatches = [m for m in compare(check, obs) if m.field in ("status", "body")]
            if mismatches:
                return results, mismatches, {}
        shares, mismatches = compare_shares(check, [o.pod for o in results])
        return results, mismatches, shares

    def _run_weighted(
        self,
        check: Check,
        address: Address,
        probe: ProbeRequest,
        unreachable: Unreachable | None = None,
        settled: bool = False,
    ) -> CheckResult:
        start = self.clock()
        attempts = 0
        rounds = 0
        streak = _Streak()
        last: Observed | None = None
        mismatches: list[Mismatch] = []
        shares: dict[str, float] = {}
        while True:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            sent = self.clock()
            results, mismatches, shares = self._round(check, address, probe)
            rounds += 1
            attempts += len(results)
            last = results[-1] if results else None
            elapsed = self.clock() - start
            streak.saw(results, sent)
            if not mismatches:
                return CheckResult(
                    check,
                    True,
                    attempts,
                    elapsed,
                    last,
                    [],
                    request=probe,
                    matches=1,
                    shares=shares,
                )
            backoff = 0.0 if settled else self.backoff
            final = elapsed + backoff >= check.timeout or (settled and rounds >= SETTLED_ROUNDS)
            error = streak.ask(unreachable, address, self.clock(), final)
            if error is not None:
                error.check_result = CheckResult(
                    check, False, attempts, elapsed, last, mismatches, request=probe
                )
                raise error
            if final:
                break
            if not settled:
                self.sleep(self.backoff)
        return CheckResult(
            check,
            False,
            attempts,
            self.clock() - start,
            last,
            mismatches,
            request=probe,
            shares=shares or None,
            settled=settled,
        )


def render_observed(observed: Observed | None) -> str:
    """A short multi-line description of a response for failure reports."""
    if observed is None:
        return "(nothing observed)"
    lines = [f"status: {observed.status if observed.status is not None else '(no response)'}"]
    if observed.error:
        lines.append(f"error: {observed.error}")
    if observed.pod is not None:
        lines.append(f"pod: {observed.pod}  namespace: {observed.namespace}")
    if observed.request is not None:
        r = observed.request
        lines.append(f"backend saw: {r.method} {r.path} Host: {r.host}")
    if observed.location:
        lines.append(f"Location: {observed.location}")
    if observed.body is None and observed.text:
        lines.append(f"body: {observed.text[:200]!r}")
    elif observed.body is not None and observed.request is None:
        lines.append("body: " + json.dumps(observed.body)[:200])
    return "\n".join(lines)
