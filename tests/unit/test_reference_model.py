"""The reference model end to end over small manifests, one test (or table) per spec rule."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sandbox.errors import InputError
from sandbox.reference.decision import Decision
from sandbox.reference.model import Model

BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: eg
  listeners:
    - {name: http, protocol: HTTP, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: v1}
spec: {selector: {app: v1}, ports: [{port: 8080, targetPort: 3000}]}
---
apiVersion: v1
kind: Service
metadata: {name: v2}
spec: {selector: {app: v2}, ports: [{port: 8080, targetPort: 3000}]}
---
apiVersion: v1
kind: Service
metadata: {name: v3}
spec: {selector: {app: v3}, ports: [{port: 8080, targetPort: 3000}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend-v1}
spec: {replicas: 2, template: {metadata: {labels: {app: v1}}, spec: {containers: [{name: c, env: [{name: GRPC_ECHO_SERVER, value: "1"}]}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend-v2}
spec: {template: {metadata: {labels: {app: v2}}}}
"""


def model(extra: str, base: str = BASE) -> Model:
    objs: list[dict[str, Any]] = [o for o in yaml.safe_load_all(base + "\n---\n" + extra) if o]
    return Model.from_objects(objs)


def route(
    name: str,
    rules: str,
    hostnames: str = "",
    parent: str = "{name: gw}",
    ns: str = "",
    extra_meta: str = "",
) -> str:
    meta = (
        f"name: {name}"
        + (f", namespace: {ns}" if ns else "")
        + (f", {extra_meta}" if extra_meta else "")
    )
    hosts = f"\n  hostnames: {hostnames}" if hostnames else ""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{{meta}}}
spec:
  parentRefs: [{parent}]{hosts}
  rules: {rules}
---"""


def to(svc: str, **kw: Any) -> str:
    extra = "".join(f", {k}: {v}" for k, v in kw.items())
    return f"{{backendRefs: [{{name: {svc}, port: 8080{extra}}}]"


def decide(
    m: Model,
    path: str = "/",
    host: str = "example.com",
    method: str = "GET",
    port: int = 80,
    **headers: str,
) -> Decision:
    return m.decide("default/gw", port, method, host, path, headers)


# ------------------------------------------------------------------ basics


def test_no_route_is_404_and_the_route_backend_is_200() -> None:
    m = model(route("r", f"[{to('v1')}, matches: [{{path: {{type: PathPrefix, value: /a}}}}]}}]"))
    d = decide(m, "/a/b")
    assert (d.status, d.route, d.rule, d.listener) == (200, "default/r", 0, "http")
    assert [(b.name, b.port, b.weight) for b in d.backends] == [("v1", 8080, 1)]
    assert d.backends[0].deployments == ["backend-v1"]
    d = decide(m, "/ab")
    assert d.status == 404 and d.route is None
    assert "does not match PathPrefix /a" in d.reason


def test_rule_without_matches_matches_everything_and_unknown_port_is_404() -> None:
    m = model(route("r", f"[{to('v1')}}}]"))
    assert decide(m, "/anything?x=1").status == 200
    d = decide(m, "/", port=8080)
    assert d.status == 404 and d.listener is None and "no HTTP listener on port 8080" in d.reason


def test_to_json_has_exactly_the_contract_keys() -> None:
    d = decide(model(route("r", f"[{to('v1')}}}]")))
    assert list(d.to_json()) == [
        "status", "gateway", "listener", "route", "rule", "backends", "request",
        "response_headers", "redirect", "reason",
    ]  # fmt: skip


# ------------------------------------------------------------------ attachment


def test_parent_ref_namespace_defaults_to_the_route_namespace() -> None:
    ns = "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---"
    m = model(ns + route("r", f"[{to('v1', namespace='default')}}}]", ns="other"))
    assert decide(m).status == 404
    assert any("no such Gateway" in n for n in m.notes)


@pytest.mark.parametrize(
    ("allowed", "labels", "attached"),
    [
        ("{namespaces: {from: Same}}", "{}", False),
        ("{namespaces: {from: All}}", "{}", True),
        ("{namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}", "{team: a}", True),
        ("{namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}", "{team: b}", False),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: [{key: team, operator: In, values: [a, c]}]}}}",
            "{team: c}",
            True,
        ),
        (
            "{namespaces: {from: Selector, selector: {matchLabels: {kubernetes.io/metadata.name: other}}}}",
            "{}",
            True,
        ),
    ],
)
def test_allowed_routes_namespaces(allowed: str, labels: str, attached: bool) -> None:
    base = BASE.replace(
        "{name: http, protocol: HTTP, port: 80}",
        f"{{name: http, protocol: HTTP, port: 80, allowedRoutes: {allowed}}}",
    )
    ns = f"\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: other, labels: {labels}}}\n---"
    grant = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}]
  to: [{group: "", kind: Service}]
---"""
    m = model(
        ns
        + grant
        + route(
            "r",
            f"[{to('v1', namespace='default')}}}]",
            parent="{name: gw, namespace: default}",
            ns="other",
        ),
        base,
    )
    assert (decide(m).status == 200) is attached


def test_allowed_routes_kinds() -> None:
    base = BASE.replace(
        "{name: http, protocol: HTTP, port: 80}",
        "{name: http, protocol: HTTP, port: 80, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}",
    )
    m = model(route("r", f"[{to('v1')}}}]"), base)
    assert decide(m).status == 404
    assert any("allowedRoutes.kinds does not include HTTPRoute" in n for n in m.notes)


TWO_LISTENERS = BASE.replace(
    "    - {name: http, protocol: HTTP, port: 80}",
    "    - {name: http, protocol: HTTP, port: 80}\n    - {name: alt, protocol: HTTP, port: 8080}",
)


@pytest.mark.parametrize(
    ("parent", "on80", "on8080"),
    [
        ("{name: gw}", 200, 200),
        ("{name: gw, sectionName: alt}", 404, 200),
        ("{name: gw, port: 80}", 200, 404),
        ("{name: gw, sectionName: alt, port: 80}", 404, 404),
    ],
)
def test_section_name_and_port(parent: str, on80: int, on8080: int) -> None:
    m = model(route("r", f"[{to('v1')}}}]", parent=parent), TWO_LISTENERS)
    assert decide(m, port=80).status == on80
    assert decide(m, port=8080).status == on8080


def test_route_without_intersecting_hostname_does_not_attach() -> None:
    base = BASE.replace(
        "{name: http, protocol: HTTP, port: 80}",
        "{name: http, protocol: HTTP, port: 80, hostname: '*.example.com'}",
    )
    m = model(route("r", f"[{to('v1')}}}]", hostnames="[example.net]"), base)
    assert decide(m, host="a.example.com").status == 404
    assert any("intersects" in n for n in m.notes)


NS_OTHER = "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other, labels: {team: b}}\n---"
SAME = BASE.replace(
    "{name: http, protocol: HTTP, port: 80}",
    "{name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: Same}}}",
)
SELECTOR = BASE.replace(
    "{name: http, protocol: HTTP, port: 80}",
    "{name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: Selector, "
    "selector: {matchLabels: {team: a}}}}}",
)
KINDS = BASE.replace(
    "{name: http, protocol: HTTP, port: 80}",
    "{name: http, protocol: HTTP, port: 80, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}",
)
HOSTNAME = BASE.replace(
    "{name: http, protocol: HTTP, port: 80}",
    "{name: http, protocol: HTTP, port: 80, hostname: '*.example.com'}",
)


@pytest.mark.parametrize(
    ("extra", "base", "why"),
    [
        (
            route("r", f"[{to('v1')}}}]", parent="{name: nope}"),
            BASE,
            "parentRef Gateway default/nope: no such Gateway (Gateways in the manifests: default/gw)",
        ),
        (
            route("r", f"[{to('v1')}}}]", parent="{name: gw, sectionName: https}"),
            TWO_LISTENERS,
            "parentRef Gateway default/gw sectionName=https: not accepted (sectionName https names no "
            "listener of Gateway default/gw (listeners: http:80, alt:8080))",
        ),
        (
            route("r", f"[{to('v1')}}}]", parent="{name: gw, port: 443}"),
            TWO_LISTENERS,
            "parentRef Gateway default/gw port=443: not accepted (port 443 is the port of no listener "
            "of Gateway default/gw (listeners: http:80, alt:8080))",
        ),
        (
            route("r", f"[{to('v1')}}}]", parent="{name: gw, sectionName: alt, port: 80}"),
            TWO_LISTENERS,
            "not accepted (listener http: sectionName alt does not name it; listener "
            "alt: port 80 is not the listener port 8080)",
        ),
        (
            NS_OTHER
            + route("r", f"[{to('v1')}}}]", parent="{name: gw, namespace: default}", ns="other"),
            SAME,
            "not accepted (listener http: allowedRoutes from Same: route namespace other is not "
            "default)",
        ),
        (
            NS_OTHER
            + route("r", f"[{to('v1')}}}]", parent="{name: gw, namespace: default}", ns="other"),
            SELECTOR,
            "not accepted (listener http: allowedRoutes selector does not select namespace other)",
        ),
        (
            route("r", f"[{to('v1')}}}]"),
            KINDS,
            "not accepted (listener http: allowedRoutes.kinds does not include HTTPRoute)",
        ),
        (
            route("r", f"[{to('v1')}}}]", hostnames="[example.net]"),
            HOSTNAME,
            "not accepted (listener http: no route hostname (example.net) intersects listener "
            "hostname *.example.com)",
        ),
    ],
)
def test_a_route_attached_nowhere_says_why(extra: str, base: str, why: str) -> None:
    m = model(extra, base)
    [u] = m.unattached()
    assert u.route.startswith("HTTPRoute ") and u.route.endswith("/r")
    assert why in u.describe(), u.describe()
    assert u.describe().startswith(f"{u.route} is attached to no listener: ")


def test_attached_routes_and_half_attached_ones_are_not_listed() -> None:
    m = model(
        route("r", f"[{to('v1')}}}]")
        + route("two", f"[{to('v1')}}}]", parent="{name: gw}, {name: nope}")
    )
    assert m.unattached() == []
    assert any("no such Gateway" in n for n in m.notes)  # the lost parentRef is still noted


def test_a_route_losing_to_the_other_kind_everywhere_is_listed() -> None:
    m = model(GRPC + "---" + route("h", f"[{to('v2')}}}]", hostnames="[grpc.example.com]"))
    [u] = m.unattached()
    assert u.route == "HTTPRoute default/h"
    assert (
        "not accepted on listener default/gw/http: hostnames overlap a route of the other "
        "kind" in u.describe()
    )


# ------------------------------------------------------------------ listeners


LISTENERS = BASE.replace(
    "    - {name: http, protocol: HTTP, port: 80}",
    """    - {name: empty, protocol: HTTP, port: 80}
    - {name: wild, protocol: HTTP, port: 80, hostname: '*.example.com'}
    - {name: wild2, protocol: HTTP, port: 80, hostname: '*.bar.example.com'}
    - {name: exact, protocol: HTTP, port: 80, hostname: foo.bar.example.com}
    - {name: tls, protocol: HTTPS, port: 443, hostname: secure.example.com}""",
)


@pytest.mark.parametrize(
    ("host", "listener"),
    [
        ("foo.bar.example.com", "exact"),
        ("x.bar.example.com", "wild2"),
        ("bar.example.com", "wild"),
        ("example.com", "empty"),
        ("other.org:80", "empty"),
    ],
)
def test_listener_hostname_precedence(host: str, listener: str) -> None:
    m = model(route("r", f"[{to('v1')}}}]"), LISTENERS)
    d = decide(m, host=host)
    assert (d.status, d.listener) == (200, listener)


def test_listener_isolation_request_never_falls_back_to_a_less_specific_listener() -> None:
    # the route attaches only to `empty`; foo.bar.example.com belongs to `exact` -> 404
    m = model(route("r", f"[{to('v1')}}}]", parent="{name: gw, sectionName: empty}"), LISTENERS)
    assert decide(m, host="foo.bar.example.com").status == 404
    assert decide(m, host="example.com").status == 200


def test_indistinct_listeners_are_conflicted_and_not_accepted() -> None:
    base = BASE.replace(
        "    - {name: http, protocol: HTTP, port: 80}",
        "    - {name: a, protocol: HTTP, port: 80, hostname: x.example.com}\n"
        "    - {name: b, protocol: HTTP, port: 80, hostname: x.example.com}\n"
        "    - {name: c, protocol: HTTP, port: 80}",
    )
    m = model(route("r", f"[{to('v1')}}}]"), base)
    assert [x.name for x in m.listeners("gw")] == ["c"]
    d = decide(m, host="x.example.com")
    assert (d.status, d.listener) == (200, "c")


def test_original_route_hostname_breaks_an_intersection_tie() -> None:
    # listener foo.example.com: both routes intersect to foo.example.com; the route that wrote
    # the precise hostname wins over the wildcard one (GatewayRouteHostnameIntersectionPrecedence)
    base = BASE.replace(
        "{name: http, protocol: HTTP, port: 80}",
        "{name: http, protocol: HTTP, port: 80, hostname: foo.example.com}",
    )
    routes = route("a-wild", f"[{to('v1')}}}]", hostnames="['*.example.com']") + route(
        "b-exact", f"[{to('v2')}}}]", hostnames="[foo.example.com]"
    )
    d = decide(model(routes, base), host="foo.example.com")
    assert d.route == "default/b-exact"
    assert any("less specific hostname" in x for x in d.losers)


def test_https_listener_by_scheme() -> None:
    m = model(route("r", f"[{to('v1')}}}]"), LISTENERS)
    d = m.decide("default/gw", 443, "GET", "secure.example.com", "/", {}, scheme="https")
    assert (d.status, d.listener) == (200, "tls")
    assert (
        m.decide("default/gw", 443, "GET", "other.example.com", "/", {}, scheme="https").status
        == 404
    )


# ------------------------------------------------------------------ precedence


def _winner(
    routes: str, path: str = "/", host: str = "example.com", **headers: str
) -> tuple[str | None, int | None]:
    d = decide(model(routes), path, host, "GET", 80, **headers)
    return d.route, d.rule


def test_precedence_hostname_specificity_first() -> None:
    routes = route(
        "wild",
        f"[{to('v1')}, matches: [{{path: {{type: Exact, value: /x}}}}]}}]",
        hostnames="['*.example.com']",
    ) + route("exact", f"[{to('v2')}}}]", hostnames="[a.example.com]")
    assert _winner(routes, "/x", "a.example.com") == ("default/exact", 0)
    assert _winner(routes, "/x", "b.example.com") == ("default/wild", 0)


def test_precedence_more_specific_hostname_is_a_virtual_host_without_fall_through() -> None:
    # Envoy Gateway: one virtual host per hostname (internal/xds/translator/translator.go
    # addRouteToRouteConfig); Envoy picks the most specific domain and answers 404 when no route
    # of that virtual host matches, instead of trying the *.example.com route.
    routes = route(
        "exact",
        f"[{to('v2')}, matches: [{{path: {{value: /only}}}}]}}]",
        hostnames="[a.example.com]",
    ) + route("wild", f"[{to('v1')}}}]", hostnames="['*.example.com']")
    d = decide(model(routes), "/other", "a.example.com")
    assert (d.status, d.route) == (404, None)
    assert any("virtual host is a.example.com" in x for x in d.losers)
    assert _winner(routes, "/only", "a.example.com") == ("default/exact", 0)
    assert _winner(routes, "/other", "b.example.com") == ("default/wild", 0)


def test_no_hostnames_is_the_catch_all_virtual_host() -> None:
    routes = route("any", f"[{to('v1')}}}]") + route(
        "exact",
        f"[{to('v2')}, matches: [{{path: {{value: /only}}}}]}}]",
        hostnames="[a.example.com]",
    )
    assert decide(model(routes), "/other", "a.example.com").status == 404
    assert _winner(routes, "/other", "c.example.org") == ("default/any", 0)


@pytest.mark.parametrize(
    ("loser", "winner", "path"),
    [
        # Exact path beats any prefix, however long
        ("{path: {type: PathPrefix, value: /exact}}", "{path: {type: Exact, value: /exact}}", "/exact"),
        # the longer prefix wins
        ("{path: {value: /a}}", "{path: {value: /a/b}}", "/a/b"),
        # same path: a method match beats more header matches
        ("{path: {value: /a}, headers: [{name: h1, value: '1'}, {name: h2, value: '2'}]}", "{path: {value: /a}, method: GET}", "/a"),
        # same path, no method: more header matches beat query matches
        ("{path: {value: /a}, headers: [{name: h1, value: '1'}], queryParams: [{name: q, value: '1'}]}",
         "{path: {value: /a}, headers: [{name: h1, value: '1'}, {name: h2, value: '2'}]}", "/a?q=1"),
        # then more query param matches win
        ("{path: {value: /a}}", "{path: {value: /a}, queryParams: [{name: q, value: '1'}]}", "/a?q=1"),
    ],
)  # fmt: skip
def test_precedence_match_criteria_across_routes(loser: str, winner: str, path: str) -> None:
    # the loser's route comes first in the input (older) and sorts first by name, so only the
    # match criterion can make the other one win
    routes = route("a-loser", f"[{to('v1')}, matches: [{loser}]}}]") + route(
        "b-winner", f"[{to('v2')}, matches: [{winner}]}}]"
    )
    assert _winner(routes, path, h1="1", h2="2") == ("default/b-winner", 0)
    # and the same inside one route: rule order does not matter either
    one = route("one", f"[{to('v1')}, matches: [{loser}]}}, {to('v2')}, matches: [{winner}]}}]")
    assert _winner(one, path, h1="1", h2="2") == ("default/one", 1)


def test_precedence_query_criterion_explicitly() -> None:
    routes = route("a", f"[{to('v1')}, matches: [{{path: {{value: /a}}}}]}}]") + route(
        "b",
        f"[{to('v2')}, matches: [{{path: {{value: /a}}, queryParams: [{{name: q, value: '1'}}]}}]}}]",
    )
    assert _winner(routes, "/a?q=1") == ("default/b", 0)
    assert _winner(routes, "/a?q=2") == ("default/a", 0)


def test_precedence_ties_oldest_creation_timestamp_then_alphabetical_then_rule_order() -> None:
    same = f"[{to('v1')}}}, {to('v2')}}}]"
    older = route("zzz", same, extra_meta="creationTimestamp: '2020-09-08T01:02:03Z'")
    newer = route("aaa", same, extra_meta="creationTimestamp: '2020-09-08T01:02:04Z'")
    assert _winner(newer + older) == ("default/zzz", 0)
    # no timestamps: input order stands for age
    assert _winner(route("zzz", same) + route("aaa", same)) == ("default/zzz", 0)
    assert _winner(route("aaa", same) + route("zzz", same)) == ("default/aaa", 0)
    # equal timestamps: namespace/name alphabetical
    t = "creationTimestamp: '2020-09-08T01:02:03Z'"
    assert _winner(route("zzz", same, extra_meta=t) + route("aaa", same, extra_meta=t)) == (
        "default/aaa",
        0,
    )
    # within a route the first rule wins
    d = decide(model(route("r", same)))
    assert (d.rule, d.backends[0].name) == (0, "v1")
    assert any("rule 0 comes first" in x for x in d.losers)


def test_loser_explanations_name_the_criterion() -> None:
    routes = route("a", f"[{to('v1')}, matches: [{{path: {{value: /a}}}}]}}]") + route(
        "b", f"[{to('v2')}, matches: [{{path: {{type: Exact, value: /a}}}}]}}]"
    )
    d = decide(model(routes), "/a")
    assert d.route == "default/b"
    assert any("path match type" in x for x in d.losers)


# ------------------------------------------------------------------ backends


def test_weights_and_zero_weight_and_all_zero() -> None:
    m = model(
        route(
            "r",
            "[{backendRefs: [{name: v1, port: 8080, weight: 70}, {name: v2, port: 8080, weight: 30}, {name: v3, port: 8080, weight: 0}]}]",
        )
    )
    d = decide(m)
    assert d.status == 200
    assert d.backend_shares() == {"default/v1": 0.7, "default/v2": 0.3}
    m = model(route("r", "[{backendRefs: [{name: v1, port: 8080, weight: 0}]}]"))
    assert decide(m).status == 500


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("{name: v1, port: 8080, kind: Unknown, group: example.com}", "InvalidKind"),
        ("{name: missing, port: 8080}", "BackendNotFound"),
        ("{name: v1, port: 9999}", "BackendNotFound"),
        ("{name: v1, port: 8080, namespace: other}", "RefNotPermitted"),
    ],
)
def test_invalid_backend_refs_get_500(ref: str, why: str) -> None:
    other = "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: v1, namespace: other}\nspec: {ports: [{port: 8080}]}\n---"
    d = decide(model(other + route("r", f"[{{backendRefs: [{ref}]}}]")))
    assert d.status == 500
    assert not d.backends[0].valid and why in d.backends[0].invalid_reason
    # half valid, half invalid: 200 for the valid share, 500 for the rest
    d = decide(model(other + route("r", f"[{{backendRefs: [{ref}, {{name: v2, port: 8080}}]}}]")))
    assert d.status == 200 and d.backend_shares() == {"500": 0.5, "default/v2": 0.5}


def test_reference_grant_allows_cross_namespace_backend() -> None:
    other = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec: {selector: {app: web}, ports: [{port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: other}
spec: {template: {metadata: {labels: {app: web}}}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service, name: web}]
---"""
    d = decide(
        model(other + route("r", "[{backendRefs: [{name: web, namespace: other, port: 8080}]}]"))
    )
    assert d.status == 200 and d.backends[0].valid
    wrong = other.replace("name: web}]", "name: not-web}]")
    assert (
        decide(
            model(
                wrong + route("r", "[{backendRefs: [{name: web, namespace: other, port: 8080}]}]")
            )
        ).status
        == 500
    )


def test_service_without_pods_is_503_unless_workloads_are_unknown() -> None:
    # v3 selects no Deployment: "no ready endpoints" -> 503 (SHOULD, backendRefs doc)
    d = decide(model(route("r", f"[{to('v3')}}}]")))
    assert d.status == 503 and not d.backends[0].endpoints
    d = decide(
        model(route("r", "[{backendRefs: [{name: v3, port: 8080}, {name: v1, port: 8080}]}]"))
    )
    assert d.status == 200 and d.backend_shares() == {"503": 0.5, "default/v1": 0.5}
    # with a workload kind the model does not read, pods are not modelled at all
    pod = "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: v3}}\n---"
    assert decide(model(pod + route("r", f"[{to('v3')}}}]"))).status == 200


def test_rule_without_backend_refs_is_500() -> None:
    d = decide(model(route("r", "[{matches: [{path: {value: /}}]}]")))
    assert d.status == 500


# ------------------------------------------------------------------ filters through the model


def test_request_header_modifier_and_response_header_modifier() -> None:
    rules = """[{filters: [
        {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Set, value: s}], add: [{name: X-Add, value: b}], remove: [X-Remove]}},
        {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-Resp, value: r}]}}],
      backendRefs: [{name: v1, port: 8080}]}]"""
    d = decide(
        model(route("r", rules)),
        "/",
        "example.com",
        "GET",
        80,
        **{"X-Add": "a", "X-Remove": "x", "X-Set": "old"},
    )
    assert d.request.headers == {"X-Add": "a,b", "X-Set": "s"}
    assert d.response_headers == {"X-Resp": "r"}


def test_backend_level_filters_apply_only_to_that_backend() -> None:
    rules = """[{backendRefs: [
        {name: v1, port: 8080, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-B, value: one}]}}]},
        {name: v2, port: 8080}]}]"""
    d = decide(model(route("r", rules)))
    assert d.backends[0].request is not None and d.backends[0].request.headers == {"X-B": "one"}
    assert d.backends[1].request is not None and d.backends[1].request.headers == {}


def test_url_rewrite_prefix_and_hostname() -> None:
    rules = """[{matches: [{path: {type: PathPrefix, value: /prefix/one}}],
      filters: [{type: URLRewrite, urlRewrite: {hostname: new.example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}],
      backendRefs: [{name: v1, port: 8080}]}]"""
    d = decide(model(route("r", rules)), "/prefix/one/two?x=1")
    assert (d.request.host, d.request.path) == ("new.example.org", "/one/two?x=1")
    d = decide(model(route("r", rules)), "/prefix/one")
    assert d.request.path == "/one"


def test_request_redirect_through_the_model() -> None:
    rules = """[{filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, statusCode: 301}}]}]"""
    d = decide(model(route("r", rules)), "/a?b=c", host="www.example.com")
    assert d.status == 301 and d.redirect is not None
    assert (d.redirect.scheme, d.redirect.host, d.redirect.port, d.redirect.path) == (
        "http",
        "example.org",
        None,
        "/a",
    )
    assert d.redirect.location == "http://example.org/a?b=c"
    assert d.response_headers == {"Location": "http://example.org/a?b=c"}
    d = decide(model(route("r", "[{filters: [{type: RequestRedirect, requestRedirect: {}}]}]")))
    assert d.status == 302


def test_mirror_percent_fraction_and_timeouts() -> None:
    rules = """[{filters: [
        {type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, percent: 25}},
        {type: RequestMirror, requestMirror: {backendRef: {name: v3, port: 8080}, fraction: {numerator: 1, denominator: 2}}},
        {type: RequestMirror, requestMirror: {backendRef: {name: nope, port: 8080}}}],
      timeouts: {request: 1m30s, backendRequest: 500ms},
      backendRefs: [{name: v1, port: 8080}]}]"""
    d = decide(model(route("r", rules)))
    assert [(m.name, m.percent) for m in d.mirrors] == [("v2", 25.0), ("v3", 50.0)]
    assert (d.request_timeout, d.backend_timeout) == (90.0, 0.5)
    assert "mirror dropped" in d.reason


# ------------------------------------------------------------------ gRPC


GRPC = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
    - matches: [{method: {service: pkg.Echo, method: Echo}}]
      backendRefs: [{name: v1, port: 8080}]
    - matches: [{method: {service: pkg.Echo}}]
      backendRefs: [{name: v2, port: 8080}]
    - matches: [{method: {type: RegularExpression, service: 'pkg\\..*', method: 'Ec.*'}, headers: [{name: x-v, value: '3'}]}]
      backendRefs: [{name: v3, port: 8080, weight: 2}]
"""


def test_grpc_service_method_precedence_and_headers() -> None:
    m = model(GRPC)
    d = m.decide_grpc("default/gw", 80, "grpc.example.com", "pkg.Echo", "Echo", {})
    assert (d.status, d.rule, d.grpc_status, d.request.path) == (200, 0, 0, "/pkg.Echo/Echo")
    assert m.decide_grpc("default/gw", 80, "grpc.example.com", "pkg.Echo", "Other", {}).rule == 1
    assert (
        m.decide_grpc("default/gw", 80, "grpc.example.com", "pkg.Other", "Echo2", {"X-V": "3"}).rule
        == 2
    )
    d = m.decide_grpc("default/gw", 80, "grpc.example.com", "x.Y", "Z", {})
    assert (d.status, d.grpc_status) == (404, 12)
    assert (
        m.decide_grpc("default/gw", 80, "other.example.com", "pkg.Echo", "Echo", {}).status == 404
    )


def test_http_and_grpc_routes_are_not_merged_and_overlap_rejects_the_newer() -> None:
    m = model(GRPC + "---" + route("h", f"[{to('v2')}}}]", hostnames="[grpc.example.com]"))
    assert decide(m, host="grpc.example.com").status == 404  # the HTTPRoute is newer: rejected
    assert any("other kind" in n for n in m.notes)


# ------------------------------------------------------------------ input errors and services


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ("[{matches: [{path: {type: Bogus, value: /}}], backendRefs: [{name: v1, port: 8080}]}]", "spec.rules[0].matches[0].path.type"),
        ("[{matches: [{path: {type: Exact, value: nope}}]}]", "spec.rules[0].matches[0].path.value"),
        ("[{backendRefs: [{name: v1}]}]", "spec.rules[0].backendRefs[0].port"),
        ("[{filters: [{type: RequestRedirect, requestRedirect: {}}], backendRefs: [{name: v1, port: 8080}]}]", "spec.rules[0]"),
        ("[{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]}]", "spec.rules[0].filters[0].requestRedirect.statusCode"),
        ("[{timeouts: {request: 10 seconds}, backendRefs: [{name: v1, port: 8080}]}]", "spec.rules[0].timeouts.request"),
        ("[{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}]", "spec.rules[0].matches"),
    ],
)  # fmt: skip
def test_invalid_routes_are_input_errors_naming_object_and_field(bad: str, field: str) -> None:
    with pytest.raises(InputError) as e:
        model(route("broken", bad))
    assert e.value.field == field
    assert "HTTPRoute default/broken" in str(e.value)


def test_input_error_carries_the_source_file_and_line() -> None:
    objs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": "x"}}
    ]
    with pytest.raises(InputError) as e:
        Model.from_objects(objs, ["apps.yaml:12"])
    assert (e.value.file, e.value.line, e.value.field) == ("apps.yaml", 12, "spec.ports")


def test_services_and_their_deployments() -> None:
    m = model("")
    svc = {s.name: s for s in m.services}
    assert svc["v1"].deployments == ["backend-v1"] and svc["v3"].deployments == []
    assert svc["v1"].ports[0].port == 8080 and svc["v1"].ports[0].target_port == 3000
    (dep,) = m.backends_of("default", "v1")
    assert (dep.name, dep.replicas, dep.env) == ("backend-v1", 2, {"GRPC_ECHO_SERVER": "1"})
    assert m.gateways() == ["default/gw"]
    assert [(x.name, x.port, x.protocol) for x in m.listeners("gw")] == [("http", 80, "HTTP")]


def test_unknown_gateway_is_an_input_error() -> None:
    with pytest.raises(InputError):
        model("").decide("default/nope", 80, "GET", "h", "/", {})
