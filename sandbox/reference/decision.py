"""What the reference model decides for one request: the data behind ``sandbox explain -o json``.

``Decision.to_json()`` has exactly the keys of the ``explain`` JSON contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.reference.objects import HeaderOps


@dataclass
class BackendChoice:
    name: str
    namespace: str
    port: int | None
    weight: int
    kind: str = "Service"
    group: str = ""
    valid: bool = True  # False: unknown kind, missing Service, cross-ns without ReferenceGrant
    invalid_reason: str = ""
    # beyond the JSON contract, for the local reference gateway:
    request: ModelRequest | None = None  # the request as THIS backend receives it (backend filters)
    # ResponseHeaderModifiers to apply, in order, to this backend's response (rule's, then its own)
    response_header_ops: list[HeaderOps] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)  # Deployments whose pods back the Service
    endpoints: bool = True  # False: a valid Service that no pod backs (the gateway answers 503)


@dataclass
class ModelRequest:
    """A request as the backend would receive it (after filters)."""

    method: str
    host: str
    path: str  # including the query string
    headers: dict[str, str] = field(default_factory=dict)  # multiple values joined with ","


@dataclass
class ModelRedirect:
    scheme: str
    host: str
    port: int | None
    path: str
    location: str


@dataclass
class Mirror:
    name: str
    namespace: str
    port: int | None
    percent: float = 100.0


@dataclass
class Decision:
    status: int  # 200 when a backend is chosen; 3xx redirect; 404 no match; 500 invalid backends
    gateway: str  # "ns/name"
    listener: str | None
    route: str | None  # "ns/name"
    rule: int | None  # 0-based
    backends: list[BackendChoice]
    request: ModelRequest
    response_headers: dict[str, str]
    redirect: ModelRedirect | None
    reason: str
    # beyond the JSON contract, for the local reference gateway:
    mirrors: list[Mirror] = field(default_factory=list)
    request_timeout: float | None = None  # rule timeouts.request (s)
    backend_timeout: float | None = None  # rule timeouts.backendRequest (s)
    match: str | None = None  # human text of the winning match
    losers: list[str] = field(default_factory=list)  # why the other candidates lost
    listener_port: int | None = None
    summary: str = ""  # ``reason`` without the list of losers (for text output)
    grpc_status: int | None = None  # gRPC: 0 OK, 12 UNIMPLEMENTED (no route), 14 UNAVAILABLE
    # the rule's ResponseHeaderModifier (apply with filters.apply_header_ops to the backend's
    # response headers); per-backend lists, with backend-level filters, are on BackendChoice
    response_header_ops: list[HeaderOps] = field(default_factory=list)

    def backend_shares(self) -> dict[str, float]:
        """Share of traffic per ``ns/name`` of a valid backend with weight > 0, plus ``"500"``
        for the share that goes to invalid backends and ``"503"`` for Services without pods."""
        total = sum(b.weight for b in self.backends)
        shares: dict[str, float] = {}
        if total <= 0:
            return shares
        for b in self.backends:
            if b.weight <= 0:
                continue
            key = (
                f"{b.namespace}/{b.name}"
                if b.valid and b.endpoints
                else "500"
                if not b.valid
                else "503"
            )
            shares[key] = shares.get(key, 0.0) + b.weight / total
        return shares

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "gateway": self.gateway,
            "listener": self.listener,
            "route": self.route,
            "rule": self.rule,
            "backends": [
                {"name": b.name, "namespace": b.namespace, "port": b.port, "weight": b.weight}
                for b in self.backends
            ],
            "request": {
                "method": self.request.method,
                "host": self.request.host,
                "path": self.request.path,
                "headers": dict(self.request.headers),
            },
            "response_headers": dict(self.response_headers),
            "redirect": None
            if self.redirect is None
            else {
                "scheme": self.redirect.scheme,
                "host": self.redirect.host,
                "port": self.redirect.port,
                "path": self.redirect.path,
                "location": self.redirect.location,
            },
            "reason": self.reason,
        }
