"""Envoy Gateway: install the pinned release ``install.yaml`` and the reference GatewayClass.

Facts (envoyproxy/gateway at tag v1.9.0):

- ``install.yaml`` is ``helm template`` of charts/gateway-crds-helm (Gateway API v1.6.1
  experimental CRDs + Envoy Gateway CRDs) followed by charts/gateway-helm in namespace
  ``envoy-gateway-system`` (tools/make/kube.mk ``generate-manifests``); the controller is
  ``deployment/envoy-gateway`` (charts/gateway-helm/templates/envoy-gateway-deployment.yaml).
  It is applied server-side with ``--force-conflicts`` (its CRDs exceed the 256 KiB
  last-applied annotation of client-side apply).
- EnvoyProxy ``spec.provider.type: Kubernetes`` and ``spec.provider.kubernetes.envoyService.type``
  in ``ClusterIP|LoadBalancer|NodePort`` (api/v1alpha1/envoyproxy_types.go, shared_types.go).
  ClusterIP: k3s's ServiceLB binds each LoadBalancer port once per node, so a second Gateway on
  :80 would never get an address (Envoy Gateway issue #1654); port-forward reaches a ClusterIP.
- Data-plane Services carry ``gateway.envoyproxy.io/owning-gateway-name`` and
  ``gateway.envoyproxy.io/owning-gateway-namespace`` (internal/gatewayapi/translator.go) and
  live in the controller namespace by default.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from sandbox import settings as settings_mod
from sandbox.errors import ClusterError, ToolError, WaitTimeout
from sandbox.infra.controllers import DataPlaneService, Progress
from sandbox.infra.kube import Kubectl, describe_stuck_pods, image_hint, summarize_status
from sandbox.infra.providers.kubeconfig import write_private
from sandbox.settings import INSTALL_ENV

log = logging.getLogger(__name__)

DEPLOYMENT = "envoy-gateway"
OWNING_GATEWAY_NAME = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_GATEWAY_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"
SHUTDOWN = {"drainTimeout": "5s", "minDrainDuration": "1s"}  # EnvoyProxy spec.shutdown
# Envoy Gateway v1.9.0 gives both containers of each data-plane pod (envoy, shutdown-manager) a
# startupProbe with periodSeconds 10 (internal/infrastructure/kubernetes/proxy/resource.go
# expectedProxyContainers): Envoy is up within a second, but the kubelet asks again only ten
# seconds after its first, too early, probe, so every Gateway waited ~11 s to be Programmed.
# Probing every second with ten times the failures keeps the same 300 s budget.
FAST_PROBES = {
    "startupProbe": {"periodSeconds": 1, "failureThreshold": 300},
    "readinessProbe": {"periodSeconds": 1},
}
DEPLOYMENT_PATCH = {
    "type": "StrategicMerge",
    "value": {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "envoy", **FAST_PROBES},
                        {
                            "name": "shutdown-manager",
                            "startupProbe": dict(FAST_PROBES["startupProbe"]),
                        },
                    ]
                }
            }
        }
    },
}
# CRDs the sandbox itself relies on; every CRD in install.yaml is waited for at install.
KEY_CRDS = (
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "envoyproxies.gateway.envoyproxy.io",
)


def _condition(obj: dict[str, Any] | None, type_: str) -> str | None:
    if not obj:
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return str(c.get("status"))
    return None


class EnvoyGateway:
    """Envoy Gateway ``version`` with the reference GatewayClass ``gateway_class``."""

    name = "envoy-gateway"
    deployment = DEPLOYMENT

    def __init__(
        self,
        version: str = settings_mod.ENVOY_GATEWAY_VERSION,
        *,
        gateway_class: str = settings_mod.DEFAULT_GATEWAY_CLASS,
        namespace: str = settings_mod.ENVOY_GATEWAY_NAMESPACE,
        proxy_name: str = settings_mod.ENVOY_PROXY_NAME,
    ) -> None:
        self.version = version
        self.gateway_class = gateway_class
        self.namespace = namespace
        self.proxy_name = proxy_name
        self.controller_name = settings_mod.ENVOY_GATEWAY_CONTROLLER_NAME

    # -- install.yaml -----------------------------------------------------------------------

    @property
    def install_url(self) -> str:
        return settings_mod.ENVOY_GATEWAY_INSTALL_URL.format(version=self.version)

    @property
    def cached_install_yaml(self) -> Path:
        return (
            settings_mod.cache_dir() / "manifests" / "envoy-gateway" / self.version / "install.yaml"
        )

    def install_yaml_at_hand(self) -> bool:
        """Whether :meth:`install_yaml` would need no download."""
        override = os.environ.get(INSTALL_ENV)
        if override:
            return Path(override).is_file()
        cached = self.cached_install_yaml
        return cached.is_file() and cached.stat().st_size > 0

    def install_yaml(self, *, progress: Progress | None = None) -> Path:
        """The pinned install.yaml: ``$SANDBOX_ENVOY_GATEWAY_INSTALL_YAML``, else the cached
        copy, else downloaded (and cached) from the release."""
        override = os.environ.get(INSTALL_ENV)
        if override:
            path = Path(override)
            if not path.is_file():
                raise ToolError(f"{INSTALL_ENV}={override}: no such file")
            return path
        cached = self.cached_install_yaml
        if cached.is_file() and cached.stat().st_size > 0:
            return cached
        if progress:
            progress(f"downloading {self.install_url}")
        text = self._download(self.install_url)
        self._check_install_yaml(text, self.install_url)
        write_private(cached, text)
        cached.chmod(0o644)
        return cached

    @staticmethod
    def _download(url: str) -> str:
        last = ""
        for attempt in range(3):
            if attempt:
                time.sleep(attempt)
            try:
                r = requests.get(url, timeout=60, allow_redirects=True)
            except requests.RequestException as e:
                last = str(e)
                continue
            if r.status_code == 200:
                return r.text
            last = f"HTTP {r.status_code}"
            if r.status_code < 500 and r.status_code not in (408, 429):
                break
        raise ToolError(
            f"cannot download {url}: {last}",
            hint=f"check the network, or point {INSTALL_ENV} at a downloaded copy",
        )

    def _check_install_yaml(self, text: str, source: str) -> list[dict[str, Any]]:
        try:
            # install.yaml is megabytes of CRDs: libyaml's loader reads it ~15x faster
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = [d for d in yaml.load_all(text, Loader=loader) if isinstance(d, dict)]
        except yaml.YAMLError as e:
            raise ToolError(f"{source} is not YAML: {e}") from e
        if not any(
            d.get("kind") == "Deployment" and (d.get("metadata") or {}).get("name") == DEPLOYMENT
            for d in docs
        ):
            raise ToolError(
                f"{source} has no Deployment {DEPLOYMENT}: not an Envoy Gateway install.yaml"
            )
        return docs

    def crd_names(self, path: Path) -> list[str]:
        docs = self._check_install_yaml(path.read_text(), str(path))
        return [
            str(d["metadata"]["name"])
            for d in docs
            if d.get("kind") == "CustomResourceDefinition" and (d.get("metadata") or {}).get("name")
        ]

    # -- controller -------------------------------------------------------------------------

    def installed(self, kubectl: Kubectl) -> bool:
        deployment = kubectl.get_json("deployment", DEPLOYMENT, namespace=self.namespace)
        if deployment is None or _deployment_problem(deployment) is not None:
            return False  # a controller scaled to 0 is Available too: `up` re-applies
        containers = (
            deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        )
        images = [str(c.get("image", "")) for c in containers if isinstance(c, dict)]
        if not any(i.endswith(f":{self.version}") for i in images):
            return False
        # one call: `kubectl get crd A B C -o name` exits 1 when any of them is missing
        found = kubectl.run(["get", "crd", *KEY_CRDS, "-o", "name"], check=False)
        return found.exit_code == 0

    def install(
        self, kubectl: Kubectl, *, timeout: float, progress: Progress | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        path = self.install_yaml(progress=progress)
        crds = self.crd_names(path) or list(KEY_CRDS)
        if progress:
            progress(f"applying {path.name} (server-side)")
        kubectl.apply(
            [path], server_side=True, force_conflicts=True, timeout=max(60.0, timeout / 2)
        )
        kubectl.wait(
            [f"crd/{n}" for n in crds],
            "condition=Established",
            timeout=max(1.0, deadline - time.monotonic()),
            what=f"{len(crds)} CRDs of Envoy Gateway {self.version} Established",
        )
        if progress:
            progress(f"waiting for deployment/{DEPLOYMENT} Available")
        self.wait_available(kubectl, timeout=max(1.0, deadline - time.monotonic()))

    def wait_available(self, kubectl: Kubectl, *, timeout: float, poll: float = 1.0) -> None:
        """Poll until ``deployment/envoy-gateway`` is Available. A pod of the controller's
        namespace that cannot start (image pull, crash loop, unschedulable: its certgen Job
        included) fails the wait at once, naming the pod, its reason and its last events."""
        deadline = time.monotonic() + timeout
        what = f"deployment/{DEPLOYMENT} Available in {self.namespace}"
        while True:
            deployment = kubectl.get_json("deployment", DEPLOYMENT, namespace=self.namespace)
            if _condition(deployment, "Available") == "True":
                return
            stuck = describe_stuck_pods(kubectl, self.namespace)
            if stuck:
                raise ClusterError(
                    f"Envoy Gateway {self.version} cannot start:\n"
                    + "\n".join(f"  {s}" for s in stuck),
                    hint=image_hint(stuck),
                )
            if time.monotonic() >= deadline:
                pods = kubectl.get_json("pods", namespace=self.namespace)
                raise WaitTimeout(
                    what,
                    round(timeout, 1),
                    f"{summarize_status(deployment)}; {summarize_status(pods)}",
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    # -- GatewayClass -----------------------------------------------------------------------

    def envoy_proxy(self) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": {"name": self.proxy_name, "namespace": self.namespace},
            "spec": {
                "provider": {
                    "type": "Kubernetes",
                    "kubernetes": {
                        "envoyService": {"type": "ClusterIP"},
                        # see FAST_PROBES: a Gateway is Programmed in ~2 s instead of ~11 s
                        "envoyDeployment": {"patch": DEPLOYMENT_PATCH},
                    },
                },
                # each scenario's Gateway gets its own data plane, deleted with the scenario:
                # drain for seconds, not the default 60 s (EG's own test EnvoyProxy does the
                # same: test/config/gatewayclass.yaml), so terminating pods do not pile up
                "shutdown": dict(SHUTDOWN),
            },
        }

    def gateway_class_object(self) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": self.gateway_class},
            "spec": {
                "controllerName": self.controller_name,
                "parametersRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "EnvoyProxy",
                    "name": self.proxy_name,
                    "namespace": self.namespace,
                },
            },
        }

    def gateway_class_ready(self, kubectl: Kubectl) -> bool:
        gc = kubectl.get_json("gatewayclass", self.gateway_class)
        if gc is None or _condition(gc, "Accepted") != "True":
            return False
        spec = gc.get("spec") or {}
        ref = spec.get("parametersRef") or {}
        if spec.get("controllerName") != self.controller_name or ref.get("name") != self.proxy_name:
            return False
        proxy = kubectl.get_json("envoyproxy", self.proxy_name, namespace=self.namespace)
        if proxy is None:
            return False
        spec = proxy.get("spec") or {}
        deployment = ((spec.get("provider") or {}).get("kubernetes") or {}).get(
            "envoyDeployment"
        ) or {}
        return spec.get("shutdown") == SHUTDOWN and deployment.get("patch") == DEPLOYMENT_PATCH

    def ensure_gateway_class(self, kubectl: Kubectl, *, timeout: float) -> None:
        # EnvoyProxy first in the stream (server-side apply goes in order): a parametersRef to a
        # missing object would make the class Accepted=False until the next reconcile
        kubectl.apply([self.envoy_proxy(), self.gateway_class_object()], force_conflicts=True)
        kubectl.wait(
            f"gatewayclass/{self.gateway_class}",
            "condition=Accepted",
            timeout=timeout,
            what=f"GatewayClass {self.gateway_class} Accepted by {self.controller_name}",
        )

    # -- data plane -------------------------------------------------------------------------

    def data_plane_selector(self, gateway_namespace: str, gateway_name: str) -> str:
        return (
            f"{OWNING_GATEWAY_NAME}={gateway_name},{OWNING_GATEWAY_NAMESPACE}={gateway_namespace}"
        )

    def data_plane_service(
        self, kubectl: Kubectl, gateway_namespace: str, gateway_name: str
    ) -> DataPlaneService | None:
        selector = self.data_plane_selector(gateway_namespace, gateway_name)
        found = kubectl.get_json("service", namespace=self.namespace, selector=selector) or {}
        items = [i for i in found.get("items") or [] if isinstance(i, dict)]
        if not items:
            return None
        svc = sorted(items, key=lambda i: str(i.get("metadata", {}).get("name")))[0]
        ports = tuple(
            int(p["port"]) for p in (svc.get("spec") or {}).get("ports") or [] if "port" in p
        )
        meta = svc.get("metadata") or {}
        return DataPlaneService(
            str(meta.get("namespace", self.namespace)), str(meta["name"]), ports
        )

    def wait_data_plane_service(
        self, kubectl: Kubectl, gateway_namespace: str, gateway_name: str, *, timeout: float
    ) -> DataPlaneService:
        deadline = time.monotonic() + timeout
        while True:
            svc = self.data_plane_service(kubectl, gateway_namespace, gateway_name)
            if svc is not None:
                return svc
            if time.monotonic() >= deadline:
                gw = kubectl.get_json("gateway", gateway_name, namespace=gateway_namespace)
                raise WaitTimeout(
                    f"the data-plane Service of Gateway {gateway_namespace}/{gateway_name} "
                    f"in {self.namespace}",
                    timeout,
                    summarize_status(gw),
                    hint=f"kubectl logs -n {self.namespace} deployment/{DEPLOYMENT}",
                )
            time.sleep(0.5)

    def data_plane_log(
        self, kubectl: Kubectl, gateway_namespace: str, gateway_name: str, tail: int = 500
    ) -> str:
        """The last lines of the envoy container's log of a Gateway's data-plane pods: Envoy
        Gateway's default access log, one JSON object per request
        (internal/xds/translator/accesslog.go DefaultAccessLogFormat: ``method``,
        ``x-envoy-origin-path``, ``:authority``, ``response_code``, ``route_name``, ...)."""
        selector = self.data_plane_selector(gateway_namespace, gateway_name)
        try:
            return kubectl.logs(
                "",
                namespace=self.namespace,
                selector=selector,
                container="envoy",
                tail=tail,
                timeout=20,
            )
        except ToolError as e:
            log.info("no data-plane log: %s", e)
            return ""

    def served_route(
        self,
        kubectl: Kubectl,
        gateway_namespace: str,
        gateway_name: str,
        *,
        user_agent: str,
        timeout: float = 5.0,
    ) -> str | None:
        """The route Envoy chose for the request sent with this (unique) User-Agent, from the
        data plane's access log: ``kind ns/name rule I``; "" for no route; None when the line
        did not show up within ``timeout`` (Envoy flushes its access log every second or so)."""
        deadline = time.monotonic() + timeout
        while True:
            route = route_from_access_log(
                self.data_plane_log(kubectl, gateway_namespace, gateway_name), user_agent=user_agent
            )
            if route is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if not route:
            return route
        parsed = parse_route_name(route)
        if parsed is None:
            return route
        kind, ns, name, rule, _match = parsed
        return f"{kind} {ns}/{name} rule {rule}"

    def controller_problem(self, kubectl: Kubectl) -> str | None:
        """Why no controller answers the Gateway API objects now (its Deployment gone, scaled
        to 0, or without an available pod), or None when it runs."""
        deployment = kubectl.get_json("deployment", DEPLOYMENT, namespace=self.namespace)
        what = f"the Envoy Gateway controller (deployment/{DEPLOYMENT} in {self.namespace})"
        if deployment is None:
            return f"{what} does not exist"
        problem = _deployment_problem(deployment)
        return None if problem is None else f"{what} {problem}"

    def controller_logs_tail(self, kubectl: Kubectl, lines: int = 50) -> str:
        try:
            return kubectl.logs(
                f"deployment/{DEPLOYMENT}", namespace=self.namespace, tail=lines, timeout=20
            )
        except ToolError as e:
            log.info("no controller logs: %s", e)
            return ""

    def status(self, kubectl: Kubectl) -> dict[str, Any]:
        """For ``sandbox status``: controller and GatewayClass health, as data."""
        deployment = kubectl.get_json("deployment", DEPLOYMENT, namespace=self.namespace)
        gc = kubectl.get_json("gatewayclass", self.gateway_class)
        image = None
        if deployment:
            containers = (
                deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            )
            image = next((c.get("image") for c in containers if isinstance(c, dict)), None)
        problem = "missing" if deployment is None else _deployment_problem(deployment)
        return {
            "controller": {
                "name": self.name,
                "version": self.version,
                "namespace": self.namespace,
                "image": image,
                "available": problem is None,
                "status": summarize_status(deployment) + (f" ({problem})" if problem else ""),
            },
            "gatewayClass": {
                "name": self.gateway_class,
                "accepted": _condition(gc, "Accepted") == "True",
                "status": summarize_status(gc),
            },
        }


def _deployment_problem(deployment: dict[str, Any]) -> str | None:
    """What keeps a Deployment from serving: ``spec.replicas: 0`` (Kubernetes then reports it
    Available, a minimum of 0 being met), no available replica, or Available not True."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    replicas = spec.get("replicas", 1)
    if replicas == 0:
        return "is scaled to 0 replicas"
    available = int(status.get("availableReplicas") or 0)
    if available == 0:
        return f"has 0 of {replicas} replicas available"
    if _condition(deployment, "Available") != "True":
        return f"is not Available ({summarize_status(deployment)})"
    return None


def parse_route_name(name: str) -> tuple[str, str, str, int, int] | None:
    """An xDS route name of Envoy Gateway, ``httproute/NS/NAME/rule/I/match/J/HOSTNAME``
    (internal/gatewayapi/helpers.go irRouteName: ``<kind>/<ns>/<name>/rule/<i>/match/<j>``,
    then the virtual host's name), as (kind, namespace, name, rule, match); None otherwise."""
    parts = name.split("/")
    if len(parts) < 7 or parts[3] != "rule" or parts[5] != "match":
        return None
    try:
        return parts[0], parts[1], parts[2], int(parts[4]), int(parts[6])
    except ValueError:
        return None


def route_from_access_log(text: str, *, user_agent: str) -> str | None:
    """The ``route_name`` of the newest access-log line of a request sent with ``user_agent``,
    "" when Envoy found no route (``-``), None when no line matches."""
    import json

    found: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("user-agent") == user_agent:
            route = str(entry.get("route_name") or "")
            found = "" if route in ("", "-") else route
    return found
