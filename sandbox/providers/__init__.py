"""Cluster providers: one class per way of getting a Kubernetes cluster, behind one protocol.

Only ``k3d`` exists today (``sandbox.providers.k3d.K3dProvider``). A provider never touches the
user's default kubeconfig: it writes a private one to the path it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ClusterInfo:
    """What a provider knows about one cluster, without asking Kubernetes."""

    name: str
    owned: bool  # carries the sandbox's owner label
    servers_running: int
    servers_count: int
    agents_running: int
    agents_count: int
    api_port: str | None = None
    image: str | None = None

    @property
    def running(self) -> bool:
        return self.servers_count > 0 and (
            self.servers_running == self.servers_count and self.agents_running == self.agents_count
        )


class Provider(Protocol):
    name: str  # "k3d"

    def get(self, cluster: str) -> ClusterInfo | None:
        """The cluster of that name, or None when there is none."""
        ...

    def create(self, cluster: str, *, timeout: float) -> None:
        """Create the cluster (owned by the sandbox). Fails when one of that name exists."""
        ...

    def start(self, cluster: str, *, timeout: float) -> None:
        """Start a stopped cluster."""
        ...

    def delete(self, cluster: str, *, timeout: float) -> None:
        """Delete the cluster; a missing one is fine."""
        ...

    def write_kubeconfig(self, cluster: str, path: Path) -> None:
        """Write the cluster's kubeconfig to ``path`` (0600, atomically)."""
        ...
