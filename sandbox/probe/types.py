"""What a probe sends and sees, and a check's result: plain data, shared by the HTTP and gRPC clients, the prober, the targets and the reports."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox import __version__
from sandbox.errors import TargetUnreachable
from sandbox.scenario.model import DEFAULT_REQUEST_TIMEOUT, Check


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
    def status(self) -> Literal["passed", "failed", "skipped"]:
        if self.skipped is not None:
            return "skipped"
        return "passed" if self.passed else "failed"


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


@dataclass(frozen=True)
class Address:
    host: str
    port: int


USER_AGENT = f"gateway-sandbox/{__version__}"
