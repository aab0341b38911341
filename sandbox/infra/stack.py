"""The stack: a k3d or kind cluster with Envoy Gateway and the reference GatewayClass.

``ensure_up`` is what everything else calls ("make sure the stack is up, give me a Kubectl and
a Controller"). It runs phases, each of which checks first and acts only when needed, so a
ready stack is confirmed in seconds and an interrupted ``up`` is finished by the next one:

    docker      the Docker engine answers (before any download or any file is written)
    tools       k3d or kind, and kubectl: from PATH if their version fits, else pinned + verified
    images      (--offline / --pull only, before the cluster) every needed image is at hand
    cluster     exists and is ours (owner mark) / is created / is started
    kubeconfig  a private kubeconfig in the state dir (the user's is never touched)
    node        every node Ready (k3d --wait is not enough)
    preload     images the engine has and the cluster lacks are loaded (sandbox.infra.images)
    controller  Envoy Gateway installed and Available
    class       EnvoyProxy (ClusterIP Services) and GatewayClass, Accepted; the default
                ServiceAccount exists (waited for last: nothing before needs it)

Ownership: k3d copies ``--runtime-label`` onto the server containers; Docker's container list
shows it (``k3d cluster list -o json`` does not: it keeps only labels starting with ``k3d``,
see :mod:`sandbox.infra.providers.k3d`). kind sets no label but its own, so its nodes carry a
read-only mount of the state dir's owner file instead (:mod:`sandbox.infra.providers.kind`). Either
mark travels with the containers, so it stays right when a cluster is deleted or re-created
outside the sandbox; a marker file alone could not tell a foreign cluster of the same name from
ours. The state file (``stack.json``) records what was installed, for ``status``.

Long on purpose: ``up`` and ``down`` are one state machine over the provider, the controller and
the state file; repairing a half-made ``up`` needs all of it in view.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from sandbox import settings as settings_mod
from sandbox.errors import (
    ClusterError,
    DockerUnavailable,
    InputError,
    SandboxError,
)
from sandbox.infra import docker_engine, tools
from sandbox.infra import images as images_mod
from sandbox.infra.controllers.envoy_gateway import EnvoyGateway
from sandbox.infra.kube import Kubectl, KubectlError
from sandbox.infra.progress import PhaseResult, Phases, Reporter
from sandbox.infra.providers import ClusterInfo, HostTweaks, Provider, host_tweaks
from sandbox.infra.providers import kind as kind_mod
from sandbox.infra.providers.k3d import K3dProvider, owned_by_sandbox
from sandbox.infra.providers.kind import KindProvider
from sandbox.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 600.0  # seconds for a whole `up` from nothing (image pulls included)
NODE_TIMEOUT = 180.0
# k3d's --timeout covers pulling rancher/k3s (~70 MB) and the k3d-proxy/tools images on a first
# create, and k3d rolls the cluster back when it runs out: leave room for a slow laptop network
# (more with `up --timeout`: 80% of it)
CREATE_TIMEOUT = 480.0
GUARD_NAME = "k3d-default-kubeconfig-guard"  # never created: see providers/k3d.py


# ------------------------------------------------------------------------------------------
# Progress


# ------------------------------------------------------------------------------------------
# The stack


@dataclass
class Stack:
    """A ready stack: what the runner and the cluster target need."""

    settings: Settings
    kubectl: Kubectl
    controller: EnvoyGateway
    provider: Provider
    phases: list[PhaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def gateway_class(self) -> str:
        return self.controller.gateway_class

    @property
    def kubeconfig(self) -> Path:
        return self.kubectl.kubeconfig

    @property
    def context(self) -> str:
        return self.kubectl.context

    def summary(self) -> dict[str, Any]:
        return {
            "cluster": self.settings.cluster_name,
            "provider": self.settings.cluster,
            "kubeconfig": str(self.kubeconfig),
            "context": self.context,
            "gatewayClass": self.gateway_class,
            "versions": versions(self.settings),
            "phases": [asdict(p) for p in self.phases],
            "notes": list(self.notes),
        }


def versions(settings: Settings) -> dict[str, str]:
    if settings.cluster == "kind":
        cluster = {"kind": settings.kind_version, "node": settings.kind_node_image}
    else:
        cluster = {"k3d": settings.k3d_version, "k3s": settings.k3s_image}
    return {
        **cluster,
        "kubectl": settings.kubectl_version,
        "envoyGateway": settings.envoy_gateway_version,
        "gatewayAPI": settings.gateway_api_version,
    }


def validate_cluster_provider(settings: Settings) -> None:
    if settings.cluster not in settings_mod.CLUSTER_PROVIDERS:
        raise InputError(
            f"unknown cluster provider {settings.cluster!r}; expected one of "
            + ", ".join(settings_mod.CLUSTER_PROVIDERS),
            field="--cluster",
        )


# k3d v5.9.0 pkg/client/clusterName.go: CheckName = RFC 1123 hostname, at most 32 characters
_HOSTNAME = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$"
)


_KIND_NAME = re.compile(r"^[a-z0-9.-]+$")  # kind pkg/internal/apis/config/validate.go validNameRE


def validate_cluster_name(name: str, cluster: str = "k3d") -> None:
    """The rules k3d (or kind) applies, checked before anything runs (InputError, exit 2)."""
    if cluster == "kind":
        if not _KIND_NAME.match(name):
            raise InputError(
                f"{name!r} is not a valid kind cluster name (lower-case letters, digits, '.', '-')",
                field="--name",
            )
        if len(name) > 50:  # kind's clusterNameMax: longer names break on some systems
            raise InputError(
                f"cluster name {name!r} has {len(name)} characters; kind allows 50", field="--name"
            )
        return
    if not _HOSTNAME.match(name):
        raise InputError(
            f"{name!r} is not a valid cluster name (an RFC 1123 hostname: letters, digits, '-')",
            field="--name",
        )
    if len(name) > 32:
        raise InputError(
            f"cluster name {name!r} has {len(name)} characters; k3d allows 32", field="--name"
        )


def guard_kubeconfig(settings: Settings) -> Path:
    return settings.cluster_state_dir / GUARD_NAME


def state_file(settings: Settings) -> Path:
    return settings.cluster_state_dir / "stack.json"


def api_port_spec() -> str:
    """``--api-port`` for k3d: ``127.0.0.1:<SANDBOX_API_PORT or random>``."""
    port = os.environ.get("SANDBOX_API_PORT", "random").strip() or "random"
    return f"127.0.0.1:{port}"


def preflight() -> docker_engine.Engine:
    """The Docker engine answers, or DockerUnavailable (exit 3) within seconds."""
    return docker_engine.ping()


def _docker_phase(phases: Phases) -> docker_engine.Engine:
    """The first phase of ``up`` and ``down``: the engine answers, before anything else."""
    with phases.phase("docker", "Docker engine") as act:
        engine = preflight()
        act.append(f"engine {engine.version} answers")
    return engine


@contextlib.contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    """One ``up``/``down`` per cluster at a time (pytest-xdist workers share one stack)."""
    path = settings_mod.state_dir() / "clusters" / f"{settings.state_key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _foreign(settings: Settings) -> ClusterError:
    mark = (
        f"its node lacks the sandbox's owner mount {settings_mod.OWNER_MOUNT}"
        if settings.cluster == "kind"
        else f"its containers lack the label {settings_mod.OWNER_LABEL}"
    )
    return ClusterError(
        f"a {settings.cluster} cluster named {settings.cluster_name!r} exists but was not created "
        f"by the sandbox ({mark}); it is left untouched",
        hint="pick another name with --name or SANDBOX_CLUSTER_NAME",
    )


# A node container just started again: its API server answers before its RBAC authorizer has
# read the (kubeadm-made) ClusterRoleBinding of the admin user, and denies everything for a few
# seconds: 'Error from server (Forbidden): nodes is forbidden: User "kubernetes-admin" cannot
# list resource "nodes"' (seen on kind v0.33.0 after `docker stop` + `docker start` of the node).
FORBIDDEN_GRACE = 60.0


SETTLE_ABSENT = 3.0  # seconds a deleted cluster must stay absent before it is made again


def _delete_until_gone(provider: Provider, name: str, *, timeout: float) -> None:
    """Delete the cluster, and again whenever a node shows up after that, until none has been
    listed for ``SETTLE_ABSENT`` seconds (the engine finishing a killed client's ``docker
    run``); ClusterError naming the nodes when that does not happen within ``timeout``."""
    deadline = time.monotonic() + timeout
    provider.delete(name, timeout=max(1.0, deadline - time.monotonic()))
    absent_since = time.monotonic()
    while time.monotonic() - absent_since < SETTLE_ABSENT:
        found = provider.get(name)
        if found is not None:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"{provider.name} cluster {name!r} keeps coming back after delete "
                    f"(nodes: {', '.join(found.nodes) or '?'})",
                    hint=f"`docker ps -a` shows them; `sandbox down --cluster {provider.name}`",
                )
            log.info("cluster %s showed up again after delete: deleting again", name)
            provider.delete(name, timeout=max(1.0, deadline - time.monotonic()))
            absent_since = time.monotonic()
        time.sleep(0.5)


def _wait_nodes_ready(kubectl: Kubectl, *, timeout: float) -> None:
    """Every node Ready within ``timeout``; a Forbidden answer is retried for
    ``FORBIDDEN_GRACE`` seconds (see above), then reported as it is."""
    deadline = time.monotonic() + timeout
    grace = time.monotonic() + min(FORBIDDEN_GRACE, timeout)
    while True:
        try:
            kubectl.wait(
                "nodes",
                "condition=Ready",
                all_=True,
                timeout=max(1.0, deadline - time.monotonic()),
                what="every node Ready",
            )
            return
        except KubectlError as e:
            if "(Forbidden)" not in str(e) or time.monotonic() + 1 >= grace:
                raise
            log.info("node wait: %s; retrying (the API server has just started)", e)
            time.sleep(1)


def tweaks_for(engine: docker_engine.Engine) -> HostTweaks:
    return host_tweaks(
        cgroup_version=engine.cgroup_version,
        local_engine=engine.local,
        rootless=engine.rootless,
        os_name=engine.os,
    )


def _api_port() -> int | None:
    port = os.environ.get("SANDBOX_API_PORT", "random").strip()
    return int(port) if port.isdigit() else None


def _provider(settings: Settings, binary: Path, engine: docker_engine.Engine) -> Provider:
    tweaks = tweaks_for(engine)
    if settings.cluster == "kind":
        return KindProvider(
            binary,
            image=settings.kind_node_image,
            state_dir=settings.cluster_state_dir,
            env=engine.env(),
            api_port=_api_port(),
            tweaks=tweaks,
        )
    return K3dProvider(
        binary,
        image=settings.k3s_image,
        scratch_kubeconfig=guard_kubeconfig(settings),
        env=engine.env(),
        api_port=api_port_spec(),
        tweaks=tweaks,
    )


def _provider_version(settings: Settings) -> str:
    return settings.kind_version if settings.cluster == "kind" else settings.k3d_version


def _read_state(settings: Settings) -> dict[str, Any]:
    path = state_file(settings)
    with contextlib.suppress(ValueError, OSError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {}


def _write_state(settings: Settings, **data: Any) -> None:
    path = state_file(settings)
    current = _read_state(settings)
    current.update(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=2) + "\n")
    os.replace(tmp, path)


def _server_image(settings: Settings) -> str | None:
    """The image reference the server container was created from (Docker's container list
    has the reference; k3d's list has only the image ID)."""
    try:
        info = cluster_from_docker(settings)
    except DockerUnavailable:
        return None
    return info.image if info else None


def _kubeconfig_port(path: Path) -> str | None:
    """The API port in the server URL of a kubeconfig we wrote (``https://127.0.0.1:PORT``)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
        server = str(config["clusters"][0]["cluster"]["server"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return None
    return server.rsplit(":", 1)[-1]


PRELOAD_TIMEOUT = 300.0


def _stack_needs(controller: EnvoyGateway, progress: Any) -> dict[str, list[str]]:
    """The stack's images (install.yaml's workloads and the Envoy data plane)."""
    return images_mod.stack_needs(controller.install_yaml(progress=progress))


def _offline_or_pull(
    settings: Settings,
    provider: Provider,
    needs: dict[str, list[str]],
    info: ClusterInfo | None,
    *,
    offline: bool,
    pull: bool,
    reporter: Reporter,
    timeout: float,
) -> str:
    """Before the cluster: every image is at hand (--offline) or pulled on the host (--pull).
    A cluster that does not exist yet holds nothing, so its node image counts too."""
    wanted = dict(needs)
    if info is None:
        wanted = images_mod.merge({provider.node_image: [f"{settings.cluster} node"]}, wanted)
    nodes = list(info.nodes) if info is not None and info.running else None
    located = images_mod.locate(wanted, nodes)
    missing = [n for n in located if not n.engine and not n.cluster]
    if not missing:
        return f"{len(located)} images at hand"
    if offline:
        lines = "\n".join(f"  {n.ref} (needed by {', '.join(n.needed_by)})" for n in missing)
        raise ClusterError(
            f"--offline: {len(missing)} image(s) are neither in the Docker engine nor in the "
            f"cluster, and would be pulled:\n{lines}",
            hint="load or pull them first (`docker pull IMAGE`, or `sandbox up --pull` where a "
            "registry answers); `sandbox images` lists every image and where it is",
        )
    for n in missing:
        reporter.note(f"pulling {n.ref} (needed by {', '.join(n.needed_by)})")
        docker_engine.pull_image(n.ref, timeout=timeout, progress=None)
    return f"pulled {len(missing)}: {', '.join(n.ref for n in missing)}"


def _locate(
    settings: Settings, provider: Provider, needs: dict[str, list[str]]
) -> list[images_mod.Need]:
    """Where each needed image is: the engine, the cluster's nodes (read-only)."""
    info = provider.get(settings.cluster_name)
    nodes = list(info.nodes) if info is not None else []
    return images_mod.locate(needs, nodes)


class _Lookahead:
    """Read-only looks at a running stack, started at once in threads so that a stack that is
    up is confirmed in about the time of its slowest look instead of the sum of them all.

    The controller and class phases take a look's answer only when it says "fine" (installed,
    Accepted); the preload phase takes the image locations it would look up itself. When a look
    says otherwise, or raised, the phase does its own work as before, in order (so errors and
    repairs are what they were). The kubectl looks start only once the node phase has had an
    answer from the API server; every look is bounded by the calls it makes (their timeouts).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="sandbox-up-look")
        self._looks: dict[str, Future[Any]] = {}

    def start(self, name: str, look: Callable[[], Any]) -> None:
        self._looks[name] = self._pool.submit(look)

    def get(self, name: str) -> Any:
        """The look's answer; None when it was not started or raised."""
        look = self._looks.pop(name, None)
        if look is None:
            return None
        try:
            return look.result()
        except Exception as e:  # the phase looks again itself and reports what it finds
            log.info("look-ahead %s: %s", name, e)
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _preload(
    settings: Settings,
    provider: Provider,
    needs: dict[str, list[str]],
    *,
    reporter: Reporter,
    timeout: float,
    located: list[images_mod.Need] | None = None,
) -> str:
    """Load into the cluster each needed image that the engine has and the cluster lacks.
    ``located``: where each of ``needs`` is, when already looked up (:func:`_locate`)."""
    if located is None:
        located = _locate(settings, provider, needs)
    to_load = [n for n in located if n.engine and n.cluster is not True]
    absent = [n for n in located if not n.engine and not n.cluster]
    if absent:
        reporter.note(
            "the cluster will pull "
            + ", ".join(n.ref for n in absent)
            + " (not in the Docker engine; `sandbox up --pull` pulls on the host first)"
        )
    if not to_load:
        return f"{len(located) - len(absent)} of {len(located)} images already in the cluster"
    reporter.note("loading from the Docker engine: " + ", ".join(n.ref for n in to_load))
    provider.load_images(
        settings.cluster_name, [n.ref for n in to_load], timeout=timeout, progress=reporter.note
    )
    return f"loaded {len(to_load)}"


def ensure_up(
    settings: Settings | None = None,
    reporter: Reporter | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    merge_kubeconfig: bool = False,
    offline: bool = False,
    pull: bool = False,
    extra_images: dict[str, list[str]] | None = None,
) -> Stack:
    """Bring the stack up (or confirm it is up) and return it. Safe to call repeatedly.

    ``extra_images``: images the caller's scenarios run (``{ref: [why]}``), loaded with the
    stack's own. ``offline``: never pull, fail at once naming what is missing. ``pull``: pull
    on the host what neither the engine nor the cluster has."""
    settings = settings or Settings()
    validate_cluster_provider(settings)
    validate_cluster_name(settings.cluster_name, settings.cluster)
    if offline and pull:
        raise InputError("--offline never pulls; --pull pulls: give one of them", field="--pull")
    phases = Phases(reporter or Reporter())
    deadline = time.monotonic() + timeout
    notes: list[str] = []

    def remaining(cap: float | None = None) -> float:
        left = max(1.0, deadline - time.monotonic())
        return min(left, cap) if cap else left

    engine = _docker_phase(phases)
    tweaks = tweaks_for(engine)
    for line in tweaks.notes():
        phases.reporter.note(line)
        notes.append(line)

    with _lock(settings):
        kind = settings.cluster
        with phases.phase("tools", f"{kind} and kubectl") as act:
            cluster_tool = tools.ensure_tool(
                kind, _provider_version(settings), on_download=phases.reporter.note
            )
            kubectl_tool = tools.ensure_tool(
                "kubectl", settings.kubectl_version, on_download=phases.reporter.note
            )
            act.append(
                f"{kind} {cluster_tool.version} ({cluster_tool.source}), "
                f"kubectl {kubectl_tool.version} ({kubectl_tool.source})"
            )

        provider = _provider(settings, cluster_tool.path, engine)
        controller = EnvoyGateway(
            settings.envoy_gateway_version, gateway_class=settings.gateway_class
        )
        name = settings.cluster_name
        info = provider.get(name)
        needs: dict[str, list[str]] | None = None
        if offline or pull:
            with phases.phase(
                "images", "images at hand" if offline else "pull missing images"
            ) as act:
                needs = images_mod.merge(
                    _stack_needs(controller, phases.reporter.note), extra_images or {}
                )
                act.append(
                    _offline_or_pull(
                        settings,
                        provider,
                        needs,
                        info,
                        offline=offline,
                        pull=pull,
                        reporter=phases.reporter,
                        timeout=remaining(),
                    )
                )

        with phases.phase("cluster", f"{kind} cluster {name}") as act:
            interrupted = bool(_read_state(settings).get("creating"))
            if interrupted and (info is None or info.owned):
                # neither k3d nor kind cleans up when killed mid-create (k3d has no signal
                # handling in v5.9.0; kind deletes its nodes only on an error it returns): a
                # half-made cluster cannot be trusted. Its node may not even be listed yet: a
                # `docker run` whose client was killed is still carried out by the engine
                phases.reporter.note(
                    "a previous `up` was interrupted while creating the cluster: re-creating it"
                )
                _delete_until_gone(provider, name, timeout=remaining(180))
                info = None
            if info is None:
                phases.reporter.note(provider.describe_create())
                settings.cluster_state_dir.mkdir(parents=True, exist_ok=True)
                network_existed = (kind != "kind") or docker_engine.network_exists(kind_mod.NETWORK)
                _write_state(
                    settings,
                    cluster=name,
                    provider=kind,
                    created=datetime.now(timezone.utc).isoformat(),
                    versions=versions(settings),
                    ready=False,
                    creating=True,
                    **({} if network_existed else {"createdNetwork": kind_mod.NETWORK}),
                )
                provider.create(name, timeout=remaining(max(CREATE_TIMEOUT, 0.8 * timeout)))
                _write_state(settings, creating=False)
                act.append("created")
            elif not info.owned:
                raise _foreign(settings)
            elif not info.running:
                phases.reporter.note("starting the stopped cluster")
                provider.start(name, timeout=remaining(max(CREATE_TIMEOUT, 0.8 * timeout)))
                act.append("started")
            else:
                act.append("exists")
                image = _server_image(settings) or info.image
                if image and image != provider.node_image:
                    phases.reporter.note(
                        f"the cluster runs {image}, not {provider.node_image}; "
                        "`sandbox down` then `sandbox up` to change it"
                    )

        kubectl = Kubectl(kubectl_tool.path, settings.kubeconfig_path, settings.kube_context)
        with contextlib.ExitStack() as exits:
            looks = _Lookahead()
            exits.callback(looks.close)
            running = info is not None and info.running  # the stack may be up: look ahead
            if running and (needs is not None or controller.install_yaml_at_hand()):
                if needs is None:
                    needs = images_mod.merge(
                        _stack_needs(controller, phases.reporter.note), extra_images or {}
                    )
                wanted = needs
                looks.start("preload", lambda: _locate(settings, provider, wanted))
            _bring_up(
                settings,
                phases,
                provider,
                controller,
                kubectl,
                info,
                needs,
                looks if running else None,
                merge_kubeconfig=merge_kubeconfig,
                extra_images=extra_images,
                remaining=remaining,
            )
        _write_state(
            settings,
            ready=True,
            versions=versions(settings),
            last_up=datetime.now(timezone.utc).isoformat(),
        )
    return Stack(settings, kubectl, controller, provider, phases.results, notes)


def _bring_up(
    settings: Settings,
    phases: Phases,
    provider: Provider,
    controller: EnvoyGateway,
    kubectl: Kubectl,
    info: ClusterInfo | None,
    needs: dict[str, list[str]] | None,
    looks: _Lookahead | None,
    *,
    merge_kubeconfig: bool,
    extra_images: dict[str, list[str]] | None,
    remaining: Callable[..., float],
) -> None:
    """The phases from the kubeconfig on (see :func:`ensure_up`). ``looks``: read-only looks at
    a cluster that was found running, whose "fine" answers the phases take (:class:`_Lookahead`)."""
    name = settings.cluster_name
    with phases.phase("kubeconfig", "private kubeconfig") as act:
        # a new cluster has new certificates; an existing or restarted one keeps its port
        current = info if info is not None and info.running else provider.get(name)
        if (
            info is not None
            and current is not None
            and current.api_port is not None
            and _kubeconfig_port(settings.kubeconfig_path) == current.api_port
        ):
            act.append(f"{settings.kubeconfig_path} (unchanged)")
        else:
            provider.write_kubeconfig(name, settings.kubeconfig_path)
            act.append(str(settings.kubeconfig_path))
        if merge_kubeconfig:
            where = provider.merge_into_default(name)
            phases.reporter.note(
                f"merged into your default kubeconfig {where} (context "
                f"{settings.kube_context}; current context unchanged)"
            )

    with phases.phase("node", "node Ready") as act:
        _wait_nodes_ready(kubectl, timeout=remaining(NODE_TIMEOUT))
        act.append("ready")
        if looks is not None:  # the API server has just answered
            looks.start("controller", lambda: controller.installed(kubectl))
            looks.start("class", lambda: controller.gateway_class_ready(kubectl))

    with phases.phase("preload", "images from the Docker engine") as act:
        if needs is None:
            needs = images_mod.merge(
                _stack_needs(controller, phases.reporter.note), extra_images or {}
            )
        act.append(
            _preload(
                settings,
                provider,
                needs,
                reporter=phases.reporter,
                timeout=remaining(PRELOAD_TIMEOUT),
                located=looks.get("preload") if looks is not None else None,
            )
        )

    with phases.phase("controller", f"Envoy Gateway {controller.version}") as act:
        if (looks is not None and looks.get("controller")) or controller.installed(kubectl):
            act.append("already installed")
        else:
            controller.install(kubectl, timeout=remaining(), progress=phases.reporter.note)
            act.append("installed")

    with phases.phase("class", f"GatewayClass {controller.gateway_class}") as act:
        if (looks is not None and looks.get("class")) or controller.gateway_class_ready(kubectl):
            act.append("already Accepted")
        else:
            controller.ensure_gateway_class(kubectl, timeout=remaining(120))
            act.append("Accepted")
        # the controller-manager makes it a few seconds after a new API server answers: waited
        # for last, when it is long there, not before the install (which does not need it)
        kubectl.wait(
            "serviceaccount/default",
            "create",
            namespace="default",
            timeout=remaining(NODE_TIMEOUT),
            what="ServiceAccount default/default",
        )


def down(
    settings: Settings | None = None, reporter: Reporter | None = None, *, timeout: float = 180
) -> str:
    """Delete the sandbox's cluster and its state. Idempotent; refuses a foreign cluster.

    Returns what happened: "deleted" or "absent". With no cluster to delete, neither the
    cluster tool nor the network is needed (nothing is downloaded)."""
    settings = settings or Settings()
    validate_cluster_provider(settings)
    phases = Phases(reporter or Reporter())
    engine = _docker_phase(phases)
    with _lock(settings):
        state = _read_state(settings)
        info = cluster_from_docker(settings)
        kind = settings.cluster
        with phases.phase("cluster", f"delete {kind} cluster {settings.cluster_name}") as act:
            if info is not None and not info.owned:
                raise _foreign(settings)
            interrupted = bool(state.get("creating"))  # an `up` killed mid-create
            if info is not None or interrupted:
                cluster_tool = tools.ensure_tool(
                    kind, _provider_version(settings), on_download=phases.reporter.note
                )
                provider = _provider(settings, cluster_tool.path, engine)
                if interrupted:  # its node may be listed only later: see _delete_until_gone
                    _delete_until_gone(provider, settings.cluster_name, timeout=timeout)
                else:
                    provider.delete(settings.cluster_name, timeout=timeout)
                if cluster_from_docker(settings) is not None:
                    raise ClusterError(
                        f"{kind} cluster {settings.cluster_name!r} still exists after delete"
                    )
                outcome = "deleted"
            else:
                outcome = "absent"
            act.append(outcome)
        network = state.get("createdNetwork")
        if isinstance(network, str) and network:
            with phases.phase("network", f"Docker network {network}") as act:
                # the sandbox made it (it did not exist before its first create): removed when
                # no other cluster still uses it
                removed = docker_engine.remove_network_if_unused(network)
                act.append("removed" if removed else "kept (in use or already gone)")
        with phases.phase("state", "sandbox state") as act:
            if settings.cluster_state_dir.exists():
                shutil.rmtree(settings.cluster_state_dir)
                act.append(f"removed {settings.cluster_state_dir}")
            else:
                act.append("nothing to remove")
    return outcome


# ------------------------------------------------------------------------------------------
# status and doctor (never download, never change anything)


def _kubectl_for_status(settings: Settings) -> Kubectl | None:
    if not settings.kubeconfig_path.is_file():
        return None
    info = tools.describe_tool("kubectl", settings.kubectl_version)
    use = info.get("use") or shutil.which("kubectl")
    if not use:
        return None
    return Kubectl(use, settings.kubeconfig_path, settings.kube_context, timeout=15)


def cluster_from_docker(settings: Settings) -> ClusterInfo | None:
    """The cluster as the Docker engine sees it (no k3d or kind needed). k3d: containers
    labelled ``k3d.cluster=NAME`` with ``k3d.role`` server/agent (k3d pkg/types LabelRole);
    kind: ``io.x-k8s.kind.cluster=NAME`` (:func:`sandbox.infra.providers.kind.info_from_containers`)."""
    if settings.cluster == "kind":
        return kind_mod.info_from_containers(
            settings.cluster_name, kind_mod.cluster_containers(settings.cluster_name)
        )
    containers = docker_engine.cluster_containers(settings.cluster_name)
    if not containers:
        return None
    servers = [c for c in containers if c.labels.get("k3d.role") == "server"]
    agents = [c for c in containers if c.labels.get("k3d.role") == "agent"]
    return ClusterInfo(
        name=settings.cluster_name,
        owned=owned_by_sandbox(containers),
        servers_running=sum(c.state == "running" for c in servers),
        servers_count=len(servers),
        agents_running=sum(c.state == "running" for c in agents),
        agents_count=len(agents),
        api_port=servers[0].labels.get("k3d.server.api.port") if servers else None,
        image=next((c.image for c in servers if c.image), None),
        nodes=tuple(sorted(c.name for c in servers + agents)),
    )


def status(settings: Settings | None = None) -> dict[str, Any]:
    """The stack's state as data. ``health`` is ok | absent | foreign | stopped | degraded |
    docker-unavailable."""
    settings = settings or Settings()
    report: dict[str, Any] = {
        "cluster": {"name": settings.cluster_name, "provider": settings.cluster, "exists": False},
        "kubeconfig": str(settings.kubeconfig_path),
        "context": settings.kube_context,
        "versions": versions(settings),
        "problems": [],
    }
    try:
        engine = preflight()
        report["docker"] = {"version": engine.version, "host": engine.host or "default"}
    except DockerUnavailable as e:
        report["docker"] = {"error": e.message, "fix": e.hint}
        report["health"] = "docker-unavailable"
        report["problems"].append(e.message)
        return report
    info = cluster_from_docker(settings)
    if info is None:
        report["health"] = "absent"
        return report
    report["cluster"].update(
        exists=True,
        owned=info.owned,
        running=info.running,
        servers=f"{info.servers_running}/{info.servers_count}",
        agents=f"{info.agents_running}/{info.agents_count}",
        apiPort=info.api_port,
    )
    if not info.owned:
        report["health"] = "foreign"
        report["problems"].append(_foreign(settings).message)
        return report
    if not info.running:
        report["health"] = "stopped"
        flag = (
            ""
            if settings.cluster == settings_mod.DEFAULT_CLUSTER_PROVIDER
            else f" --cluster {settings.cluster}"
        )
        report["problems"].append(f"the cluster is stopped; `sandbox up{flag}` starts it")
        return report
    kubectl = _kubectl_for_status(settings)
    if kubectl is None:
        report["health"] = "degraded"
        report["problems"].append("no private kubeconfig or kubectl; `sandbox up` repairs it")
        return report
    try:
        nodes = kubectl.get_json("nodes") or {}
        node_list = []
        for n in nodes.get("items") or []:
            conds = {
                c.get("type"): c.get("status")
                for c in (n.get("status") or {}).get("conditions") or []
            }
            node_list.append(
                {
                    "name": n.get("metadata", {}).get("name"),
                    "ready": conds.get("Ready") == "True",
                    "kubelet": (n.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion"),
                }
            )
        report["nodes"] = node_list
        controller = EnvoyGateway(
            settings.envoy_gateway_version, gateway_class=settings.gateway_class
        )
        report.update(controller.status(kubectl))
    except SandboxError as e:
        report["health"] = "degraded"
        report["problems"].append(e.message.splitlines()[0])
        return report
    if not node_list or not all(n["ready"] for n in node_list):
        report["problems"].append("not every node is Ready")
    if not report["controller"]["available"]:
        report["problems"].append("Envoy Gateway is not Available; `sandbox up` repairs it")
    if not report["gatewayClass"]["accepted"]:
        report["problems"].append(f"GatewayClass {settings.gateway_class} is not Accepted")
    report["health"] = "ok" if not report["problems"] else "degraded"
    return report


DOWNLOAD_PROBE_TIMEOUT = 5.0
