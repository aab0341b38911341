"""Pinned versions, download addresses and places on disk, in one module.

Every pin can be overridden by an environment variable (``SANDBOX_<NAME>``) and, on the commands
that use it, by a flag. Sources for each fact are cited beside it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import InputError, ToolError

# k3d v5.9.0 (k3d-io/k3d tag v5.9.0, 2026-06-02). Release assets are bare binaries
# `k3d-<os>-<arch>` plus one `checksums.txt` whose lines read `<sha256>  _dist/k3d-<os>-<arch>`
# (Makefile target gen-checksum: `sha256sum _dist/* > _dist/checksums.txt`).
K3D_VERSION = "v5.9.0"
K3D_URL = "https://github.com/k3d-io/k3d/releases/download/{version}/k3d-{os}-{arch}"
K3D_CHECKSUMS_URL = "https://github.com/k3d-io/k3d/releases/download/{version}/checksums.txt"

# k3s image passed explicitly with --image: the k3d binary's default is set at build time from the
# k3s stable channel, so it is never relied on (k3d Makefile, `-X ...version.K3sVersion`).
K3S_IMAGE = "rancher/k3s:v1.35.5-k3s1"

# kind v0.33.0 (kubernetes-sigs/kind tag v0.33.0). Release assets are bare binaries
# `kind-<os>-<arch>`, each with a sibling `<asset>.sha256sum` made by `shasum -a 256 "$f" >
# "$f".sha256sum` (hack/release/build/cross.sh), so one line `<sha256>  kind-<os>-<arch>`.
KIND_VERSION = "v0.33.0"
# kind v0.33.0's own default node image (pkg/apis/config/defaults/image.go), pinned by digest as
# kind's release notes recommend. SANDBOX_KIND_NODE_IMAGE overrides it; a tag without a digest
# works too and is never pulled when the engine already has it (our CI: kindest/node:v1.35.4,
# built locally).
KIND_NODE_IMAGE = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)

# The cluster providers the sandbox can create its cluster with; k3d is the default.
CLUSTER_PROVIDERS = ("k3d", "kind")
DEFAULT_CLUSTER_PROVIDER = "k3d"

# kubectl v1.36.1: https://dl.k8s.io/release/<v>/bin/<os>/<arch>/kubectl, and the same URL plus
# `.sha256` holds the bare hex digest (kubernetes release docs, "Install kubectl on Linux").
KUBECTL_VERSION = "v1.36.1"
KUBECTL_URL = "https://dl.k8s.io/release/{version}/bin/{os}/{arch}/kubectl"

# Envoy Gateway v1.9.0: release asset install.yaml (helm template of gateway-crds-helm with the
# Gateway API v1.6.1 *experimental* CRDs, then gateway-helm; envoyproxy/gateway tools/make/kube.mk).
ENVOY_GATEWAY_VERSION = "v1.9.0"
ENVOY_GATEWAY_INSTALL_URL = (
    "https://github.com/envoyproxy/gateway/releases/download/{version}/install.yaml"
)
ENVOY_GATEWAY_NAMESPACE = "envoy-gateway-system"
ENVOY_GATEWAY_CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"

# Gateway API bundled by that install.yaml (annotation gateway.networking.k8s.io/bundle-version).
GATEWAY_API_VERSION = "v1.6.1"
GATEWAY_API_CHANNEL = "experimental"
GATEWAY_API_CRDS_URL = (
    "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/{version}/config/crd/{channel}/"
)

# The upstream conformance echo backend (gateway-api conformance/base/manifests.yaml, v1.6.1).
ECHO_IMAGE = "registry.k8s.io/gateway-api/echo-basic:v1.5.1"

# The data plane Envoy Gateway v1.9.0 deploys for each Gateway unless an EnvoyProxy names another
# image (api/v1alpha1/shared_types.go DefaultEnvoyProxyImage).
ENVOY_PROXY_IMAGE = "docker.io/envoyproxy/envoy:distroless-v1.39.0"

DEFAULT_CLUSTER_NAME = "sandbox"
DEFAULT_GATEWAY_CLASS = "eg"
ENVOY_PROXY_NAME = "sandbox-proxy"  # EnvoyProxy in ENVOY_GATEWAY_NAMESPACE, ClusterIP Services

# Docker label the sandbox puts on its k3d containers (k3d --runtime-label) so that a cluster of
# the same name that it did not create is recognised and left alone.
OWNER_LABEL = "dev.gateway-sandbox.owner"
# kind has no flag for container labels (pkg/cluster/internal/providers/docker/provision.go sets
# only io.x-k8s.kind.cluster and io.x-k8s.kind.role), so the sandbox marks its kind nodes with a
# read-only bind mount (kind config extraMounts) of a file in its state dir at this path; Docker's
# container list shows every container's mounts, running or stopped.
OWNER_MOUNT = "/etc/gateway-sandbox/owner"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SANDBOX_{name}", default)


def host_platform() -> tuple[str, str]:
    """(os, arch) as the release assets spell them: linux|darwin, amd64|arm64."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if system not in ("linux", "darwin") or arch is None:
        raise ToolError(
            f"unsupported platform {system}/{machine}",
            hint="gateway-sandbox supports linux and macOS on amd64 and arm64",
        )
    return system, arch


def cache_dir() -> Path:
    """Per-user cache for downloaded tools and manifests (XDG_CACHE_HOME)."""
    override = os.environ.get("SANDBOX_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gateway-sandbox"


def state_dir() -> Path:
    """Per-user state: one folder per cluster with its private kubeconfig (XDG_STATE_HOME)."""
    override = os.environ.get("SANDBOX_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gateway-sandbox"


@dataclass(frozen=True)
class Settings:
    """The effective pins and names for one invocation (env first, flags override via replace())."""

    cluster_name: str = field(default_factory=lambda: _env("CLUSTER_NAME", DEFAULT_CLUSTER_NAME))
    # which provider makes the sandbox's cluster: k3d | kind (SANDBOX_CLUSTER, --cluster)
    cluster: str = field(default_factory=lambda: _env("CLUSTER", DEFAULT_CLUSTER_PROVIDER))
    kind_version: str = field(default_factory=lambda: _env("KIND_VERSION", KIND_VERSION))
    kind_node_image: str = field(default_factory=lambda: _env("KIND_NODE_IMAGE", KIND_NODE_IMAGE))
    k3d_version: str = field(default_factory=lambda: _env("K3D_VERSION", K3D_VERSION))
    k3s_image: str = field(default_factory=lambda: _env("K3S_IMAGE", K3S_IMAGE))
    kubectl_version: str = field(default_factory=lambda: _env("KUBECTL_VERSION", KUBECTL_VERSION))
    envoy_gateway_version: str = field(
        default_factory=lambda: _env("ENVOY_GATEWAY_VERSION", ENVOY_GATEWAY_VERSION)
    )
    gateway_api_version: str = field(
        default_factory=lambda: _env("GATEWAY_API_VERSION", GATEWAY_API_VERSION)
    )
    gateway_class: str = field(default_factory=lambda: _env("GATEWAY_CLASS", DEFAULT_GATEWAY_CLASS))

    @property
    def state_key(self) -> str:
        """The cluster's folder name in the state dir: NAME for k3d (as before kind existed),
        kind-NAME for kind, so a k3d and a kind cluster of one name never share state."""
        return self.cluster_name if self.cluster == "k3d" else f"{self.cluster}-{self.cluster_name}"

    @property
    def cluster_state_dir(self) -> Path:
        return state_dir() / "clusters" / self.state_key

    @property
    def kubeconfig_path(self) -> Path:
        return self.cluster_state_dir / "kubeconfig"

    @property
    def kube_context(self) -> str:
        # k3d names context, cluster and user k3d-NAME, k3d-NAME, admin@k3d-NAME; kind names
        # all three kind-NAME (pkg/cluster/internal/kubeconfig/internal/kubeconfig/helpers.go
        # KINDClusterKey).
        return f"{self.cluster}-{self.cluster_name}"

    @property
    def node_image(self) -> str:
        """The image of the cluster's node containers."""
        return self.k3s_image if self.cluster == "k3d" else self.kind_node_image


INSTALL_ENV = "SANDBOX_ENVOY_GATEWAY_INSTALL_YAML"


PROVIDERS = ("k3d", "kind", "local", "existing")


def choose_provider(provider: str | None, cluster: str | None) -> str:
    """``--provider`` with ``--cluster`` (env SANDBOX_CLUSTER) folded in: ``--cluster kind``
    alone means the sandbox's kind cluster; both given must agree."""
    if cluster is not None and cluster not in CLUSTER_PROVIDERS:
        raise InputError(
            f"unknown cluster provider {cluster!r}; expected k3d or kind", field="--cluster"
        )
    if provider is None:
        return cluster or DEFAULT_CLUSTER_PROVIDER
    if cluster is not None and provider in CLUSTER_PROVIDERS and provider != cluster:
        raise InputError(
            f"--provider {provider} and --cluster {cluster} disagree",
            field="--cluster",
            hint=f"give one of them (--cluster {cluster} alone "
            "runs on the sandbox's cluster of that kind)",
        )
    return provider
