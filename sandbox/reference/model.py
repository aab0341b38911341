"""The reference model: Gateway API v1 routing decisions computed from manifests.

Public API (used by ``sandbox explain``, ``sandbox check`` and the ``local`` provider):

    model = Model.from_objects(objects)            # raises InputError naming the object
    model.gateways()                               # ["ns/name", ...]
    model.listeners("ns/name")                     # [ListenerInfo, ...] (port, protocol, hostname)
    model.decide("ns/name", 80, "GET", "www.example.com", "/get?x=1", {"X-A": "b"}) -> Decision
    model.decide_grpc("ns/name", 80, "host", "pkg.Service", "Method", {"k": "v"}) -> Decision
    model.services                                 # [ServiceInfo, ...] with ports and Deployments
    model.deployments                              # [DeploymentInfo, ...]
    model.backends_of("ns", "svc")                 # Deployments whose pods back that Service
    model.notes                                    # routes/parentRefs that did not attach, and why
    model.unattached()                             # [Unattached]: routes attached nowhere, and why

Objects without ``metadata.namespace`` are in ``default``. A gateway may be named "ns/name" or,
when the name is unique, just "name".

Route age: ``metadata.creationTimestamp`` when the manifest sets it; otherwise the position in the
input stands for age (earlier in the files = older), and a route without a timestamp counts as
newer than every route that has one. (A real API server sets the timestamp itself at creation,
with one-second resolution, so routes applied together usually tie on age and fall through to
the namespace/name order.)

Choices where the spec leaves room, and known differences from Envoy Gateway:

- RegularExpression paths rank between Exact and PathPrefix, by length (as Envoy Gateway's
  internal/gatewayapi/sort.go); regexes are Python ``re`` full matches (Envoy uses RE2).
- Virtual hosts, as Envoy Gateway builds them (v1.9.0 internal/xds/translator/translator.go
  ``addRouteToRouteConfig``: one Envoy virtual host per effective route hostname; Envoy picks
  the most specific domain: exact, then the longest ``*.`` suffix, then ``*``): a request is
  decided only among the routes of the listener whose most specific matching hostname is that
  virtual host's. A request for a.example.com that no rule of the a.example.com route matches
  gets 404; it does not fall through to a ``*.example.com`` or hostname-less route (the spec's
  wording, "hostname specificity first", could be read either way; EG is the target).
- Listener hostnames: the most specific listener takes the request (listener isolation). EG
  shares one route table among the HTTP listeners of a port, so it differs only when a route on
  a less specific listener names a more specific hostname than another listener's.
- An HTTPRoute and a GRPCRoute with overlapping hostnames on one listener: only the older is
  accepted (GRPCRoute spec.hostnames). Envoy Gateway does not enforce this (both are served, in
  the same virtual host); scenarios avoid the case.
- Header modifiers apply remove, then set, then add (the spec does not order them).
- A Service with no pods answers 503 (the spec's SHOULD) when the manifests' workloads are all
  Deployments; with other workload kinds the model does not guess and assumes pods exist.
- Not modelled: CORS and ExternalAuth filters (ignored, with a note), ExtensionRef filters
  (answered 500, as for an unresolvable custom filter), retries, session persistence,
  BackendTLSPolicy, ListenerSets, TLS/TCP/UDP routes, Service (mesh) parents, 421 Misdirected
  Request, Gateway addresses and GatewayClass acceptance.

Long on purpose: the routing decision is one algorithm (listener, route, rule, filters, backends)
over state built once; its steps read each other's tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import InputError
from sandbox.reference import matching as mt
from sandbox.reference.decision import BackendChoice, Decision, Mirror, ModelRedirect, ModelRequest
from sandbox.reference.filters import apply_header_ops, modify_path, redirect_target
from sandbox.reference.objects import (
    GATEWAY_GROUP,
    BackendRef,
    Deployment,
    Filter,
    Gateway,
    HeaderOps,
    Listener,
    ReferenceGrant,
    Route,
    Rule,
    Service,
    parse_deployment,
    parse_gateway,
    parse_meta,
    parse_reference_grant,
    parse_route,
    parse_service,
)

ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
WORKLOAD_KINDS = (
    "Pod",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
)
GRPC_OK, GRPC_UNIMPLEMENTED, GRPC_UNAVAILABLE = 0, 12, 14


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: str = ""
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


@dataclass
class DeploymentInfo:
    namespace: str
    name: str
    replicas: int = 1
    labels: dict[str, str] = field(default_factory=dict)  # pod template labels
    env: dict[str, str] = field(default_factory=dict)  # literal env of the first container
    images: list[str] = field(default_factory=list)  # the pod template's container images


@dataclass
class ServiceInfo:
    namespace: str
    name: str
    ports: list[ServicePort] = field(default_factory=list)
    selector: dict[str, str] = field(default_factory=dict)
    deployments: list[str] = field(default_factory=list)  # names of Deployments whose pods match


@dataclass(frozen=True)
class ListenerInfo:
    name: str
    port: int
    protocol: str  # HTTP | HTTPS | ...
    hostname: str | None = None
    tls_secrets: tuple[str, ...] = ()  # "ns/name" of certificateRefs


@dataclass
class Attached:
    """A route attached to one listener, with the hostnames it answers there."""

    route: Route
    hostnames: list[str]  # effective (listener ∩ route); [] = every host the listener takes
    # effective hostname -> the most specific route hostname it came from (None: route has none)
    origins: dict[str, str | None] = field(default_factory=dict)


def _age_key(route: Route) -> tuple[int, str, int]:
    m = route.meta
    # equal timestamps tie (and fall through to namespace/name); without one, input order is age
    return (0, m.creation, 0) if m.creation else (1, "", m.order)


def _describe_age(route: Route) -> str:
    m = route.meta
    return f"created {m.creation}" if m.creation else f"input position {m.order + 1}"


@dataclass
class _Candidate:
    route: Route
    rule: Rule
    match_index: int
    match_text: str
    hostname: str | None
    key: tuple[Any, ...]
    prefix: str | None  # the PathPrefix value that matched (for ReplacePrefixMatch)


@dataclass(frozen=True)
class Unattached:
    """A route attached to no listener of any Gateway."""

    route: str  # "HTTPRoute ns/name"
    source: str | None  # "file:line" of its manifest, when known
    reasons: list[str]  # one per parentRef (or "no parentRefs"), without the route's name

    def describe(self) -> str:
        return f"{self.route} is attached to no listener: " + "; ".join(self.reasons)


class Model:
    """Gateway API routing over a fixed set of objects."""

    def __init__(self) -> None:
        self.services: list[ServiceInfo] = []
        self.deployments: list[DeploymentInfo] = []
        self.notes: list[str] = []
        self._route_notes: dict[int, list[str]] = {}  # id(route) -> its notes
        self._namespaces: dict[str, dict[str, str]] = {}
        self._gateways: dict[str, Gateway] = {}
        self._routes: list[Route] = []
        self._services: dict[str, Service] = {}
        self._deployments: list[Deployment] = []
        self._grants: list[ReferenceGrant] = []
        self._attached: dict[tuple[str, str], list[Attached]] = {}
        self._bad_listeners: dict[tuple[str, str], str] = {}
        # pods are modelled from Deployments only when they are the only workloads given
        self._endpoints_known = False

    # ------------------------------------------------------------ building

    @classmethod
    def from_objects(cls, objects: list[dict[str, Any]], sources: list[str] | None = None) -> Model:
        """Build the model. ``sources`` optionally gives "file:line" per object, for errors."""
        model = cls()
        other_workloads = False
        seen: dict[tuple[str, str], str] = {}
        for i, obj in enumerate(objects):
            source = sources[i] if sources and i < len(sources) else None
            if not isinstance(obj, dict):
                raise InputError(
                    f"object {i + 1} is not a mapping",
                    file=source.rpartition(":")[0] if source else None,
                )
            meta = parse_meta(obj, i, source)
            ident = (meta.kind, meta.key)
            if ident in seen and meta.kind != "Namespace":
                raise meta.where.error("metadata.name", f"duplicate {meta.kind} {meta.key}")
            seen[ident] = source or ""
            if meta.kind == "Namespace":
                model._namespaces[meta.name] = meta.labels
            elif meta.kind == "Gateway":
                model._gateways[meta.key] = parse_gateway(obj, meta)
            elif meta.kind in ROUTE_KINDS:
                model._routes.append(parse_route(obj, meta))
            elif meta.kind == "Service":
                model._services[meta.key] = parse_service(obj, meta)
            elif meta.kind == "Deployment":
                model._deployments.append(parse_deployment(obj, meta))
            elif meta.kind == "ReferenceGrant":
                model._grants.append(parse_reference_grant(obj, meta))
            elif meta.kind in WORKLOAD_KINDS:
                other_workloads = True
            # other kinds (GatewayClass, Secret, ConfigMap, TLSRoute...) do not affect HTTP routing
        model._endpoints_known = bool(model._deployments) and not other_workloads
        model._index_backends()
        model._check_listeners()
        model._attach()
        return model

    def _index_backends(self) -> None:
        for d in self._deployments:
            self.deployments.append(
                DeploymentInfo(
                    d.meta.namespace,
                    d.meta.name,
                    d.replicas,
                    dict(d.pod_labels),
                    dict(d.env),
                    list(d.images),
                )
            )
        for s in self._services.values():
            deps = [
                d.meta.name
                for d in self._deployments
                if d.meta.namespace == s.meta.namespace
                and s.selector
                and all(d.pod_labels.get(k) == v for k, v in s.selector.items())
            ]
            self.services.append(
                ServiceInfo(
                    s.meta.namespace,
                    s.meta.name,
                    [
                        ServicePort(p.port, p.name, p.target_port, p.protocol, p.app_protocol)
                        for p in s.ports
                    ],
                    dict(s.selector),
                    deps,
                )
            )

    def _namespace_labels(self, ns: str) -> dict[str, str]:
        # the API server labels every Namespace with kubernetes.io/metadata.name=<name>
        labels = dict(self._namespaces.get(ns, {}))
        labels["kubernetes.io/metadata.name"] = ns
        return labels

    def _granted(
        self, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str, to_name: str
    ) -> bool:
        """A ReferenceGrant in ``to_ns`` lets ``from_kind`` objects of ``from_ns`` refer to it."""
        for g in self._grants:
            if g.meta.namespace != to_ns:
                continue
            if not any(
                f.group == GATEWAY_GROUP and f.kind == from_kind and f.namespace == from_ns
                for f in g.from_
            ):
                continue
            if any(
                t.group == to_group and t.kind == to_kind and t.name in (None, to_name)
                for t in g.to
            ):
                return True
        return False

    def _check_listeners(self) -> None:
        """Listeners that are not programmed: indistinct ones (same port, protocol and hostname:
        "Conflicted", none of them is accepted) and those whose certificateRefs cross namespaces
        without a ReferenceGrant (ResolvedRefs=False, RefNotPermitted)."""
        for gw in self._gateways.values():
            groups: dict[tuple[int, str, str | None], list[Listener]] = {}
            for ls in gw.listeners:
                groups.setdefault((ls.port, ls.protocol, ls.hostname), []).append(ls)
            for (port, protocol, hostname), same in groups.items():
                if len(same) > 1:
                    for ls in same:
                        self._bad_listeners[(gw.meta.key, ls.name)] = (
                            f"Conflicted: listeners {', '.join(x.name for x in same)} share port {port}, "
                            f"protocol {protocol} and hostname {hostname or '(none)'}"
                        )
            for ls in gw.listeners:
                for ref in ls.tls_secrets:
                    ns, _, name = ref.partition("/")
                    if ns != gw.meta.namespace and not self._granted(
                        "Gateway", gw.meta.namespace, "", "Secret", ns, name
                    ):
                        self._bad_listeners[(gw.meta.key, ls.name)] = (
                            f"certificateRef Secret {ref} in another namespace without a ReferenceGrant"
                        )

    def _note(self, route: Route, text: str) -> None:
        self.notes.append(text)
        self._route_notes.setdefault(id(route), []).append(text)

    def _attach(self) -> None:
        for route in self._routes:
            attached_any = False
            for pref in route.parent_refs:
                what = f"{route.kind} {route.meta.key} parentRef {pref.describe()}"
                if pref.group != GATEWAY_GROUP or pref.kind != "Gateway":
                    self._note(route, f"{what}: only Gateway parents are modelled")
                    continue
                gw = self._gateways.get(f"{pref.namespace}/{pref.name}")
                if gw is None:
                    self._note(
                        route,
                        f"{what}: no such Gateway (Gateways in the manifests: "
                        f"{', '.join(self.gateways()) or 'none'})",
                    )
                    continue
                reasons = []
                hits = 0
                for ls in gw.listeners:
                    why = self._attach_failure(route, gw, ls, pref.section_name, pref.port)
                    if why:
                        reasons.append(f"listener {ls.name}: {why}")
                        continue
                    eff = mt.effective_hostnames(ls.hostname, route.hostnames)
                    assert eff is not None
                    origins: dict[str, str | None] = {}
                    for e in eff:
                        srcs = [h for h in route.hostnames if mt.intersect(ls.hostname, h) == e]
                        origins[e] = max(srcs, key=mt.hostname_rank) if srcs else None
                    items = self._attached.setdefault((gw.meta.key, ls.name), [])
                    if all(a.route is not route for a in items):  # two parentRefs, one listener
                        items.append(Attached(route, eff, origins))
                    hits += 1
                if hits:
                    attached_any = True
                    continue
                listeners = ", ".join(f"{ls.name}:{ls.port}" for ls in gw.listeners) or "none"
                if pref.section_name is not None and all(
                    ls.name != pref.section_name for ls in gw.listeners
                ):
                    why = (
                        f"sectionName {pref.section_name} names no listener of Gateway "
                        f"{gw.meta.key} (listeners: {listeners})"
                    )
                elif pref.port is not None and all(ls.port != pref.port for ls in gw.listeners):
                    why = (
                        f"port {pref.port} is the port of no listener of Gateway "
                        f"{gw.meta.key} (listeners: {listeners})"
                    )
                else:
                    why = "; ".join(reasons) or "no listeners"
                self._note(route, f"{what}: not accepted ({why})")
            if not attached_any and not route.parent_refs:
                self._note(route, f"{route.kind} {route.meta.key}: no parentRefs")
        self._resolve_kind_conflicts()

    def unattached(self) -> list[Unattached]:
        """Routes attached to no listener at all, each with why: its parentRefs' notes (no
        such Gateway, sectionName or port naming no listener, allowedRoutes namespaces or
        kinds, hostnames that do not intersect, a route of the other kind on the same
        hostnames)."""
        attached = {id(a.route) for items in self._attached.values() for a in items}
        out = []
        for r in self._routes:
            if id(r) in attached:
                continue
            label = f"{r.kind} {r.meta.key}"
            reasons = []
            for note in self._route_notes.get(id(r), []) or ["not attached"]:
                for prefix in (label + " ", label + ": "):
                    if note.startswith(prefix):
                        note = note[len(prefix) :]
                        break
                reasons.append(note)
            out.append(Unattached(label, r.meta.where.source, reasons))
        return out

    def _attach_failure(
        self, route: Route, gw: Gateway, ls: Listener, section: str | None, port: int | None
    ) -> str | None:
        if section is not None and section != ls.name:
            return f"sectionName {section} does not name it"
        if port is not None and port != ls.port:
            return f"port {port} is not the listener port {ls.port}"
        if (gw.meta.key, ls.name) in self._bad_listeners:
            return self._bad_listeners[(gw.meta.key, ls.name)]
        if ls.protocol not in ("HTTP", "HTTPS"):
            return f"protocol {ls.protocol} does not carry {route.kind}"
        if not any(k.group == GATEWAY_GROUP and k.kind == route.kind for k in ls.allowed_kinds()):
            return f"allowedRoutes.kinds does not include {route.kind}"
        rns = route.meta.namespace
        if ls.allowed_from == "Same" and rns != gw.meta.namespace:
            return f"allowedRoutes from Same: route namespace {rns} is not {gw.meta.namespace}"
        if ls.allowed_from == "None":
            return "allowedRoutes from None"
        if ls.allowed_from == "Selector":
            assert ls.selector is not None
            if not ls.selector.matches(self._namespace_labels(rns)):
                return f"allowedRoutes selector does not select namespace {rns}"
        if mt.effective_hostnames(ls.hostname, route.hostnames) is None:
            return f"no route hostname ({', '.join(route.hostnames)}) intersects listener hostname {ls.hostname}"
        return None

    def _resolve_kind_conflicts(self) -> None:
        """An HTTPRoute and a GRPCRoute on one listener with intersecting hostnames: only the
        older (then alphabetically first) is accepted (GRPCRoute spec.hostnames)."""
        for key, items in self._attached.items():
            rejected: set[int] = set()
            for i, a in enumerate(items):
                for j, b in enumerate(items):
                    if i >= j or a.route.kind == b.route.kind or i in rejected or j in rejected:
                        continue
                    if not _hosts_intersect(a.hostnames, b.hostnames):
                        continue
                    older_a = (_age_key(a.route), a.route.meta.key) < (
                        _age_key(b.route),
                        b.route.meta.key,
                    )
                    loser, idx = (b, j) if older_a else (a, i)
                    rejected.add(idx)
                    self._note(
                        loser.route,
                        f"{loser.route.kind} {loser.route.meta.key} not accepted on listener "
                        f"{key[0]}/{key[1]}: hostnames overlap a route of the other kind",
                    )
            self._attached[key] = [a for k, a in enumerate(items) if k not in rejected]

    # ------------------------------------------------------------ queries

    def gateways(self) -> list[str]:
        return sorted(self._gateways)

    def resolve_gateway(self, gateway: str) -> Gateway:
        """ "ns/name", or "name" when it is unique (or in ``default``)."""
        if "/" in gateway:
            gw = self._gateways.get(gateway)
            if gw is None:
                raise InputError(
                    f"no Gateway {gateway} in the manifests (have: {', '.join(self.gateways()) or 'none'})"
                )
            return gw
        same = [g for g in self._gateways.values() if g.meta.name == gateway]
        if len(same) == 1:
            return same[0]
        if f"default/{gateway}" in self._gateways:
            return self._gateways[f"default/{gateway}"]
        if not same:
            raise InputError(
                f"no Gateway named {gateway} in the manifests (have: {', '.join(self.gateways()) or 'none'})"
            )
        raise InputError(f"Gateway name {gateway} is ambiguous; say NAMESPACE/NAME")

    def listeners(self, gateway: str) -> list[ListenerInfo]:
        gw = self.resolve_gateway(gateway)
        return [
            ListenerInfo(ls.name, ls.port, ls.protocol, ls.hostname, tuple(ls.tls_secrets))
            for ls in gw.listeners
            if (gw.meta.key, ls.name) not in self._bad_listeners
        ]

    def backends_of(self, namespace: str, service: str) -> list[DeploymentInfo]:
        for s in self.services:
            if s.namespace == namespace and s.name == service:
                return [
                    d
                    for d in self.deployments
                    if d.namespace == namespace and d.name in s.deployments
                ]
        return []

    # ------------------------------------------------------------ decisions

    def _select_listener(
        self, gw: Gateway, port: int, scheme: str, host: str, losers: list[str]
    ) -> Listener | None:
        protocol = "HTTPS" if scheme == "https" else "HTTP"
        on_port = [
            ls
            for ls in gw.listeners
            if ls.port == port
            and ls.protocol == protocol
            and (gw.meta.key, ls.name) not in self._bad_listeners
        ]
        if not on_port:
            return None
        ranked = []
        for ls in on_port:
            rank = mt.listener_host_rank(ls.hostname, host)
            if rank is None:
                losers.append(
                    f"listener {ls.name}: hostname {ls.hostname} does not match host {host}"
                )
            else:
                ranked.append((rank, ls))
        if not ranked:
            return None
        ranked.sort(key=lambda x: x[0], reverse=True)
        best = ranked[0][1]
        for _, ls in ranked[1:]:
            losers.append(
                f"listener {ls.name}: hostname {ls.hostname or '(any)'} is less specific than "
                f"{best.hostname or '(any)'} (listener isolation)"
            )
        return best

    def decide(
        self,
        gateway: str,
        port: int,
        method: str,
        host: str,
        path: str,
        headers: dict[str, str],
        scheme: str = "http",
    ) -> Decision:
        gw = self.resolve_gateway(gateway)
        method = method.upper()
        target = path if path.startswith("/") else "/" + path
        req_path, query = mt.split_target(target)
        request = ModelRequest(method, host, target, dict(headers))
        hostname = mt.strip_port(host)
        losers: list[str] = []
        ls = self._select_listener(gw, port, scheme, hostname, losers)
        if ls is None:
            return self._no_route(gw, None, port, scheme, request, losers, grpc=False)

        def http_rank(m: Any) -> tuple[str | None, tuple[int, ...] | None, str | None]:
            why = mt.http_match_failure(m, method, req_path, query, headers)
            if why:
                return why, None, None
            return (
                None,
                mt.http_match_rank(m),
                m.path_value if m.path_type == "PathPrefix" else None,
            )

        cands = self._candidates(gw, ls, "HTTPRoute", hostname, losers, http_rank)
        if not cands:
            return self._no_route(gw, ls, port, scheme, request, losers, grpc=False)
        cands.sort(key=lambda c: c.key)
        win = cands[0]
        for c in cands[1:]:
            losers.append(_why_lost(c, win, mt.HTTP_RANK_NAMES))
        return self._apply_rule(gw, ls, scheme, win, request, req_path, query, losers, grpc=False)

    def decide_grpc(
        self,
        gateway: str,
        port: int,
        host: str,
        service: str,
        method: str,
        metadata: dict[str, str],
        scheme: str = "http",
    ) -> Decision:
        """A gRPC call ``/<service>/<method>`` with ``metadata`` (request headers). GRPCRoutes
        only: the spec forbids merging GRPCRoutes and HTTPRoutes."""
        gw = self.resolve_gateway(gateway)
        target = f"/{service}/{method}"
        request = ModelRequest("POST", host, target, dict(metadata))
        hostname = mt.strip_port(host)
        losers: list[str] = []
        ls = self._select_listener(gw, port, scheme, hostname, losers)
        if ls is None:
            return self._no_route(gw, None, port, scheme, request, losers, grpc=True)

        def grpc_rank(m: Any) -> tuple[str | None, tuple[int, ...] | None, str | None]:
            why = mt.grpc_match_failure(m, service, method, metadata)
            return (why, None, None) if why else (None, mt.grpc_match_rank(m), None)

        cands = self._candidates(gw, ls, "GRPCRoute", hostname, losers, grpc_rank)
        if not cands:
            return self._no_route(gw, ls, port, scheme, request, losers, grpc=True)
        cands.sort(key=lambda c: c.key)
        win = cands[0]
        for c in cands[1:]:
            losers.append(_why_lost(c, win, mt.GRPC_RANK_NAMES))
        return self._apply_rule(gw, ls, scheme, win, request, target, "", losers, grpc=True)

    def _candidates(
        self,
        gw: Gateway,
        ls: Listener,
        kind: str,
        hostname: str,
        losers: list[str],
        rank: Callable[[Any], tuple[str | None, tuple[int, ...] | None, str | None]],
    ) -> list[_Candidate]:
        """Every match of every ``kind`` route attached to listener ``ls`` that the request
        satisfies, with its precedence key (hostname, match rank, age, namespace/name, rule,
        match): ``rank(match)`` gives (why it fails, or its rank and matched PathPrefix).
        Matches that fail, and routes whose hostnames miss, are added to ``losers``."""
        cands: list[_Candidate] = []
        attached = self._attached.get((gw.meta.key, ls.name), [])
        vhost = _virtual_host(attached, hostname)
        for att in attached:
            route = att.route
            if route.kind != kind:
                continue
            rh = mt.best_hostname(att.hostnames, hostname)
            if rh is False:
                losers.append(
                    f"{kind} {route.meta.key}: hostnames {', '.join(att.hostnames)} do not match {hostname}"
                )
                continue
            rhost = rh if isinstance(rh, str) else None
            if rhost != vhost:
                losers.append(
                    f"{kind} {route.meta.key}: serves {hostname} only as {rhost or '*'}, but the "
                    f"request's virtual host is {vhost or '*'} (one virtual host per request, "
                    f"no fall-through to less specific hostnames)"
                )
                continue
            hrank = _host_key(rhost, att)
            for rule in route.rules:
                matches = rule.http_matches if kind == "HTTPRoute" else rule.grpc_matches
                for m in matches:
                    why, mrank, prefix = rank(m)
                    if why or mrank is None:
                        losers.append(
                            f"{kind} {route.meta.key} rule {rule.index} match {m.index}: {why}"
                        )
                        continue
                    key = (
                        tuple(-x for x in hrank),
                        tuple(-x for x in mrank),
                        _age_key(route),
                        route.meta.key,
                        rule.index,
                        m.index,
                    )
                    cands.append(_Candidate(route, rule, m.index, m.describe(), rhost, key, prefix))
        return cands

    def _no_route(
        self,
        gw: Gateway,
        ls: Listener | None,
        port: int,
        scheme: str,
        request: ModelRequest,
        losers: list[str],
        grpc: bool,
    ) -> Decision:
        if ls is None:
            protocol = "HTTPS" if scheme == "https" else "HTTP"
            on_port = [x for x in gw.listeners if x.port == port and x.protocol == protocol]
            if on_port:
                reason = f"no {protocol} listener on port {port} takes host {mt.strip_port(request.host)}"
            else:
                reason = f"Gateway {gw.meta.key} has no {protocol} listener on port {port}"
        else:
            kind = "GRPCRoute" if grpc else "HTTPRoute"
            reason = f"no {kind} rule attached to listener {ls.name} matches the request"
            if not losers:
                reason += " (no routes attached)"
        summary = reason
        if losers:
            reason += ": " + "; ".join(losers[:5]) + ("; ..." if len(losers) > 5 else "")
        return Decision(
            status=404,
            gateway=gw.meta.key,
            listener=ls.name if ls else None,
            route=None,
            rule=None,
            backends=[],
            request=request,
            response_headers={},
            redirect=None,
            reason=reason,
            losers=losers,
            listener_port=port,
            summary=summary,
            grpc_status=GRPC_UNIMPLEMENTED if grpc else None,
        )

    def _backend_choice(self, route: Route, ref: BackendRef) -> BackendChoice:
        choice = BackendChoice(ref.name, ref.namespace, ref.port, ref.weight, ref.kind, ref.group)
        why = self.backend_invalid(route, ref)
        if why:
            choice.valid = False
            choice.invalid_reason = why
        else:
            deps = self.backends_of(ref.namespace, ref.name)
            choice.deployments = [d.name for d in deps]
            if self._endpoints_known and sum(max(d.replicas, 0) for d in deps) == 0:
                choice.endpoints = False
        return choice

    def backend_invalid(self, route: Route, ref: BackendRef) -> str | None:
        """Why a backendRef is invalid (InvalidKind, BackendNotFound, RefNotPermitted) or None."""
        if ref.group != "" or ref.kind != "Service":
            return f"{ref.describe()}: unsupported kind (InvalidKind)"
        if ref.namespace != route.meta.namespace and not self._granted(
            route.kind, route.meta.namespace, "", "Service", ref.namespace, ref.name
        ):
            return f"{ref.describe()}: cross-namespace reference without a ReferenceGrant (RefNotPermitted)"
        svc = self._services.get(f"{ref.namespace}/{ref.name}")
        if svc is None:
            return f"{ref.describe()}: no such Service (BackendNotFound)"
        if ref.port is not None and all(p.port != ref.port for p in svc.ports):
            return f"{ref.describe()}: Service has no port {ref.port} (BackendNotFound)"
        return None

    def _apply_rule(
        self,
        gw: Gateway,
        ls: Listener,
        scheme: str,
        win: _Candidate,
        request: ModelRequest,
        req_path: str,
        query: str,
        losers: list[str],
        grpc: bool,
    ) -> Decision:
        route, rule = win.route, win.rule
        fo = self._apply_filters(ls, scheme, win, request, req_path, query)
        headers, host, path, redirect = fo.headers, fo.host, fo.path, fo.redirect
        status, notes, resp_ops = fo.status, fo.notes, fo.resp_ops
        target = path + (f"?{query}" if query else "")
        out_request = ModelRequest(request.method, host, target, headers)
        backends = [self._backend_choice(route, ref) for ref in rule.backend_refs]
        _backend_requests(backends, rule.backend_refs, fo, request.method, query, win.prefix)
        live = [b for b in backends if b.weight > 0]
        if status is None:
            status = _rule_status(rule, live, notes)
        for b in backends:
            if not b.valid:
                notes.append(b.invalid_reason)
            elif not b.endpoints and redirect is None:
                notes.append(f"Service {b.namespace}/{b.name} has no pods in the manifests")
        if len(live) == 1 and live[0].request is not None:
            out_request = live[0].request
        response_headers = _response_headers(redirect, resp_ops)
        grpc_status = None
        if grpc:
            grpc_status = GRPC_OK if status == 200 else GRPC_UNAVAILABLE
        reason = _rule_reason(ls, win, redirect, status, live, notes)
        return Decision(
            status=status,
            gateway=gw.meta.key,
            listener=ls.name,
            route=route.meta.key,
            rule=rule.index,
            backends=backends if redirect is None else [],
            request=out_request,
            response_headers=response_headers,
            redirect=redirect,
            reason=reason,
            mirrors=fo.mirrors if redirect is None else [],
            request_timeout=rule.request_timeout,
            backend_timeout=rule.backend_timeout,
            match=win.match_text,
            losers=losers,
            listener_port=ls.port,
            grpc_status=grpc_status,
            response_header_ops=resp_ops,
            summary=reason,
        )

    def _apply_filters(
        self,
        ls: Listener,
        scheme: str,
        win: _Candidate,
        request: ModelRequest,
        req_path: str,
        query: str,
    ) -> _FilterOutcome:
        """The winning rule's filters applied, in order, to the request."""
        route, rule = win.route, win.rule
        headers = dict(request.headers)
        host = request.host
        path = req_path
        redirect: ModelRedirect | None = None
        status: int | None = None
        notes: list[str] = []
        resp_ops: list[HeaderOps] = []
        mirrors: list[Mirror] = []
        for f in rule.filters:
            if f.type == "RequestHeaderModifier" and f.headers:
                headers = apply_header_ops(f.headers, headers)
            elif f.type == "ResponseHeaderModifier" and f.headers:
                resp_ops.append(f.headers)
            elif f.type == "URLRewrite" and f.rewrite:
                if f.rewrite.hostname:
                    host = f.rewrite.hostname
                if f.rewrite.path:
                    path = modify_path(f.rewrite.path, path, win.prefix)
            elif f.type == "RequestRedirect" and f.redirect:
                r_scheme, r_host, r_port, r_path, location = redirect_target(
                    f.redirect, scheme, mt.strip_port(host), ls.port, path, query, win.prefix
                )
                redirect = ModelRedirect(r_scheme, r_host, r_port, r_path, location)
                status = f.redirect.status_code
            elif f.type == "RequestMirror" and f.mirror:
                why = self.backend_invalid(route, f.mirror.backend)
                if why:
                    notes.append(f"mirror dropped: {why}")
                else:
                    mref = f.mirror.backend
                    mirrors.append(Mirror(mref.name, mref.namespace, mref.port, f.mirror.percent))
            elif f.type == "ExtensionRef":
                status = 500
                notes.append(
                    f"{f.extension}: not resolvable by the model, so requests get an error (500)"
                )
            else:
                notes.append(f"{f.type} filter is not modelled and was ignored")
        return _FilterOutcome(headers, host, path, redirect, status, notes, resp_ops, mirrors)


@dataclass
class _FilterOutcome:
    """A rule's filters applied to a request: the request as forwarded (headers, host, path),
    the redirect and the status they decide, notes, response header ops and mirrors."""

    headers: dict[str, str]
    host: str
    path: str
    redirect: ModelRedirect | None
    status: int | None
    notes: list[str]
    resp_ops: list[HeaderOps]
    mirrors: list[Mirror]


def _backend_requests(
    backends: list[BackendChoice],
    refs: list[BackendRef],
    fo: _FilterOutcome,
    method: str,
    query: str,
    prefix: str | None,
) -> None:
    """Each backend's request and response header ops: the rule's, then its backendRef's
    filters."""
    headers, host, path, resp_ops = fo.headers, fo.host, fo.path, fo.resp_ops
    for b, ref in zip(backends, refs, strict=True):
        b_headers, b_host, b_path = dict(headers), host, path
        b_ops = list(resp_ops)
        for f in ref.filters:
            if f.type == "RequestHeaderModifier" and f.headers:
                b_headers = apply_header_ops(f.headers, b_headers)
            elif f.type == "ResponseHeaderModifier" and f.headers:
                b_ops.append(f.headers)
            elif f.type == "URLRewrite" and f.rewrite:
                b_host = f.rewrite.hostname or b_host
                if f.rewrite.path:
                    b_path = modify_path(f.rewrite.path, b_path, prefix)
        b.request = ModelRequest(method, b_host, b_path + (f"?{query}" if query else ""), b_headers)
        b.response_header_ops = b_ops


def _rule_status(rule: Rule, live: list[BackendChoice], notes: list[str]) -> int:
    """The status of a rule that no filter decided, from its backends (with weight > 0);
    why, in ``notes``."""
    if not rule.backend_refs:
        status = 500
        notes.append("the rule has no backendRefs (500)")
    elif not live:
        status = 500
        notes.append("every backendRef has weight 0 (500)")
    elif any(b.valid and b.endpoints for b in live):
        status = 200
        total = sum(b.weight for b in live)
        bad = sum(b.weight for b in live if not b.valid)
        empty = sum(b.weight for b in live if b.valid and not b.endpoints)
        if bad:
            notes.append(f"{bad / total:.0%} of requests get 500: invalid backendRefs")
        if empty:
            notes.append(f"{empty / total:.0%} of requests get 503: Services without pods")
    elif any(b.valid for b in live):
        status = 503
        notes.append("no pod backs the chosen Services (503: no ready endpoints)")
    else:
        status = 500
        notes.append("every backendRef with weight > 0 is invalid (500)")
    return status


def _response_headers(redirect: ModelRedirect | None, resp_ops: list[HeaderOps]) -> dict[str, str]:
    """The response headers the gateway sets: Location for a redirect, else the rule's
    ResponseHeaderModifier ops."""
    response_headers: dict[str, str] = {}
    if redirect is not None:
        response_headers["Location"] = redirect.location
    else:
        for ops in resp_ops:
            response_headers = apply_header_ops(ops, response_headers)
    return response_headers


def _rule_reason(
    ls: Listener,
    win: _Candidate,
    redirect: ModelRedirect | None,
    status: int,
    live: list[BackendChoice],
    notes: list[str],
) -> str:
    """Why the decision: the listener, route, rule and match, then the redirect or the
    backends, then the notes."""
    route, rule = win.route, win.rule
    host_text = f"hostname {win.hostname}" if win.hostname else "any hostname"
    reason = (
        f"listener {ls.name} (port {ls.port}, {ls.protocol}, hostname {ls.hostname or '(any)'}); "
        f"{route.kind} {route.meta.key} ({host_text}) rule {rule.index} match {win.match_index}: "
        f"{win.match_text}"
    )
    if redirect is not None:
        reason += f"; redirect {status} to {redirect.location}"
    elif status == 200:
        reason += "; backends " + ", ".join(
            f"{b.namespace}/{b.name}:{b.port} weight {b.weight}"
            for b in live
            if b.valid and b.endpoints
        )
    if notes:
        reason += "; " + "; ".join(notes)
    return reason


def _host_key(hostname: str | None, att: Attached) -> tuple[int, ...]:
    """Hostname precedence: the matching (listener ∩ route) hostname, then, when that ties, the
    hostname as written on the route (spec.hostnames: "SHOULD evaluate precedence using the
    original hostnames configured on the Route")."""
    origin = att.origins.get(hostname) if hostname else None
    return (*mt.hostname_rank(hostname), *mt.hostname_rank(origin))


def _virtual_host(attached: list[Attached], hostname: str) -> str | None:
    """The virtual host a request for ``hostname`` lands in, as Envoy Gateway builds them: one
    virtual host per effective hostname of the routes on the listener (of every route kind), and
    Envoy picks the most specific domain that matches (exact, then the longest ``*.`` suffix, then
    ``*``; None stands for ``*``). Rules of routes in other virtual hosts never see the request."""
    best: str | None = None
    for att in attached:
        rh = mt.best_hostname(att.hostnames, hostname)
        if isinstance(rh, str) and (best is None or mt.hostname_rank(rh) > mt.hostname_rank(best)):
            best = rh
    return best


def _hosts_intersect(a: list[str], b: list[str]) -> bool:
    if not a or not b:
        return True
    return any(mt.intersect(x, y) is not None for x in a for y in b)


def _why_lost(c: _Candidate, win: _Candidate, rank_names: tuple[str, ...]) -> str:
    label = f"{c.route.kind} {c.route.meta.key} rule {c.rule.index} match {c.match_index}"
    if c.key[0] != win.key[0]:
        return f"{label}: less specific hostname ({c.hostname or 'any'} vs {win.hostname})"
    if c.key[1] != win.key[1]:
        for name, a, b in zip(rank_names, c.key[1], win.key[1], strict=True):
            if a != b:
                return f"{label}: matches too, but loses on {name} ({-a} vs {-b})"
    if c.key[2] != win.key[2]:
        return (
            f"{label}: ties on specificity; its route is newer ({_describe_age(c.route)} vs "
            f"{_describe_age(win.route)})"
        )
    if c.key[3] != win.key[3]:
        return (
            f"{label}: ties on specificity and age; {win.route.meta.key} sorts first alphabetically"
        )
    if c.key[4] != win.key[4]:
        return f"{label}: ties; rule {win.rule.index} comes first in the route"
    return f"{label}: ties; match {win.match_index} comes first in the rule"


__all__ = [
    "DeploymentInfo",
    "Filter",
    "ListenerInfo",
    "Model",
    "ServiceInfo",
    "ServicePort",
]
