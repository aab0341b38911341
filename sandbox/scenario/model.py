"""The scenario model: what a scenario folder says, as typed data (loaded by ``sandbox.scenario.load``).

Namespaces in manifests and expectations are *logical*: objects without a namespace and the
namespace ``default`` are the run's namespace; any other namespace N is mapped by a cluster run to
``<run-namespace>-N`` (see ``sandbox.targets``). The reference model works on logical names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.manifests import (
    Manifest,
    display_path,
)

DEFAULT_CONSECUTIVE = 3  # gateway-api conformance RequiredConsecutiveSuccesses


DEFAULT_CONVERGENCE_TIMEOUT = 30.0  # gateway-api conformance MaxTimeToConsistency (s)


DEFAULT_REQUEST_TIMEOUT = 10.0  # gateway-api conformance RequestTimeout (s)


DEFAULT_SAMPLES = 200  # requests sent for a traffic-share (weights) check


DEFAULT_TOLERANCE = 0.05  # gateway-api conformance weight tolerance


@dataclass
class Request:
    """The request a check sends. ``host`` is the Host header (and TLS SNI for https)."""

    host: str | None = None
    path: str = "/"  # path plus query string, sent as is
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"  # http | https
    port: int | None = None  # the Gateway listener port; default 80 (http) / 443 (https)
    gateway: str | None = None  # send through another Gateway of the scenario (default: scenario's)
    # headers the echo backend is asked to set on its response (upstream X-Echo-Set-Header)
    backend_response_headers: dict[str, str] = field(default_factory=dict)
    grpc: GrpcRequest | None = None  # set for a gRPC check (GRPCRoute)


@dataclass
class GrpcRequest:
    service: str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
    method: str = "Echo"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class ExpectedRequest:
    """What the echo backend must have seen."""

    path: str | None = None  # exact, including the query string
    host: str | None = None
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # name (any case) -> value (joined ",")
    absent_headers: list[str] = field(default_factory=list)


@dataclass
class ExpectedRedirect:
    scheme: str | None = None
    host: str | None = None
    port: int | None = None  # None: default port of the scheme (empty, 80 for http, 443 https)
    path: str | None = None


@dataclass
class Expect:
    status: list[int] = field(default_factory=lambda: [200])
    backend: str | None = None  # the answering pod's name starts with this
    namespace: str | None = None  # logical namespace of the answering pod
    request: ExpectedRequest | None = None
    headers: dict[str, str] = field(default_factory=dict)  # response headers present (exact)
    absent_headers: list[str] = field(default_factory=list)  # response headers absent
    redirect: ExpectedRedirect | None = None
    backends: dict[str, float] | None = None  # traffic shares by backend name, summing to 1


@dataclass
class Check:
    name: str
    request: Request
    expect: Expect
    line: int = 0  # line of the check in scenario.yaml, for messages
    consecutive: int = DEFAULT_CONSECUTIVE
    timeout: float = DEFAULT_CONVERGENCE_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    samples: int = DEFAULT_SAMPLES  # for expect.backends
    tolerance: float = DEFAULT_TOLERANCE  # for expect.backends
    features: list[str] = field(default_factory=list)  # upstream feature names, beyond scenario's


@dataclass
class TlsSecret:
    """A kubernetes.io/tls Secret the runner generates (self-signed) for ``hosts``."""

    secret: str
    hosts: list[str]
    namespace: str | None = None  # logical namespace; None: the run's


@dataclass
class Scenario:
    name: str  # folder name
    path: Path  # folder
    file: Path  # scenario.yaml
    description: str
    gateway: str  # name of the Gateway (in the manifests) whose data plane takes the traffic
    manifests: list[Path]
    objects: list[dict[str, Any]]  # every manifest object, in file order, as parsed
    checks: list[Check]
    features: list[str] = field(default_factory=list)  # upstream feature names it exercises
    consecutive: int = DEFAULT_CONSECUTIVE
    timeout: float = DEFAULT_CONVERGENCE_TIMEOUT
    tls: list[TlsSecret] = field(default_factory=list)
    # routes meant not to be accepted (``name`` or ``namespace/name``, logical): a cluster run
    # does not wait for them to become Accepted
    unaccepted_routes: list[str] = field(default_factory=list)
    # (file, line) of each object in ``objects``, same order, for messages
    object_sources: list[tuple[Path, int]] = field(default_factory=list)
    # the same objects with the line of every field (sandbox.manifests), for validation
    manifest_objects: list[Manifest] = field(default_factory=list)

    def check_location(self, check: Check) -> str:
        """``file:line`` of a check, for messages."""
        return f"{display_path(self.file)}:{check.line}"


SCENARIO_FILE = "scenario.yaml"


GATEWAY_API_GROUP = "gateway.networking.k8s.io"


ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")
