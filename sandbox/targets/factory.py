"""The target a run's options name, built the same way for ``sandbox run``, ``sandbox compare``
and the pytest plugin.

``--address HOST:PORT`` is a gateway someone already runs (``AddressTarget``); otherwise the
provider: ``local`` (the reference gateway on loopback), ``k3d`` or ``kind`` (the sandbox's own
stack, brought up first when it is not ready, the scenarios' images loaded with it) or
``existing`` (a context of the user's kubeconfig, never changed). The shells say how progress
reaches the user: ``reporter`` for the stack's phases, ``progress`` for the cluster target's
lines, ``warn`` for the local target's warnings; by default nothing is shown.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from sandbox.errors import DockerUnavailable, InputError
from sandbox.infra import images, stack, tools
from sandbox.infra.controllers.envoy_gateway import EnvoyGateway
from sandbox.infra.kube import APIServerUnreachable, Kubectl
from sandbox.infra.progress import Reporter
from sandbox.scenario.model import Scenario
from sandbox.settings import CLUSTER_PROVIDERS, Settings, choose_provider
from sandbox.targets import Target
from sandbox.targets.address import AddressTarget, parse_address
from sandbox.targets.cluster import ClusterTarget
from sandbox.targets.local.target import LocalTarget

Lines = Callable[[str], None]


def _silent(_line: str) -> None:
    pass


def sandbox_api_hint(provider: str = "k3d") -> str:
    """What to do when the API server of the sandbox's own cluster cannot be reached."""
    flag = "" if provider == "k3d" else f" --cluster {provider}"
    return (
        f"the sandbox's cluster: `sandbox up{flag}` starts it (`sandbox status{flag}` shows "
        f"its state); if it stays unreachable, `sandbox down{flag}` then `sandbox up{flag}` "
        "recreates it"
    )


def make_target(
    *,
    address: str | None = None,
    provider: str | None = None,
    gateway_class: str | None = None,
    context: str | None = None,
    keep: bool = False,
    cluster: str | None = None,
    scenarios: Sequence[Scenario] = (),
    reporter: Reporter | None = None,
    progress: Lines = _silent,
    warn: Lines = _silent,
) -> Target:
    """The target of these options (see the module docstring); raises ``InputError`` for
    options that do not go together, and what bringing the stack up raises."""
    if address:
        if provider:
            raise InputError(
                "--address runs the checks against a gateway already listening; "
                "it cannot be combined with --provider",
                field="--address",
            )
        return AddressTarget(parse_address(address))
    provider = choose_provider(provider, cluster)
    if provider == "local":
        if context:
            raise InputError("--context is for --provider existing", field="--context")
        return LocalTarget(warn=warn)
    if provider in CLUSTER_PROVIDERS:
        if context:
            raise InputError(
                "--context names a cluster of --provider existing",
                field="--context",
                hint="add --provider existing",
            )
        return _sandbox_cluster(
            provider, gateway_class, keep, scenarios, reporter or Reporter(), progress
        )
    return _existing_cluster(context, gateway_class, keep, progress)


def _sandbox_cluster(
    provider: str,
    gateway_class: str | None,
    keep: bool,
    scenarios: Sequence[Scenario],
    reporter: Reporter,
    progress: Lines,
) -> ClusterTarget:
    """The sandbox's own k3d or kind stack, brought up if needed; the scenarios' images are
    loaded from the Docker engine with the stack's."""
    settings = dataclasses.replace(Settings(), cluster=provider)
    try:
        st = stack.ensure_up(
            settings, reporter, extra_images=images.scenario_needs(list(scenarios))
        )
    except DockerUnavailable as e:
        # the scenario's checks can still run, against the reference gateway
        raise DockerUnavailable(
            e.message,
            hint=f"{e.hint}; or, without Docker: add --provider local "
            "(the reference gateway on loopback)",
        ) from None
    except APIServerUnreachable as e:
        e.hint = sandbox_api_hint(provider)
        raise
    st.kubectl.unreachable_hint = sandbox_api_hint(provider)
    return ClusterTarget(
        st.kubectl,
        st.controller,
        gateway_class or st.gateway_class,
        keep=keep,
        name=provider,
        progress=progress,
        defer_cleanup_wait=True,
    )


def _existing_cluster(
    context: str | None, gateway_class: str | None, keep: bool, progress: Lines
) -> ClusterTarget:
    """A context of the user's kubeconfig, never changed by us."""
    if not context:
        raise InputError(
            "--provider existing needs --context NAME",
            field="--context",
            hint="kubectl config get-contexts lists them",
        )
    settings = Settings()
    kubeconfig = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or str(
        Path.home() / ".kube" / "config"
    )
    # your cluster, your kubectl: the one on PATH when there is one, else the pinned download
    kubectl_path = shutil.which("kubectl") or str(
        tools.ensure_tool("kubectl", settings.kubectl_version).path
    )
    cls = gateway_class or settings.gateway_class
    hint = (
        f"check that the cluster of context {context} is running and reachable: "
        f"`kubectl --context {context} cluster-info`"
    )
    return ClusterTarget(
        Kubectl(kubectl_path, kubeconfig, context, unreachable_hint=hint),
        EnvoyGateway(settings.envoy_gateway_version, gateway_class=cls),
        cls,
        keep=keep,
        name="existing",
        progress=progress,
        defer_cleanup_wait=True,
    )
