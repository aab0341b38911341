"""The reference model: Gateway API v1 routing decisions computed from manifests.

Public API (used by ``sandbox explain``, ``sandbox check`` and the ``local`` provider):

    model = Model.from_objects(objects)            # raises InputError naming the object
    model.gateways()                               # ["ns/name", ...]
    model.listeners("ns/name")                     # [ListenerInfo, ...] (port, protocol, hostname)
    model.decide("ns/name", 80, "GET", "www.example.com", "/get?x=1", {"X-A": "b"}) -> Decision
    model.decide_grpc("ns/name", 80, "host", "pkg.Service", "Method", {"k": "v"}) -> Decision
    model.services                                 # [ServiceInfo, ...] with ports and Deployments
    model.deployments                              # [DeploymentInfo, ...]
    model.backends_of("ns", "svc")                 # Deployments whose pods back that Service

Objects without ``metadata.namespace`` are in ``default``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.reference.decision import Decision


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: str = ""
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


@dataclass
class DeploymentInfo:
    namespace: str
    name: str
    replicas: int = 1
    labels: dict[str, str] = field(default_factory=dict)  # pod template labels
    env: dict[str, str] = field(default_factory=dict)  # literal env of the first container


@dataclass
class ServiceInfo:
    namespace: str
    name: str
    ports: list[ServicePort] = field(default_factory=list)
    selector: dict[str, str] = field(default_factory=dict)
    deployments: list[str] = field(default_factory=list)  # names of Deployments whose pods match


@dataclass(frozen=True)
class ListenerInfo:
    name: str
    port: int
    protocol: str  # HTTP | HTTPS | ...
    hostname: str | None = None
    tls_secrets: tuple[str, ...] = ()  # "ns/name" of certificateRefs


class Model:
    """Gateway API routing over a fixed set of objects."""

    def __init__(self) -> None:
        self.services: list[ServiceInfo] = []
        self.deployments: list[DeploymentInfo] = []

    @classmethod
    def from_objects(cls, objects: list[dict[str, Any]], sources: list[str] | None = None) -> Model:
        """Build the model. ``sources`` optionally gives "file:line" per object, for errors."""
        raise NotImplementedError

    def gateways(self) -> list[str]:
        raise NotImplementedError

    def listeners(self, gateway: str) -> list[ListenerInfo]:
        raise NotImplementedError

    def backends_of(self, namespace: str, service: str) -> list[DeploymentInfo]:
        raise NotImplementedError

    def decide(
        self,
        gateway: str,
        port: int,
        method: str,
        host: str,
        path: str,
        headers: dict[str, str],
        scheme: str = "http",
    ) -> Decision:
        raise NotImplementedError

    def decide_grpc(
        self,
        gateway: str,
        port: int,
        host: str,
        service: str,
        method: str,
        metadata: dict[str, str],
    ) -> Decision:
        raise NotImplementedError
