"""k3d: clusters as Docker containers. Flags and formats checked in k3d-io/k3d at tag v5.9.0.

- ``cluster create NAME`` (cmd/cluster/clusterCreate.go): ``--image``, ``--k3s-arg
  ARG@NODEFILTER``, ``--api-port [HOST:]HOSTPORT`` (HOSTPORT may be ``random``; cmd/util/ports.go
  ``apiPortRegexp``; a host given as ``127.0.0.1:`` is looked up and kept as the kubeconfig
  server host), ``--runtime-label KEY=VALUE@NODEFILTER`` (keys starting ``k3d.``/``k3s.`` are
  reserved: cmd/util/runtimeLabels.go), ``--wait`` (log lines only), ``--timeout DURATION``
  (rolls back on timeout), ``--kubeconfig-update-default`` / ``--kubeconfig-switch-context``
  (both default true). A name already taken: ``Failed to create cluster 'NAME' because a
  cluster with that name already exists``, exit 1.
- ``cluster list [NAME] -o json`` (cmd/cluster/clusterList.go): a JSON list of clusters with
  ``nodes[].role``, ``nodes[].runtimeLabels`` (ONLY the container's labels whose key starts with
  ``k3d``: pkg/runtimes/docker/translate.go TranslateContainerDetailsToNode, "only copy k3d.*
  labels"; so the sandbox's owner label never shows there and ownership is read from Docker's
  container list instead, :func:`owned_by_sandbox`), ``nodes[].State.Running`` (no json tags), ``serversRunning``,
  ``serversCount``, ``agentsRunning``, ``agentsCount``. ``list NAME`` for a missing cluster exits
  1 with ``No nodes found for given cluster`` (pkg/client/cluster.go ClusterGetNoNodesFoundError);
  so the whole list is read and filtered here.
- ``cluster delete NAME``: a missing cluster logs ``No nodes found for cluster 'NAME', nothing to
  delete.`` and exits 0. It ALWAYS rewrites the default kubeconfig (``$KUBECONFIG`` or
  ``~/.kube/config``) through ``KubeconfigRemoveClusterFromDefaultConfig`` (pkg/client/
  kubeconfig.go: load, remove, write back), so every k3d call here runs with ``KUBECONFIG``
  pointing at a file in the sandbox's state dir that does not exist: k3d then only warns, and
  the user's kubeconfig is never rewritten.
- ``kubeconfig get NAME`` (cmd/kubeconfig/kubeconfigGet.go) prints ``---`` then the YAML.
- Logs: logrus, info lines to stdout and warn/error/fatal to stderr (cmd/root.go); with
  ``LOG_COLORS=false`` the lines read ``time="..." level=info msg="..."``. Every failure exits 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ClusterError, ToolError
from sandbox.infra import docker_engine, tools
from sandbox.infra.providers import ClusterInfo, HostTweaks, Progress
from sandbox.infra.providers.kubeconfig import parse_kubeconfig, write_private
from sandbox.settings import OWNER_LABEL

OWNER_VALUE = "gateway-sandbox"
LIST_TIMEOUT = 30.0


def owner_label_arg() -> str:
    """``--runtime-label`` value: the sandbox's owner label on every server container."""
    return f"{OWNER_LABEL}={OWNER_VALUE}@server:*"


# k3s's packaged components that the stack never uses, each turned off at create
# (k3s --disable, pkg/deploy names; k3d passes them with --k3s-arg ...@server:*):
DISABLED_COMPONENTS = (
    # Traefik ships its own Gateway API CRDs and holds 80/443 through ServiceLB
    "traefik",
    # ServiceLB (klipper-lb) would bind every LoadBalancer port on the node: the sandbox's
    # EnvoyProxy makes ClusterIP Services and traffic goes through port-forward
    "servicelb",
    # nothing here reads resource metrics; one Deployment less to pull and start
    "metrics-server",
    # local-path-provisioner: scenarios use no PersistentVolumes
    "local-storage",
)


def create_args(
    name: str,
    *,
    image: str,
    api_port: str = "127.0.0.1:random",
    timeout: float,
    tweaks: HostTweaks | None = None,
) -> list[str]:
    """argv (after the binary) of ``k3d cluster create`` for a sandbox cluster.

    ``timeout`` is the budget of the whole create. k3d applies ``--timeout`` to each of its steps
    on its own (pkg/client/cluster.go ClusterRun: prepare the network, create the containers,
    pulling their images, then start them and wait for their log lines; "TODO: here we should
    consider the time used so far"), so it gets half: the image pull and the start each have half
    the budget, and k3d's own timeout and rollback come before the budget runs out.
    """
    step = max(30, int(timeout / 2))
    args = ["cluster", "create", name, "--image", image]
    for component in DISABLED_COMPONENTS:
        args += ["--k3s-arg", f"--disable={component}@server:*"]
    if tweaks is not None and tweaks.cgroup_v1:
        # the Kubernetes 1.35 kubelet refuses cgroup v1 unless told (providers.HostTweaks)
        args += ["--k3s-arg", "--kubelet-arg=fail-cgroupv1=false@server:*"]
    return [
        *args,
        # one server and no agents: the API port maps straight onto the server, so no
        # k3d-proxy load-balancer container (and no extra image) is needed
        "--no-lb",
        "--api-port",
        api_port,
        "--runtime-label",
        owner_label_arg(),
        "--kubeconfig-update-default=false",
        "--kubeconfig-switch-context=false",
        "--wait",
        "--timeout",
        f"{step}s",
    ]


def parse_cluster_list(text: str, name: str) -> ClusterInfo | None:
    """The cluster ``name`` from ``k3d cluster list -o json`` output, or None."""
    try:
        clusters = json.loads(text or "[]")
    except ValueError as e:
        raise ToolError(f"k3d cluster list printed no JSON: {text[:200]!r}") from e
    if not isinstance(clusters, list):
        raise ToolError(f"k3d cluster list printed unexpected JSON: {text[:200]!r}")
    for cluster in clusters:
        if isinstance(cluster, Mapping) and cluster.get("name") == name:
            return _info(cluster)
    return None


def owned_by_sandbox(containers: Sequence[docker_engine.Container]) -> bool:
    """Whether every server container of a cluster carries the sandbox's owner label
    (``k3d.role`` is k3d's role label: pkg/types/types.go LabelRole)."""
    servers = [c for c in containers if c.labels.get("k3d.role") == "server"]
    return bool(servers) and all(c.labels.get(OWNER_LABEL) == OWNER_VALUE for c in servers)


def _info(cluster: Mapping[str, Any]) -> ClusterInfo:
    """A cluster entry of ``k3d cluster list -o json``; ``owned`` is False here because k3d
    drops every label not starting with ``k3d`` (see the module docstring): :meth:`K3dProvider.get`
    fills it from Docker."""
    nodes = [n for n in cluster.get("nodes") or [] if isinstance(n, Mapping)]
    servers = [n for n in nodes if n.get("role") == "server"]
    owned = False
    api_port = None
    image = None
    if servers:
        api_port = (servers[0].get("runtimeLabels") or {}).get("k3d.server.api.port")
        image = servers[0].get("image")
        # list fills it from ContainerInspect's Image, the image ID (pkg/runtimes/docker/
        # translate.go); only a reference is useful to compare with the pin
        if isinstance(image, str) and image.startswith("sha256:"):
            image = None
    return ClusterInfo(
        name=str(cluster.get("name")),
        owned=owned,
        servers_running=int(cluster.get("serversRunning", 0)),
        servers_count=int(cluster.get("serversCount", 0)),
        agents_running=int(cluster.get("agentsRunning", 0)),
        agents_count=int(cluster.get("agentsCount", 0)),
        api_port=str(api_port) if api_port else None,
        image=str(image) if image else None,
    )


class K3dProvider:
    """Drive one k3d binary.

    :param binary: path to k3d.
    :param image: the k3s image for new clusters.
    :param scratch_kubeconfig: a path that does not exist, used as ``KUBECONFIG`` for k3d so it
        can never rewrite the user's default kubeconfig (see the module docstring).
    :param env: extra environment (``DOCKER_HOST`` of the engine found by the preflight).
    """

    name = "k3d"

    def __init__(
        self,
        binary: Path,
        *,
        image: str,
        scratch_kubeconfig: Path,
        env: Mapping[str, str] | None = None,
        api_port: str = "127.0.0.1:random",
        tweaks: HostTweaks | None = None,
    ) -> None:
        self.binary = binary
        self.image = image
        self.node_image = image
        self.scratch_kubeconfig = scratch_kubeconfig
        self.api_port = api_port
        self.tweaks = tweaks or HostTweaks()
        self._env = {**(env or {}), "KUBECONFIG": str(scratch_kubeconfig)}

    def _run(self, args: list[str], *, timeout: float, check: bool = True) -> tools.ToolResult:
        return tools.run([self.binary, *args], timeout=timeout, env=self._env, check=check)

    def list_json(self) -> str:
        return self._run(["cluster", "list", "-o", "json"], timeout=LIST_TIMEOUT).stdout

    def get(self, cluster: str) -> ClusterInfo | None:
        info = parse_cluster_list(self.list_json(), cluster)
        if info is None:
            return None
        # the owner label is on the containers but not in k3d's list: ask Docker
        containers = docker_engine.cluster_containers(cluster)
        nodes = tuple(
            sorted(c.name for c in containers if c.labels.get("k3d.role") in ("server", "agent"))
        )
        return dataclasses.replace(info, owned=owned_by_sandbox(containers), nodes=nodes)

    def describe_create(self) -> str:
        return f"creating with {self.image} (Traefik, ServiceLB, metrics-server, local-storage disabled; no load balancer)"

    def create(self, cluster: str, *, timeout: float) -> None:
        args = create_args(
            cluster, image=self.image, api_port=self.api_port, timeout=timeout, tweaks=self.tweaks
        )
        try:
            self._run(args, timeout=timeout + 60)
        except tools.ToolFailed as e:
            if "already exists" in e.result.stderr:
                raise ClusterError(
                    f"a k3d cluster named {cluster!r} already exists", hint="`sandbox status`"
                ) from e
            hint = "`sandbox doctor` checks Docker, ports and tools"
            if "deadline exceeded" in e.result.stderr:  # Go's context.DeadlineExceeded text
                hint = (
                    f"k3d ran out of time (a first create pulls {self.image}): "
                    f"`docker pull {self.image}`, then `sandbox up` again (or `sandbox up --timeout 1200`)"
                )
            raise ClusterError(
                f"k3d could not create cluster {cluster!r}:\n{tools._tail(e.result.stderr)}",
                hint=hint,
            ) from e

    def start(self, cluster: str, *, timeout: float) -> None:
        self._run(
            ["cluster", "start", cluster, "--wait", "--timeout", f"{int(timeout)}s"],
            timeout=timeout + 60,
        )

    def delete(self, cluster: str, *, timeout: float) -> None:
        self._run(["cluster", "delete", cluster], timeout=timeout)

    def kubeconfig_text(self, cluster: str) -> str:
        return self._run(["kubeconfig", "get", cluster], timeout=LIST_TIMEOUT).stdout

    def write_kubeconfig(self, cluster: str, path: Path) -> None:
        text = self.kubeconfig_text(cluster)
        config = parse_kubeconfig(text)
        write_private(path, yaml.safe_dump(config, sort_keys=False))

    def load_images(
        self, cluster: str, images: list[str], *, timeout: float, progress: Progress | None = None
    ) -> None:
        """``k3d image import IMG... -c NAME --mode direct`` (cmd/image/imageImport.go): direct
        streams ``docker save`` into each node's ``ctr image import``, without the k3d-tools
        container (and its image) that the default mode starts."""
        if not images:
            return
        try:
            self._run(
                ["image", "import", *images, "--cluster", cluster, "--mode", "direct"],
                timeout=timeout,
            )
        except tools.ToolFailed as e:
            raise ClusterError(
                f"k3d could not import {', '.join(images)} into cluster {cluster!r}:\n"
                f"{tools._tail(e.result.stderr)}",
                hint=(
                    "with Docker's containerd image store, k3d image import can fail (k3d#1538): "
                    "`docker save IMG -o img.tar && k3d image import img.tar -c "
                    f"{cluster}`"
                ),
            ) from e

    def merge_into_default(self, cluster: str) -> str:
        """Opt-in only (``--merge-kubeconfig``): merge into the user's default kubeconfig
        WITHOUT switching its current context (``k3d kubeconfig merge -d -s=false``)."""
        env = {k: v for k, v in self._env.items() if k != "KUBECONFIG"}
        if "KUBECONFIG" in os.environ:
            env["KUBECONFIG"] = os.environ["KUBECONFIG"]
        result = tools.run(
            [
                self.binary,
                "kubeconfig",
                "merge",
                cluster,
                "--kubeconfig-merge-default",
                "--kubeconfig-switch-context=false",
            ],
            timeout=LIST_TIMEOUT,
            env=env,
        )
        return result.stdout.strip()
