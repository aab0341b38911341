"""kind: Kubernetes nodes as Docker containers. Flags and formats checked in kubernetes-sigs/kind
at tag v0.33.0.

- ``create cluster`` (pkg/cmd/kind/create/cluster/createcluster.go): ``--name``, ``--config``,
  ``--image``, ``--retain``, ``--wait``, ``--kubeconfig`` ("sets kubeconfig path instead of
  $KUBECONFIG or $HOME/.kube/config"; with it, only that file is read and written:
  pkg/cluster/internal/kubeconfig/internal/kubeconfig/paths.go). A name already taken:
  ``ERROR: failed to create cluster: node(s) already exist for a cluster with the name "N"``
  (pkg/cluster/internal/create/create.go ``alreadyExists``; cmd/kind/app/main.go prints
  ``ERROR: %v``), exit 1. On a failure the nodes are deleted unless ``--retain``. Names match
  ``^[a-z0-9.-]+$`` (pkg/internal/apis/config/validate.go); over 50 characters only warns.
- The config (``kind.x-k8s.io/v1alpha4`` ``Cluster``, pkg/apis/config/v1alpha4/types.go):
  ``networking.apiServerAddress`` (default 127.0.0.1) and ``apiServerPort`` (0: kind picks a free
  port once, at provisioning: providers/docker/provision.go, so a restarted node keeps it);
  ``nodes[].extraMounts[]`` ``{hostPath, containerPath, readOnly}``; ``kubeadmConfigPatches`` and
  ``containerdConfigPatches`` (strings merged into kubeadm's and containerd's config).
- Node containers carry ``io.x-k8s.kind.cluster=NAME`` and ``io.x-k8s.kind.role`` =
  ``control-plane`` | ``worker`` | ``external-load-balancer``
  (providers/docker/constants.go, provision.go) and no other label: kind has no flag for
  container labels, so the sandbox's owner mark is a read-only bind mount of a file in its state
  dir at ``settings.OWNER_MOUNT`` (kind config ``extraMounts``), which Docker's container list
  shows for running and stopped containers alike. The API server is published as
  ``127.0.0.1:PORT -> 6443/tcp`` on the control-plane container
  (common.APIServerInternalPort).
- ``delete cluster --name N --kubeconfig F``: "like rm -f", a missing cluster is success; it
  removes the cluster's entries from F only (pkg/cluster/internal/delete).
- ``get kubeconfig --name N`` prints the kubeconfig (context, cluster and user ``kind-N``:
  kubeconfig/internal/kubeconfig/helpers.go ``KINDClusterKey``) on stdout.
- ``load docker-image IMG... --name N`` (pkg/cmd/kind/load/docker-image): ``image: "X" not present
  locally`` when the engine lacks one; skips nodes that already hold the image ID; saves with
  the ``docker`` CLI and imports with ``ctr --namespace=k8s.io images import``.
- kind has no start command. Its nodes run with ``--restart=on-failure:1`` so they come back
  with the engine; a stopped node is started here with the Engine API (``docker start``).
- All nodes share the Docker network ``kind`` (providers/docker/network.go
  ``fixedNetworkName``), created when missing and never removed by ``kind delete``.
- Logs go to stderr; every failure exits 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ClusterError, ToolError
from sandbox.infra import docker_engine, tools
from sandbox.infra.providers import ClusterInfo, HostTweaks, Progress
from sandbox.infra.providers.kubeconfig import (
    merge_kubeconfig_into_default,
    parse_kubeconfig,
    write_private,
)
from sandbox.settings import OWNER_MOUNT

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
API_SERVER_PORT = 6443  # kind pkg/cluster/internal/providers/common APIServerInternalPort
NETWORK = "kind"
LIST_TIMEOUT = 30.0
OWNER_TEXT = "gateway-sandbox: this kind cluster was created by `sandbox up --cluster kind`\n"


def config(
    name: str,
    *,
    owner_file: Path,
    api_port: int | None,
    tweaks: HostTweaks,
) -> dict[str, Any]:
    """The kind config of a sandbox cluster: one control-plane node, the API server on
    127.0.0.1 (a free port unless ``api_port``), the owner mount, and the host tweaks."""
    networking: dict[str, Any] = {"apiServerAddress": "127.0.0.1"}
    if api_port:
        networking["apiServerPort"] = api_port
    cfg: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": name,
        "networking": networking,
        "nodes": [
            {
                "role": "control-plane",
                # the sandbox's owner mark, visible in Docker's container list (module docstring)
                "extraMounts": [
                    {"hostPath": str(owner_file), "containerPath": OWNER_MOUNT, "readOnly": True}
                ],
            }
        ],
    }
    if tweaks.cgroup_v1:
        # Kubernetes 1.35's kubelet refuses cgroup v1 hosts unless told (providers.HostTweaks)
        cfg["kubeadmConfigPatches"] = ["kind: KubeletConfiguration\nfailCgroupV1: false\n"]
    if tweaks.restrict_oom_score_adj:
        # no CAP_SYS_RESOURCE: what kind's entrypoint does for rootless engines
        # (images/base/files/usr/local/bin/entrypoint: restrict_oom_score_adj = true)
        cfg["containerdConfigPatches"] = [
            '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n'
        ]
    return cfg


def create_args(name: str, *, image: str, config_path: Path, kubeconfig: Path) -> list[str]:
    """argv (after the binary) of ``kind create cluster`` for a sandbox cluster. No ``--wait``:
    the sandbox waits for the node itself (``kubectl wait``), so kind returns as soon as
    kubeadm, the CNI and the StorageClass are in."""
    return [
        "create",
        "cluster",
        "--name",
        name,
        "--image",
        image,
        "--config",
        str(config_path),
        "--kubeconfig",
        str(kubeconfig),
    ]


def owned_by_sandbox(containers: Sequence[docker_engine.Container]) -> bool:
    """Whether every control-plane container carries the sandbox's owner mount."""
    planes = [c for c in containers if c.labels.get(ROLE_LABEL) == "control-plane"]
    return bool(planes) and all(any(m.destination == OWNER_MOUNT for m in c.mounts) for c in planes)


def info_from_containers(
    name: str, containers: Sequence[docker_engine.Container]
) -> ClusterInfo | None:
    """A kind cluster as Docker's container list shows it (None when it has no node)."""
    nodes = [c for c in containers if c.labels.get(ROLE_LABEL) in ("control-plane", "worker")]
    if not nodes:
        return None
    planes = [c for c in nodes if c.labels.get(ROLE_LABEL) == "control-plane"]
    workers = [c for c in nodes if c.labels.get(ROLE_LABEL) == "worker"]
    lbs = [c for c in containers if c.labels.get(ROLE_LABEL) == "external-load-balancer"]
    api_port = None
    for c in lbs or planes:
        api_port = next((str(host) for port, host in c.ports if port == API_SERVER_PORT), None)
        if api_port:
            break
    return ClusterInfo(
        name=name,
        owned=owned_by_sandbox(containers),
        servers_running=sum(c.state == "running" for c in planes),
        servers_count=len(planes),
        agents_running=sum(c.state == "running" for c in workers),
        agents_count=len(workers),
        api_port=api_port,
        image=planes[0].image if planes and planes[0].image else None,
        nodes=tuple(c.name for c in sorted(nodes, key=lambda c: (c not in planes, c.name))),
    )


def cluster_containers(name: str) -> list[docker_engine.Container]:
    return docker_engine.containers_with_label(f"{CLUSTER_LABEL}={name}")


class KindProvider:
    """Drive one kind binary.

    :param binary: path to kind.
    :param image: the node image for new clusters.
    :param state_dir: the cluster's folder in the sandbox's state dir (owner file, config,
        scratch kubeconfig).
    :param env: extra environment (``DOCKER_HOST`` of the engine found by the preflight).
    :param api_port: a fixed API server port, or None for a free one.
    """

    name = "kind"

    def __init__(
        self,
        binary: Path,
        *,
        image: str,
        state_dir: Path,
        env: dict[str, str] | None = None,
        api_port: int | None = None,
        tweaks: HostTweaks | None = None,
    ) -> None:
        self.binary = binary
        self.node_image = image
        self.state_dir = state_dir
        self.api_port = api_port
        self.tweaks = tweaks or HostTweaks()
        self.scratch_kubeconfig = state_dir / "kind-kubeconfig"
        # KUBECONFIG too, in case a kind command without --kubeconfig is ever run
        self._env = {**(env or {}), "KUBECONFIG": str(self.scratch_kubeconfig)}

    @property
    def owner_file(self) -> Path:
        return self.state_dir / "owner"

    def _run(self, args: list[str], *, timeout: float, check: bool = True) -> tools.ToolResult:
        return tools.run([self.binary, *args], timeout=timeout, env=self._env, check=check)

    def get(self, cluster: str) -> ClusterInfo | None:
        return info_from_containers(cluster, cluster_containers(cluster))

    def describe_create(self) -> str:
        return f"creating with {self.node_image} (one control-plane node)"

    def write_config(self, cluster: str) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.owner_file.write_text(OWNER_TEXT)
        cfg = config(
            cluster,
            owner_file=self.owner_file.resolve(),
            api_port=self.api_port,
            tweaks=self.tweaks,
        )
        path = self.state_dir / "kind-config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def create(self, cluster: str, *, timeout: float) -> None:
        path = self.write_config(cluster)
        args = create_args(
            cluster, image=self.node_image, config_path=path, kubeconfig=self.scratch_kubeconfig
        )
        try:
            self._run(args, timeout=timeout)
        except tools.ToolFailed as e:
            if "already exist for a cluster with the name" in e.result.stderr:
                raise ClusterError(
                    f"a kind cluster named {cluster!r} already exists",
                    hint="`sandbox status --cluster kind`",
                ) from e
            raise ClusterError(
                f"kind could not create cluster {cluster!r}:\n{tools._tail(e.result.stderr)}",
                hint="`sandbox doctor --cluster kind` checks Docker, ports and tools",
            ) from e
        except ToolError as e:
            # a timeout: kind is killed mid-create and leaves nodes behind; the next `up`
            # sees the state file's "creating" mark and re-creates
            raise ClusterError(
                f"kind could not create cluster {cluster!r}: {e.message}",
                hint="`sandbox up --cluster kind` again repairs it",
            ) from e

    def start(self, cluster: str, *, timeout: float) -> None:
        containers = cluster_containers(cluster)
        for c in containers:
            # the owner file is the source of a bind mount: Docker refuses to start a container
            # whose bind source is gone (a state dir removed by hand)
            for m in c.mounts:
                if m.destination == OWNER_MOUNT and m.source and not os.path.exists(m.source):
                    Path(m.source).parent.mkdir(parents=True, exist_ok=True)
                    Path(m.source).write_text(OWNER_TEXT)
        stopped = [c.name for c in containers if c.state != "running"]
        if stopped:
            docker_engine.start_containers(stopped, timeout=min(timeout, 120))

    def delete(self, cluster: str, *, timeout: float) -> None:
        self._run(
            ["delete", "cluster", "--name", cluster, "--kubeconfig", str(self.scratch_kubeconfig)],
            timeout=timeout,
        )

    def kubeconfig_text(self, cluster: str) -> str:
        return self._run(["get", "kubeconfig", "--name", cluster], timeout=LIST_TIMEOUT).stdout

    def write_kubeconfig(self, cluster: str, path: Path) -> None:
        config_ = parse_kubeconfig(self.kubeconfig_text(cluster), tool="kind get kubeconfig")
        write_private(path, yaml.safe_dump(config_, sort_keys=False))

    def merge_into_default(self, cluster: str) -> str:
        """``kind export kubeconfig`` writes the default kubeconfig AND switches its current
        context (pkg/cluster/internal/kubeconfig ``Export``), so the merge is done here: the
        cluster, user and context ``kind-NAME`` replace same-named entries of the user's
        default kubeconfig; ``current-context`` is left as it was."""
        return merge_kubeconfig_into_default(
            parse_kubeconfig(self.kubeconfig_text(cluster), tool="kind get kubeconfig")
        )

    def load_images(
        self, cluster: str, images: list[str], *, timeout: float, progress: Progress | None = None
    ) -> None:
        if not images:
            return
        try:
            self._run(["load", "docker-image", *images, "--name", cluster], timeout=timeout)
        except tools.ToolFailed as e:
            raise ClusterError(
                f"kind could not load {', '.join(images)} into cluster {cluster!r}:\n"
                f"{tools._tail(e.result.stderr)}",
                hint=(
                    "with Docker's containerd image store, `kind load` can fail (kind#3795): "
                    "`docker save IMG -o img.tar && kind load image-archive img.tar --name "
                    f"{cluster}`"
                ),
            ) from e
