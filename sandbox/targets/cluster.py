"""The ``cluster`` target: a scenario applied into a fresh namespace of a real cluster.

``ClusterTarget(kubectl, controller, gateway_class).deploy(scenario)``:

1. picks the run namespace ``sbx-<scenario>-<random>`` and maps the scenario's logical
   namespaces onto it (:mod:`sandbox.infra.namespaces`);
2. creates the namespaces, generates a self-signed certificate Secret for each ``tls:`` entry
   (:mod:`sandbox.infra.certs`), and server-side applies the rewritten manifests in kind order;
3. waits, bounded and polling ``kubectl get -o json``, until every Gateway is ``Programmed``,
   every route's ``status.parents[]`` entry written by the controller for each of its
   ``parentRefs`` says ``Accepted`` and ``ResolvedRefs`` True (at the object's current
   generation), and every Deployment is ``Available``. parentRefs to anything but a Gateway
   of the run get no status and are not waited for. On timeout the
   :class:`~sandbox.errors.WaitTimeout` lists what was not ready with its last conditions
   (type=status (reason: message)), the pods of namespaces whose Deployments are not Available,
   and the controller's last log lines (``SANDBOX_CLUSTER_<NAME>_TIMEOUT`` overrides each
   timeout, see :class:`Timeouts`);
4. yields a :class:`ClusterDeployment`: ``address(gateway, port)`` finds the Gateway's data-plane
   Service through the controller and port-forwards to it on demand (restarted when kubectl
   drops it, on the same local port); ``diagnostics()`` gives current conditions, pods and the
   controller's log tail; requests refused at a port-forward's local port are retried while its
   kubectl restarts, and end the run (exit 3, ``unreachable()``) once it has given up;
5. on exit, also after a failure or Ctrl-C, stops the port-forwards and, unless ``keep``, deletes
   the namespaces (the namespace controller starts on them only ``NAMESPACE_DELETION_GRACE``
   seconds later), then what it applied in reverse kind order, and waits (bounded; watching the
   namespaces with ``kubectl wait --for=delete``) until the namespaces and the Gateways'
   data-plane Services are gone. A cleanup that fails raises (a failed cleanup never exits 0);
   when the body already failed, that error wins and the cleanup failure is logged.

Negative scenarios (a route meant to be refused, a backendRef meant not to resolve): once
everything else is ready, a route whose status for its current generation is written but not
Accepted/ResolvedRefs True, and that stays unchanged for ``Timeouts.settle`` seconds, is taken
as it is (a progress line says so) and the checks decide. Routes named in the scenario's
optional ``unaccepted_routes`` (``name`` or ``namespace/name``, logical; validated by
``sandbox check`` against the scenario's routes) skip even that: they are ready as soon as the
controller has written ``Accepted``, whatever it says.

Status written by Envoy Gateway (envoyproxy/gateway internal/gatewayapi/status/gateway.go,
internal/gatewayapi/route.go): Gateway ``Programmed`` True reason ``Programmed`` ("Address
assigned to the Gateway, %d/%d envoy replicas available"), or False with reason
``AddressNotAssigned`` ("No addresses have been assigned to the Gateway") or ``NoResources``
("Envoy replicas unavailable"); route parents with ``controllerName``
``gateway.envoyproxy.io/gatewayclass-controller``, ``Accepted`` True reason ``Accepted``
("Route is accepted") and ``ResolvedRefs`` True reason ``ResolvedRefs`` ("Resolved all the Object
references for the Route").

Long on purpose: one deployment's life (namespaces, apply, readiness, port-forward, diagnostics,
cleanup) is one state machine; its steps share the namespace map and the timeouts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ClusterError, InputError, SandboxError, TargetUnreachable, WaitTimeout
from sandbox.infra import certs
from sandbox.infra.controllers import Controller, DataPlaneService
from sandbox.infra.kube import (
    APIServerUnreachable,
    Kubectl,
    KubectlError,
    describe_stuck_pods,
    image_hint,
    summarize_status,
    unschedulable,
)
from sandbox.infra.namespaces import (
    ROUTE_KINDS,
    RUN_LABEL,
    NamespaceMap,
    apply_order,
    delete_order,
    is_namespaced,
    logical_namespaces,
    namespace_objects,
    rewrite_objects,
    run_namespace,
)
from sandbox.infra.portforward import PortForward
from sandbox.probe.types import Address, Refusals
from sandbox.reference.verify import build_model, unattached_lines
from sandbox.scenario.model import Scenario

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

GATEWAY_GROUP = "gateway.networking.k8s.io"
# Fully qualified resource names, so another project's "gateways" (e.g. networking.istio.io) is
# never picked by a short name.
RESOURCE = {
    "Gateway": "gateways.gateway.networking.k8s.io",
    "HTTPRoute": "httproutes.gateway.networking.k8s.io",
    "GRPCRoute": "grpcroutes.gateway.networking.k8s.io",
    "TLSRoute": "tlsroutes.gateway.networking.k8s.io",
    "TCPRoute": "tcproutes.gateway.networking.k8s.io",
    "UDPRoute": "udproutes.gateway.networking.k8s.io",
    "Deployment": "deployments.apps",
}
LOG_TAIL = 30
STUCK_LOOK_INTERVAL = 2.0  # seconds between two looks for pods that cannot start
# kube-controller-manager's namespace controller takes up a deleted namespace only this long
# after the deletion (kubernetes pkg/controller/namespace/namespace_controller.go
# namespaceDeletionGracePeriod = 5 * time.Second, "to allow HA api servers to observe namespace
# deletion"), so a run's namespaces are gone at the earliest that long after they were deleted
NAMESPACE_DELETION_GRACE = 5.0
INVALID_MARKERS = (
    "(Invalid)",
    "(BadRequest)",
    "is invalid",
    "error validating",
    "strict decoding error",
    "unknown field",
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds for each bounded wait of a cluster run."""

    apply: float = 120.0
    ready: float = 180.0  # Gateways Programmed, routes Accepted, Deployments Available
    data_plane: float = 60.0  # the Gateway's data-plane Service to exist
    port_forward: float = 30.0  # kubectl port-forward to print its Forwarding line
    delete: float = 180.0  # namespaces and data-plane Services gone
    # a route the controller has answered with Accepted/ResolvedRefs False (a negative scenario,
    # or a broken one) is taken as it is once its status stayed the same this long; the checks
    # then show what traffic does and the diagnostics show the conditions
    settle: float = 5.0
    poll: float = 0.5  # between two looks at the cluster

    @classmethod
    def from_env(cls) -> Timeouts:
        """Defaults, each overridable by ``SANDBOX_CLUSTER_<NAME>_TIMEOUT`` (seconds)."""
        values: dict[str, float] = {}
        for name in ("apply", "ready", "data_plane", "port_forward", "delete", "settle"):
            var = f"SANDBOX_CLUSTER_{name.upper()}_TIMEOUT"
            text = os.environ.get(var)
            if text:
                try:
                    values[name] = float(text)
                except ValueError:
                    raise InputError(f"{var}={text!r} is not a number of seconds") from None
        return cls(**values)


def _conditions(obj: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    status = (obj or {}).get("status") or {}
    return [c for c in status.get("conditions") or [] if isinstance(c, dict)]


def _cond(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def _fmt(c: Mapping[str, Any]) -> str:
    text = f"{c.get('type')}={c.get('status')}"
    reason, message = c.get("reason"), c.get("message")
    if reason or message:
        text += f" ({reason or ''}{': ' if reason and message else ''}{message or ''})"
    return text


def _current(obj: Mapping[str, Any], c: Mapping[str, Any]) -> bool:
    """The condition was written for the object's current generation (when both are known)."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = c.get("observedGeneration")
    return generation is None or observed is None or int(observed) >= int(generation)


def _true(obj: Mapping[str, Any], conditions: list[dict[str, Any]], type_: str) -> bool:
    c = _cond(conditions, type_)
    return c is not None and c.get("status") == "True" and _current(obj, c)


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name", ""))


@dataclass
class _Deleting:
    """A run's deletion, issued and not yet seen through."""

    run: str  # the run namespace, for messages
    namespaces: list[str]
    gateways: list[tuple[str, str]]
    cluster_scoped: list[dict[str, Any]]
    deadline: float


@dataclass
class _Item:
    """One object the run waits for."""

    kind: str
    namespace: str  # real
    name: str
    label: str  # for people: kind logical-ns/name
    spec_obj: dict[str, Any]  # as applied
    negative: bool = False  # a route listed under unaccepted_routes


def gateway_state(obj: Mapping[str, Any]) -> tuple[bool, str]:
    conds = _conditions(obj)
    ready = _true(obj, conds, "Programmed")
    parts = [_fmt(c) for c in conds] or ["no conditions yet"]
    for listener in (obj.get("status") or {}).get("listeners") or []:
        bad = [_fmt(c) for c in listener.get("conditions") or [] if c.get("status") != "True"]
        if bad:
            parts.append(f"listener {listener.get('name')}: " + ", ".join(bad))
    return ready, "; ".join(parts)


def _ref_matches(status_ref: Mapping[str, Any], spec_ref: Mapping[str, Any], route_ns: str) -> bool:
    for field, default in (
        ("name", None),
        ("namespace", route_ns),
        ("kind", "Gateway"),
        ("group", GATEWAY_GROUP),
        ("sectionName", None),
        ("port", None),
    ):
        if (status_ref.get(field) or default) != (spec_ref.get(field) or default):
            return False
    return True


def _considered_refs(
    obj: Mapping[str, Any], gateways: Collection[tuple[str, str]] | None
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(parentRefs to wait for, parentRefs no controller of this run will answer).

    With ``gateways`` (real namespace, name) known, a parentRef to anything else (a Gateway that
    does not exist, of another class, or another kind) gets no status from the run's controller.
    """
    route_ns = str((obj.get("metadata") or {}).get("namespace", ""))
    refs: list[Mapping[str, Any]] = [
        r for r in ((obj.get("spec") or {}).get("parentRefs")) or [] if isinstance(r, dict)
    ]
    if gateways is None:
        return refs, []
    mine: list[Mapping[str, Any]] = []
    others: list[Mapping[str, Any]] = []
    for ref in refs:
        is_gateway = (ref.get("kind") or "Gateway") == "Gateway" and (
            ref.get("group") or GATEWAY_GROUP
        ) == GATEWAY_GROUP
        key = (str(ref.get("namespace") or route_ns), str(ref.get("name")))
        (mine if is_gateway and key in gateways else others).append(ref)
    return mine, others


def _parent_entry(
    obj: Mapping[str, Any], ref: Mapping[str, Any], controller_name: str
) -> dict[str, Any] | None:
    route_ns = str((obj.get("metadata") or {}).get("namespace", ""))
    for p in (obj.get("status") or {}).get("parents") or []:
        if (
            isinstance(p, dict)
            and p.get("controllerName") == controller_name
            and _ref_matches(p.get("parentRef") or {}, ref, route_ns)
        ):
            return p
    return None


def route_state(
    obj: Mapping[str, Any],
    controller_name: str,
    *,
    negative: bool = False,
    gateways: Collection[tuple[str, str]] | None = None,
    show_ns: Callable[[str], str] = lambda ns: ns,
) -> tuple[bool, str]:
    """(ready, summary) of a route: every parentRef Accepted and ResolvedRefs by the controller.

    ``negative``: ready as soon as the controller wrote an ``Accepted`` condition, whatever it is.
    ``gateways``: the run's Gateways (real namespace, name); parentRefs to anything else are
    not waited for. ``show_ns`` turns a real namespace into the name shown (the logical one).
    """
    route_ns = str((obj.get("metadata") or {}).get("namespace", ""))
    refs, others = _considered_refs(obj, gateways)
    if not refs and not others:
        return False, "no parentRefs"
    ready = True
    parts = []
    for ref in [*refs, *others]:
        label = (
            f"parent {ref.get('kind', 'Gateway')} "
            f"{show_ns(str(ref.get('namespace') or route_ns))}/{ref.get('name')}"
        )
        if ref.get("sectionName"):
            label += f" section {ref['sectionName']}"
        if ref.get("port"):
            label += f" port {ref['port']}"
        if ref in others:
            parts.append(f"{label}: not a Gateway of this run (no status expected)")
            continue
        entry = _parent_entry(obj, ref, controller_name)
        if entry is None:
            ready = False
            parts.append(f"{label}: no status from {controller_name} yet")
            continue
        conds = [c for c in entry.get("conditions") or [] if isinstance(c, dict)]
        if negative:
            accepted = _cond(conds, "Accepted")
            ok = accepted is not None and _current(obj, accepted)
        else:
            ok = _true(obj, conds, "Accepted") and _true(obj, conds, "ResolvedRefs")
        ready = ready and ok
        parts.append(f"{label}: " + (", ".join(_fmt(c) for c in conds) or "no conditions yet"))
    return ready, "; ".join(parts)


def route_decided(
    obj: Mapping[str, Any],
    controller_name: str,
    *,
    gateways: Collection[tuple[str, str]] | None = None,
) -> bool:
    """The controller has written ``Accepted`` and ``ResolvedRefs`` for the route's current
    generation on every parentRef it answers (whatever their status)."""
    refs, _ = _considered_refs(obj, gateways)
    for ref in refs:
        entry = _parent_entry(obj, ref, controller_name)
        if entry is None:
            return False
        conds = [c for c in entry.get("conditions") or [] if isinstance(c, dict)]
        for type_ in ("Accepted", "ResolvedRefs"):
            c = _cond(conds, type_)
            if c is None or not _current(obj, c):
                return False
    return True


def deployment_state(obj: Mapping[str, Any]) -> tuple[bool, str]:
    conds = _conditions(obj)
    return _true(obj, conds, "Available"), summarize_status(obj).split(": ", 1)[-1]


def pod_summary(pod: Mapping[str, Any]) -> str:
    """``name: Phase, ready r/n, restarts k[, container c: Reason (message)]`` for diagnostics."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    statuses = [c for c in status.get("containerStatuses") or [] if isinstance(c, dict)]
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    text = (
        f"{meta.get('name')}: {status.get('phase', 'Unknown')}, ready {ready}/{len(statuses)}, "
        f"restarts {restarts}"
    )
    for c in statuses:
        for key in ("waiting", "terminated"):
            detail = (c.get("state") or {}).get(key)
            if isinstance(detail, dict) and detail.get("reason") not in (None, "Completed"):
                message = str(detail.get("message") or "").strip().splitlines()
                text += f", container {c.get('name')}: {detail.get('reason')}"
                if message:
                    text += f" ({message[0][:200]})"
    waiting = unschedulable(pod)
    if waiting is not None:
        text += f", Unschedulable ({waiting[:200]})"
    return text


class ClusterDeployment:
    """A scenario applied to the cluster. See the module docstring."""

    host = "127.0.0.1"
    settled = False  # a real gateway converges: its answers change until it has

    def __init__(self, target: ClusterTarget, scenario: Scenario, nsmap: NamespaceMap) -> None:
        self.target = target
        self.scenario = scenario
        self.nsmap = nsmap
        self.namespace = nsmap.run_ns
        self.namespaces: list[dict[str, Any]] = []  # Namespace objects created
        self.objects: list[dict[str, Any]] = []  # everything else applied, in apply order
        self.items: list[_Item] = []
        self._services: dict[tuple[str, str], DataPlaneService] = {}
        self._forwards: dict[tuple[str, str, int], PortForward] = {}
        self._lock = threading.Lock()

    # --- Deployment protocol ---------------------------------------------------------------------

    def namespace_of(self, logical: str) -> str:
        return self.nsmap.real(logical)

    def address(self, gateway: str, port: int) -> Address:
        """A loopback address reaching listener ``port`` of Gateway ``gateway`` (logical name).

        Call it before every request: a dropped port-forward is restarted here.
        """
        ns, name = self._resolve_gateway(gateway)
        with self._lock:
            pf = self._forwards.get((ns, name, port))
            if pf is None:
                svc = self.data_plane_service(ns, name)
                if svc.ports and port not in svc.ports:
                    raise InputError(
                        f"Gateway {gateway} has no listener on port {port}; its data-plane "
                        f"Service {svc.namespace}/{svc.name} has ports "
                        f"{', '.join(map(str, svc.ports))}",
                        file=str(self.scenario.file),
                        field="request.port",
                    )
                t = self.target
                pf = PortForward(
                    t.kubectl.argv([]),
                    f"svc/{svc.name}",
                    port,
                    namespace=svc.namespace,
                    env=t.kubectl.env,
                    ready_timeout=t.timeouts.port_forward,
                    max_restarts=t.max_port_forward_restarts,
                )
                self._forwards[(ns, name, port)] = pf
                t.progress(f"port-forward svc/{svc.name} :{port} -n {svc.namespace}")
                pf.start()
        return Address(self.host, pf.port())

    def unreachable(self, refusals: Refusals) -> TargetUnreachable | None:
        """Requests refused at a port-forward's local port: a kubectl that is restarting is
        waited for (None), one whose supervision gave up ends the run."""
        address, refused, seconds = refusals.address, refusals.count, refusals.seconds
        with self._lock:
            found = [
                (key, pf)
                for key, pf in self._forwards.items()
                if address.host == self.host and pf.last_port == address.port
            ]
        for (ns, name, port), pf in found:
            try:
                pf.port()  # restarts a kubectl found gone; raises once supervision gave up
            except SandboxError as e:
                return TargetUnreachable(
                    f"requests to {address.host}:{address.port}, the port-forward to Gateway "
                    f"{self.nsmap.logical(ns)}/{name} :{port}, were refused ({refused} in a "
                    f"row, {seconds:.1f}s) and its kubectl port-forward gave up: {e}",
                    hint=e.hint,
                )
        return None

    def diagnostics(self) -> str:
        """Current Gateway/route/Deployment conditions, port-forwards, controller log tail."""
        t = self.target
        lines = [
            f"cluster target {t.name}: run namespace {self.namespace} (context {t.kubectl.context})"
        ]
        try:
            states = self.target._states(self)
            for item in self.items:
                ready, summary, _ = states.get(
                    (item.kind, item.namespace, item.name), (False, "?", False)
                )
                lines.append(f"  {item.label}{'' if ready else ' (not ready)'}: {summary}")
        except SandboxError as e:
            lines.append(f"  cannot read status: {e}")
        for line in self.target._pods(
            [n["metadata"]["name"] for n in self.namespaces], list(self._services.values())
        ):
            lines.append(f"  {line}")
        for (ns, name, port), pf in sorted(self._forwards.items()):
            state = "running" if pf.alive() else "not running"
            lines.append(
                f"  port-forward to Gateway {self.nsmap.logical(ns)}/{name} :{port} ({pf.target}) "
                f"{state}, restarts {pf.restarts}"
            )
        lines.extend(f"  {line}" for line in self._unattached())
        tail = ""
        try:
            tail = t.controller.controller_logs_tail(t.kubectl, LOG_TAIL)
        except SandboxError as e:
            tail = f"(cannot read: {e})"
        lines.append(f"controller {t.controller.name} log (last {LOG_TAIL} lines):")
        lines.extend("  " + line for line in (tail.strip() or "(empty)").splitlines())
        return "\n".join(lines)

    # --- helpers ---------------------------------------------------------------------------------

    def _unattached(self) -> list[str]:
        """The reference model's word on routes of the scenario attached to no listener (logical
        names, as written), so a failure says why a route is not attached."""

        try:
            found = unattached_lines(build_model(self.scenario))
        except SandboxError as e:  # the model cannot read the manifests: say so, go on
            return [f"reference model: cannot tell which routes attach ({e})"]
        return [f"not attached (reference model): {line}" for line in found]

    def served_route(self, gateway: str, *, user_agent: str) -> str | None:
        """The route the real data plane of ``gateway`` (logical name) chose for the request
        sent with ``user_agent``, real namespaces mapped back to the scenario's logical ones
        (see ``Controller.served_route``)."""
        ns, name = self._resolve_gateway(gateway)
        route = self.target.controller.served_route(
            self.target.kubectl, ns, name, user_agent=user_agent
        )
        if route:
            kind, _, rest = route.partition(" ")
            real_ns, _, tail = rest.partition("/")
            route = f"{kind} {self.nsmap.logical(real_ns)}/{tail}"
        return route

    def gateways(self) -> list[tuple[str, str]]:
        """(real namespace, name) of every Gateway applied."""
        return [
            (o["metadata"]["namespace"], o["metadata"]["name"])
            for o in self.objects
            if o.get("kind") == "Gateway"
        ]

    def _resolve_gateway(self, gateway: str) -> tuple[str, str]:
        known = self.gateways()
        if "/" in gateway:
            logical_ns, name = gateway.split("/", 1)
            key = (self.nsmap.real(logical_ns), name)
            if key in known:
                return key
        else:
            if (self.namespace, gateway) in known:
                return (self.namespace, gateway)
            named = [k for k in known if k[1] == gateway]
            if len(named) == 1:
                return named[0]
        names = ", ".join(f"{self.nsmap.logical(ns)}/{n}" for ns, n in known) or "none"
        raise InputError(
            f"no Gateway {gateway!r} in scenario {self.scenario.name}; Gateways: {names}",
            file=str(self.scenario.file),
            field="gateway",
        )

    def data_plane_service(self, namespace: str, name: str) -> DataPlaneService:
        key = (namespace, name)
        if key not in self._services:
            t = self.target
            self._services[key] = t.controller.wait_data_plane_service(
                t.kubectl, namespace, name, timeout=t.timeouts.data_plane
            )
        return self._services[key]

    def close(self) -> None:
        """Stop every port-forward."""
        with self._lock:
            forwards, self._forwards = list(self._forwards.values()), {}
        for pf in forwards:
            pf.close()


class ClusterTarget:
    """Deploys scenarios into a cluster that ``kubectl`` reaches and ``controller`` serves.

    :param kubectl: kubectl pinned to the cluster's kubeconfig and context.
    :param controller: the Gateway controller installed there (data-plane lookup, logs).
    :param gateway_class: the GatewayClass every Gateway of a run is given.
    :param keep: leave the namespaces for inspection instead of deleting them.
    :param progress: called with one line per step (to stderr in the CLI).
    :param defer_cleanup_wait: issue each run's deletion at its end but wait for it only in
        :meth:`finish`, so the next scenario does not wait for the last one's pods to stop.
    """

    def __init__(
        self,
        kubectl: Kubectl,
        controller: Controller,
        gateway_class: str,
        *,
        keep: bool = False,
        timeouts: Timeouts | None = None,
        name: str = "k3d",
        progress: Progress | None = None,
        max_port_forward_restarts: int = 5,
        namespace_suffix: str | None = None,
        defer_cleanup_wait: bool = False,
    ) -> None:
        self.deploys = True
        self.kubectl = kubectl
        self.controller = controller
        self.gateway_class = gateway_class
        self.keep = keep
        self.timeouts = timeouts or Timeouts.from_env()
        self.name = name
        self.progress: Progress = progress or (lambda line: log.info("%s", line))
        self.max_port_forward_restarts = max_port_forward_restarts
        self.namespace_suffix = namespace_suffix  # tests: a fixed run namespace
        self.defer_cleanup_wait = defer_cleanup_wait
        self._deleting: list[_Deleting] = []

    # --- deploy ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def deploy(self, scenario: Scenario) -> Iterator[ClusterDeployment]:
        self._check_gateway_class()
        nsmap = NamespaceMap(run_namespace(scenario.name, suffix=self.namespace_suffix))
        dep = ClusterDeployment(self, scenario, nsmap)
        # namespaces of the objects, plus those only the generated TLS Secrets live in
        tls_stubs = [
            {"kind": "Secret", "metadata": {"name": t.secret, "namespace": t.namespace or ""}}
            for t in scenario.tls
        ]
        dep.namespaces = namespace_objects([*scenario.objects, *tls_stubs], nsmap.run_ns)
        for logical in logical_namespaces([*scenario.objects, *tls_stubs]):
            nsmap.real(logical)  # registers the pair for nsmap.logical() in messages
        dep.objects = apply_order(
            self._tls_secrets(scenario, nsmap)
            + rewrite_objects(scenario.objects, nsmap.run_ns, self.gateway_class)
        )
        dep.items = self._items(scenario, dep)
        failed = False
        try:
            self._apply(scenario, dep)
            self._wait_ready(dep)
            yield dep
        except BaseException:
            failed = True
            raise
        finally:
            dep.close()
            self._finish(dep, failed)

    def _check_gateway_class(self) -> None:
        """The class exists, is served by this target's controller, and is Accepted."""
        gc = self.kubectl.get_json(
            "gatewayclasses.gateway.networking.k8s.io",
            self.gateway_class,
            doing=f"looking up GatewayClass {self.gateway_class}",
        )
        if gc is None:
            raise ClusterError(
                f"GatewayClass {self.gateway_class} does not exist in context {self.kubectl.context}",
                hint="run `sandbox up` first, or name an existing class with --gateway-class",
            )
        served_by = (gc.get("spec") or {}).get("controllerName")
        if served_by != self.controller.controller_name:
            raise ClusterError(
                f"GatewayClass {self.gateway_class} is served by {served_by}, not by "
                f"{self.controller.name} ({self.controller.controller_name})",
                hint="name a class of that controller with --gateway-class",
            )
        if not _true(gc, _conditions(gc), "Accepted"):
            raise ClusterError(
                f"GatewayClass {self.gateway_class} is not Accepted: {summarize_status(gc)}",
                hint="`sandbox up` repairs the sandbox's own class",
            )

    def _tls_secrets(self, scenario: Scenario, nsmap: NamespaceMap) -> list[dict[str, Any]]:
        secrets = []
        for entry in scenario.tls:
            cert, key = certs.self_signed(list(entry.hosts))
            secret = certs.tls_secret(
                entry.secret, cert, key, namespace=nsmap.real(entry.namespace)
            )
            secret["metadata"]["labels"] = {RUN_LABEL: nsmap.run_ns}
            secrets.append(secret)
        return secrets

    def _apply(self, scenario: Scenario, dep: ClusterDeployment) -> None:
        names = ", ".join(n["metadata"]["name"] for n in dep.namespaces)
        self.progress(f"creating namespace{'s' if len(dep.namespaces) > 1 else ''} {names}")
        self.kubectl.apply(
            dep.namespaces, timeout=self.timeouts.apply, doing=f"creating namespace {names}"
        )
        self.progress(
            f"applying {len(dep.objects)} objects of scenario {scenario.name} (server-side)"
        )
        try:
            self.kubectl.apply(
                dep.objects,
                timeout=self.timeouts.apply,
                doing=f"applying the objects of scenario {scenario.name}",
            )
        except KubectlError as e:
            stderr = e.result.stderr
            if any(marker in stderr for marker in INVALID_MARKERS):
                raise InputError(
                    f"the cluster rejected the manifests of scenario {scenario.name}:\n"
                    f"{stderr.strip()}",
                    file=str(scenario.file),
                ) from None
            raise

    def _items(self, scenario: Scenario, dep: ClusterDeployment) -> list[_Item]:
        negative = set(scenario.unaccepted_routes)
        items = []
        for obj in dep.objects:
            kind, ns, name = _key(obj)
            if kind not in ("Gateway", "Deployment") and kind not in ROUTE_KINDS:
                continue
            logical_ns = dep.nsmap.logical(ns)
            is_negative = kind in ROUTE_KINDS and (
                name in negative or f"{logical_ns}/{name}" in negative
            )
            items.append(
                _Item(kind, ns, name, f"{kind} {logical_ns}/{name}", obj, negative=is_negative)
            )
        return items

    def _states(
        self, dep: ClusterDeployment, doing: str | None = None
    ) -> dict[tuple[str, str, str], tuple[bool, str, bool]]:
        """(ready, summary, decided) of each item: one ``kubectl get`` per namespace.

        ``decided``: a route whose status for its current generation is written (see
        :func:`route_decided`); always False for the other kinds.
        """
        items = dep.items
        by_ns: dict[str, set[str]] = {}
        for item in items:
            by_ns.setdefault(item.namespace, set()).add(RESOURCE[item.kind])
        seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        for ns, resources in sorted(by_ns.items()):
            found = (
                self.kubectl.get_json(",".join(sorted(resources)), namespace=ns, doing=doing) or {}
            )
            for obj in found.get("items") or []:
                if isinstance(obj, dict):
                    seen[
                        _key({**obj, "metadata": {"namespace": ns, **(obj.get("metadata") or {})}})
                    ] = obj
        gateways = set(dep.gateways())
        controller = self.controller.controller_name
        states: dict[tuple[str, str, str], tuple[bool, str, bool]] = {}
        for item in items:
            key = (item.kind, item.namespace, item.name)
            obj = seen.get(key)
            if obj is None:
                states[key] = (False, "not found", False)
            elif item.kind == "Gateway":
                states[key] = (*gateway_state(obj), False)
            elif item.kind == "Deployment":
                states[key] = (*deployment_state(obj), False)
            else:
                ready, summary = route_state(
                    obj,
                    controller,
                    negative=item.negative,
                    gateways=gateways,
                    show_ns=dep.nsmap.logical,
                )
                states[key] = (ready, summary, route_decided(obj, controller, gateways=gateways))
        return states

    def _pods(
        self,
        namespaces: list[str],
        data_planes: list[DataPlaneService] | None = None,
        gateways: Iterable[tuple[str, str]] = (),
    ) -> list[str]:
        """One line per pod of the run's namespaces, of the given data-plane Services (found
        by the Service's own selector, so nothing controller-specific is assumed) and of the
        data planes of the given ``(namespace, name)`` Gateways (found by the controller's
        selector, as :meth:`_fail_if_stuck` finds them, Service or not). Never raises."""
        lines: list[str] = []
        try:
            for ns in namespaces:
                found = self.kubectl.get_json("pods", namespace=ns) or {}
                for pod in found.get("items") or []:
                    lines.append(f"pod {ns}/{pod_summary(pod)}")
            ns = self.controller.namespace
            for gw_ns, gw_name in gateways:
                owned = self.controller.data_plane_selector(gw_ns, gw_name)
                found = self.kubectl.get_json("pods", namespace=ns, selector=owned) or {}
                for pod in found.get("items") or []:
                    lines.append(f"data-plane pod {ns}/{pod_summary(pod)}")
            for svc in data_planes or []:
                obj = self.kubectl.get_json("service", svc.name, namespace=svc.namespace) or {}
                selector = (obj.get("spec") or {}).get("selector") or {}
                if not selector:
                    continue
                label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
                found = self.kubectl.get_json("pods", namespace=svc.namespace, selector=label) or {}
                for pod in found.get("items") or []:
                    lines.append(f"data-plane pod {svc.namespace}/{pod_summary(pod)}")
        except SandboxError as e:
            lines.append(f"(cannot list pods: {e.message.splitlines()[0]})")
        return lines

    def _wait_ready(self, dep: ClusterDeployment) -> None:
        if not dep.items:
            return
        counts: dict[str, int] = {}
        for item in dep.items:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        what = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in counts.items())
        self.progress(
            f"waiting for {what} to be ready (Programmed / Accepted+ResolvedRefs / Available)"
        )
        timeout = self.timeouts.ready
        started = time.monotonic()
        deadline = started + timeout
        next_look = started + STUCK_LOOK_INTERVAL
        unchanged: dict[tuple[str, str, str], tuple[str, float]] = {}  # summary, since when
        taken_as_is: set[tuple[str, str, str]] = set()
        doing = f"waiting for {what} in namespace {dep.namespace} to be ready"
        while True:
            states = self._states(dep, doing)
            now = time.monotonic()
            pending = [
                i
                for i in dep.items
                if not states[(i.kind, i.namespace, i.name)][0]
                and (i.kind, i.namespace, i.name) not in taken_as_is
            ]
            others_ready = all(i.kind in ROUTE_KINDS for i in pending)
            for item in pending:
                key = (item.kind, item.namespace, item.name)
                _, summary, decided = states[key]
                if not (decided and others_ready):
                    unchanged.pop(key, None)
                    continue
                first = unchanged.setdefault(key, (summary, now))
                if first[0] != summary:
                    unchanged[key] = (summary, now)
                elif now - first[1] >= self.timeouts.settle:
                    taken_as_is.add(key)
                    self.progress(
                        f"{item.label} is not Accepted/ResolvedRefs and stays so; going on, the "
                        f"checks decide: {summary}"
                    )
            pending = [i for i in pending if (i.kind, i.namespace, i.name) not in taken_as_is]
            if not pending:
                return
            if now >= next_look:
                self._fail_if_stuck(dep, pending, states, waited=now - started)
                next_look = now + STUCK_LOOK_INTERVAL
            if now >= deadline:
                last = "\n" + "\n".join(
                    f"  - {i.label}: {states[(i.kind, i.namespace, i.name)][1]}" for i in pending
                )
                pod_ns = sorted({i.namespace for i in pending if i.kind == "Deployment"})
                gateways = sorted({(i.namespace, i.name) for i in pending if i.kind == "Gateway"})
                pods = self._pods(pod_ns, gateways=gateways)
                if pods:
                    last += "\n" + "\n".join(f"    {line}" for line in pods)
                tail = self.controller.controller_logs_tail(self.kubectl, 10).strip()
                hint = None
                if any(i.kind in ROUTE_KINDS for i in pending):
                    hint = (
                        "a route that is meant not to be accepted can be listed under "
                        "`unaccepted_routes` in scenario.yaml"
                    )
                if tail:
                    last += f"\n  controller {self.controller.name} log tail:\n" + "\n".join(
                        "    " + line for line in tail.splitlines()
                    )
                raise WaitTimeout(
                    f"{len(pending)} of {len(dep.items)} objects in namespace {dep.namespace} "
                    "to be ready",
                    timeout,
                    last,
                    hint=hint,
                )
            time.sleep(min(self.timeouts.poll, max(0.0, deadline - time.monotonic())))

    def _fail_if_stuck(
        self,
        dep: ClusterDeployment,
        pending: list[_Item],
        states: dict[tuple[str, str, str], tuple[bool, str, bool]],
        *,
        waited: float,
    ) -> None:
        """Fail the wait at once, instead of after its whole timeout, when it cannot end well:

        - a pod of the run's namespaces, or of a Gateway's data plane, that cannot start
          (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, Unschedulable, ...: named with
          its reason and last events, :func:`sandbox.infra.kube.describe_stuck_pods`);
        - the controller down (its Deployment gone, scaled to 0, no available pod) while
          Gateways or routes wait for its status;
        - a Gateway whose data-plane Service is a LoadBalancer that nothing gives an address
          (kind has no load-balancer controller, nor has k3d without ServiceLB): Envoy Gateway
          keeps it ``Programmed=False`` (``AddressNotAssigned``) for ever. The sandbox's own
          GatewayClass uses an EnvoyProxy with ClusterIP Services for this reason.
        """
        lines: list[str] = []
        for ns in sorted({i.namespace for i in dep.items}):
            lines += describe_stuck_pods(self.kubectl, ns)
        for ns, name in dep.gateways():
            lines += describe_stuck_pods(
                self.kubectl,
                self.controller.namespace,
                self.controller.data_plane_selector(ns, name),
            )
        if lines:
            raise ClusterError(
                f"scenario {dep.scenario.name}: {sum(1 for x in lines if x.startswith('pod '))} "
                "pod(s) cannot start:\n" + "\n".join(f"  {line}" for line in lines),
                hint=image_hint(lines),
            )
        if waited < self.timeouts.settle:
            return
        if any(i.kind == "Gateway" or i.kind in ROUTE_KINDS for i in pending):
            # nothing writes their status while the controller is down: say so, not a timeout
            problem = self.controller.controller_problem(self.kubectl)
            if problem:
                ns = self.controller.namespace
                raise ClusterError(
                    f"{problem}, so nothing accepts or programs "
                    f"its Gateways and routes ({', '.join(i.label for i in pending)} waiting)",
                    hint=(
                        "`sandbox up` re-installs it on the sandbox's cluster; on another "
                        f"cluster: `kubectl -n {ns} scale deployment/{self.controller.deployment} "
                        "--replicas=1`"
                    ),
                )
        for item in pending:
            if item.kind != "Gateway":
                continue
            summary = states[(item.kind, item.namespace, item.name)][1]
            if "AddressNotAssigned" not in summary:
                continue
            svc = self.controller.data_plane_service(self.kubectl, item.namespace, item.name)
            if svc is None:
                continue
            obj = self.kubectl.get_json("service", svc.name, namespace=svc.namespace) or {}
            spec = obj.get("spec") or {}
            ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if spec.get("type") == "LoadBalancer" and not ingress:
                raise ClusterError(
                    f"{item.label} is Accepted but never Programmed: its data-plane Service "
                    f"{svc.namespace}/{svc.name} is a LoadBalancer, and nothing in this cluster "
                    "assigns load-balancer addresses (kind has no load-balancer controller); "
                    f"GatewayClass {self.gateway_class} makes LoadBalancer Services",
                    hint=(
                        "use the sandbox's GatewayClass (eg: its EnvoyProxy makes ClusterIP "
                        "Services, reached through port-forward), or give your class an "
                        "EnvoyProxy with spec.provider.kubernetes.envoyService.type: ClusterIP "
                        "(parametersRef)"
                    ),
                )

    # --- cleanup ---------------------------------------------------------------------------------

    def _finish(self, dep: ClusterDeployment, failed: bool) -> None:
        if self.keep:
            names = " ".join(n["metadata"]["name"] for n in dep.namespaces)
            self.progress(
                f"kept namespaces {names} (--keep); remove with: kubectl delete namespace {names}"
            )
            return
        try:
            self.cleanup(dep)
        except SandboxError as e:
            if not failed:
                raise
            log.error("cleanup of %s failed too: %s", dep.namespace, e)

    def cleanup(self, dep: ClusterDeployment) -> None:
        """Delete what the run applied (reverse kind order), then its namespaces; wait until
        gone, or, with ``defer_cleanup_wait``, leave the wait to :meth:`finish` so that the next
        scenario starts while these terminate (each run has its own namespaces and data planes,
        so nothing of the next one waits on them)."""
        names = [n["metadata"]["name"] for n in dep.namespaces]
        self.progress(f"deleting namespace{'s' if len(names) > 1 else ''} {' '.join(names)}")
        objects = delete_order(dep.objects)
        doing = f"deleting the namespaces of run {dep.namespace}"
        # the namespaces first: the namespace controller starts on a deleted namespace only
        # NAMESPACE_DELETION_GRACE seconds after the request, so that clock starts at once; what
        # the run applied is deleted explicitly right after, in reverse kind order, well before
        # the controller's first pass (a Terminating namespace still accepts deletes)
        if names:
            self.kubectl.delete(
                "namespace", names, wait=False, timeout=self.timeouts.delete, doing=doing
            )
        if objects:
            self.kubectl.delete_manifests(
                objects, wait=False, timeout=self.timeouts.delete, doing=doing
            )
        pending = _Deleting(
            run=dep.namespace,
            namespaces=names,
            gateways=dep.gateways(),
            cluster_scoped=[o for o in objects if not is_namespaced(str(o.get("kind")))],
            deadline=time.monotonic() + self.timeouts.delete,
        )
        if self.defer_cleanup_wait:
            self._deleting.append(pending)
            return
        for error in self._wait_deleted([pending]).values():
            raise error

    def finish(self) -> dict[str, SandboxError]:
        """Wait (bounded) until every deferred cleanup is done. Returns the runs (by run
        namespace) whose cleanup did not finish, with the error; {} when all did."""
        pending, self._deleting = self._deleting, []
        if not pending:
            return {}
        self.progress(f"waiting for the namespaces of {len(pending)} run(s) to be deleted")
        return self._wait_deleted(pending)

    def _left(self, item: _Deleting, *, namespaces_gone: bool = False) -> list[str]:
        left: list[str] = []
        for name in [] if namespaces_gone else item.namespaces:
            ns = self.kubectl.get_json("namespace", name)
            if ns is not None:
                left.append(summarize_status(ns))
        for gw_ns, gw in item.gateways:
            svc = self.controller.data_plane_service(self.kubectl, gw_ns, gw)
            if svc is not None:
                left.append(
                    f"data-plane service {svc.namespace}/{svc.name} of Gateway {gw_ns}/{gw}"
                )
        for obj in item.cluster_scoped:
            kind, _, obj_name = _key(obj)
            if self.kubectl.get_json(kind.lower(), obj_name) is not None:
                left.append(f"{kind.lower()}/{obj_name}")
        return left

    def _namespaces_gone(self, pending: list[_Deleting]) -> bool:
        """Block until the namespaces of ``pending`` are gone, at most until the soonest
        deadline: ``kubectl wait --for=delete`` watches them, so their removal is seen when it
        happens rather than at the next poll. False when it did not happen (or the wait could not
        tell): the caller looks at each run itself."""
        names = [f"namespace/{n}" for item in pending for n in item.namespaces]
        seconds = min(i.deadline for i in pending) - time.monotonic()
        if not names or seconds < 1:
            return False
        try:
            self.kubectl.wait(
                names,
                "delete",
                timeout=seconds,
                what=f"{len(names)} namespace(s) of {len(pending)} run(s) to be deleted",
            )
        except APIServerUnreachable:
            raise  # no look would tell more: every run's cleanup failed with it
        except SandboxError as e:  # a timeout, or kubectl could not tell: the look decides
            log.info("namespace deletion wait: %s", e)
            return False
        return True

    def _wait_deleted(self, pending: list[_Deleting]) -> dict[str, SandboxError]:
        failed: dict[str, SandboxError] = {}
        while pending:
            try:
                gone = self._namespaces_gone(pending)
            except APIServerUnreachable as e:
                failed.update((item.run, e) for item in pending)
                break
            still = []
            for item in pending:
                try:
                    left = self._left(item, namespaces_gone=gone)
                except SandboxError as e:
                    failed[item.run] = e
                    continue
                if not left:
                    continue
                if time.monotonic() >= item.deadline:
                    failed[item.run] = WaitTimeout(
                        f"the namespaces of run {item.run} to be deleted",
                        self.timeouts.delete,
                        "; ".join(left),
                        hint=f"inspect with `kubectl get namespace {' '.join(item.namespaces)} -o yaml`",
                    )
                    continue
                still.append(item)
            pending = still
            if pending:
                soonest = min(i.deadline for i in pending)
                time.sleep(min(self.timeouts.poll, max(0.0, soonest - time.monotonic())))
        return failed
