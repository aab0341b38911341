"""Gateway controllers: install one into a cluster and find what it creates.

Only Envoy Gateway exists today (``sandbox.infra.controllers.envoy_gateway.EnvoyGateway``). The runner
and the cluster target use a controller only through :class:`Controller`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from sandbox.infra.kube import Kubectl

Progress = Callable[[str], None]


class DataPlaneService(NamedTuple):
    """The Service that carries a Gateway's traffic: ``(namespace, name, ports)``.

    ``ports`` are the Service ports, which equal the Gateway's listener ports (Envoy Gateway
    maps each listener port to a Service port and shifts only the container targetPort).
    """

    namespace: str
    name: str
    ports: tuple[int, ...]


class Controller(Protocol):
    name: str  # "envoy-gateway"
    version: str  # "v1.9.0"
    namespace: str  # where the controller and (by default) the data planes run
    gateway_class: str  # the reference GatewayClass it is installed with ("eg")
    controller_name: str  # GatewayClass spec.controllerName it serves
    deployment: str  # the controller's own Deployment in ``namespace`` ("envoy-gateway")

    def installed(self, kubectl: Kubectl) -> bool:
        """True when this version is installed and its controller is Available (no changes)."""
        ...

    def install(
        self, kubectl: Kubectl, *, timeout: float, progress: Progress | None = None
    ) -> None:
        """Apply the controller and wait until its CRDs are Established and it is Available."""
        ...

    def gateway_class_ready(self, kubectl: Kubectl) -> bool:
        """True when the reference GatewayClass exists as configured and is Accepted."""
        ...

    def ensure_gateway_class(self, kubectl: Kubectl, *, timeout: float) -> None:
        """Apply the reference GatewayClass (and its parameters) and wait until Accepted."""
        ...

    def data_plane_service(
        self, kubectl: Kubectl, gateway_namespace: str, gateway_name: str
    ) -> DataPlaneService | None:
        """The data-plane Service of Gateway ``gateway_namespace/gateway_name``, or None yet."""
        ...

    def data_plane_selector(self, gateway_namespace: str, gateway_name: str) -> str:
        """The label selector of the data-plane pods and Service of that Gateway."""
        ...

    def wait_data_plane_service(
        self, kubectl: Kubectl, gateway_namespace: str, gateway_name: str, *, timeout: float
    ) -> DataPlaneService:
        """Poll :meth:`data_plane_service` until it exists; WaitTimeout otherwise."""
        ...

    def served_route(
        self,
        kubectl: Kubectl,
        gateway_namespace: str,
        gateway_name: str,
        *,
        user_agent: str,
        timeout: float = 5.0,
    ) -> str | None:
        """The route the data plane chose for the request sent with this User-Agent, as
        ``kind ns/name rule I``; "" when it found none; None when it cannot tell."""
        ...

    def controller_problem(self, kubectl: Kubectl) -> str | None:
        """Why the controller cannot answer Gateway API objects now (missing, scaled to 0, no
        available pod), or None when it runs."""
        ...

    def controller_logs_tail(self, kubectl: Kubectl, lines: int = 50) -> str:
        """The last ``lines`` lines of the controller's log ("" when unavailable)."""
        ...
