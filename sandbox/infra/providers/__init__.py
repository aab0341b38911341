"""Cluster providers: one class per way of making the sandbox's cluster, behind one protocol.

``k3d`` (default, :class:`sandbox.infra.providers.k3d.K3dProvider`) and ``kind``
(:class:`sandbox.infra.providers.kind.KindProvider`). A provider never touches the user's default
kubeconfig: it writes a private one to the path it is given. Both run their nodes as Docker
containers, so what exists, whether it runs and whether the sandbox made it is read from Docker's
container list (:meth:`Provider.get`), without the provider's binary.

The word "provider" on the command line (``sandbox run --provider``) means where scenarios run:
the sandbox's own cluster (k3d or kind, chosen with ``--cluster``), the local reference gateway,
or an existing context. In code, a :class:`Provider` is only a cluster provider.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

Progress = Callable[[str], None]

CAP_SYS_RESOURCE = 24  # linux/capability.h


@dataclass(frozen=True)
class ClusterInfo:
    """What a provider knows about one cluster, without asking Kubernetes."""

    name: str
    owned: bool  # carries the sandbox's owner mark (k3d: a label; kind: a mount)
    servers_running: int
    servers_count: int
    agents_running: int
    agents_count: int
    api_port: str | None = None
    image: str | None = None
    nodes: tuple[str, ...] = ()  # node container names (servers first)

    @property
    def running(self) -> bool:
        return self.servers_count > 0 and (
            self.servers_running == self.servers_count and self.agents_running == self.agents_count
        )


@dataclass(frozen=True)
class HostTweaks:
    """What the node's kubelet and containerd need told about the Docker engine's host.

    - ``cgroup_v1``: the engine reports ``CgroupVersion`` "1". Kubernetes 1.35's kubelet refuses
      cgroup v1 unless ``failCgroupV1: false`` (k8s.io/kubelet config/v1beta1 KubeletConfiguration
      ``FailCgroupV1``, flag ``--fail-cgroupv1``, cmd/kubelet/app/options); older Ubuntu/RHEL/Amazon Linux hosts and older WSL2 are cgroup v1.
    - ``restrict_oom_score_adj``: the engine runs without CAP_SYS_RESOURCE in its capability
      bounding set (some nested or restricted container hosts), so no process may lower its
      ``oom_score_adj`` and runc fails every pod sandbox (the kubelet asks -998):
      containerd's ``restrict_oom_score_adj`` keeps each container's score at or above
      containerd's own; kind's entrypoint turns the same on for rootless engines itself.
    """

    cgroup_v1: bool = False
    restrict_oom_score_adj: bool = False

    def notes(self) -> list[str]:
        out = []
        if self.cgroup_v1:
            out.append(
                "this Docker engine's host uses cgroup v1, which the Kubernetes 1.35+ kubelet "
                "refuses unless told: the kubelet's cgroup v1 refusal is turned off "
                "(failCgroupV1: false)"
            )
        if self.restrict_oom_score_adj:
            out.append(
                "this Docker engine runs without CAP_SYS_RESOURCE, so containers may not lower "
                "their oom_score_adj: containerd's restrict_oom_score_adj is turned on"
            )
        return out


def lacks_cap_sys_resource(status_file: Path = Path("/proc/self/status")) -> bool:
    """Whether this process' capability bounding set lacks CAP_SYS_RESOURCE (``CapBnd`` in
    /proc/self/status; proc(5)). False when it cannot be read (not Linux)."""
    try:
        for line in status_file.read_text().splitlines():
            if line.startswith("CapBnd:"):
                return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    except (OSError, ValueError, IndexError):
        return False
    return False


def host_tweaks(
    *, cgroup_version: str, local_engine: bool, rootless: bool, os_name: str
) -> HostTweaks:
    """The tweaks for an engine: cgroup v1 from the engine itself; the oom_score_adj restriction
    only for an engine on this Linux machine (its bounding set is this machine's), and not for
    a rootless one (kind's entrypoint handles that case)."""
    restricted = (
        local_engine
        and not rootless
        and os_name == "linux"
        and os.uname().sysname == "Linux"
        and lacks_cap_sys_resource()
    )
    return HostTweaks(cgroup_v1=cgroup_version == "1", restrict_oom_score_adj=restricted)


class Provider(Protocol):
    name: str  # "k3d" | "kind"
    node_image: str  # the node image for new clusters
    tweaks: HostTweaks

    def get(self, cluster: str) -> ClusterInfo | None:
        """The cluster of that name, or None when there is none (from Docker's list)."""
        ...

    def describe_create(self) -> str:
        """One line for progress: what a new cluster is made with."""
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

    def merge_into_default(self, cluster: str) -> str:
        """Opt-in only: merge into the user's default kubeconfig, current context unchanged."""
        ...

    def load_images(
        self, cluster: str, images: list[str], *, timeout: float, progress: Progress | None = None
    ) -> None:
        """Copy images from the local Docker engine into every node of the cluster."""
        ...
