from __future__ import annotations

from typing import Any

import pytest

from sandbox.infra.namespaces import (
    RUN_LABEL,
    NamespaceMap,
    apply_order,
    delete_order,
    fit_label,
    is_label,
    logical_namespaces,
    namespace_objects,
    real_namespace,
    rewrite_object,
    rewrite_objects,
    run_namespace,
)

RUN = "sbx-demo-ab1c2"
GW_API = "gateway.networking.k8s.io/v1"


@pytest.mark.parametrize(
    ("scenario", "expected_prefix"),
    [
        ("quickstart", "sbx-quickstart-"),
        ("HTTP_Route.Weights", "sbx-http-route-weights-"),
        ("a" * 80, "sbx-" + "a" * 20 + "-"),
        ("---", "sbx-scenario-"),
        ("x--y", "sbx-x-y-"),
        ("abcdefghijklmnopqrs-uvw", "sbx-abcdefghijklmnopqrs-"),  # cut at a dash: no "--"
    ],
)
def test_run_namespace_is_a_short_valid_label(scenario: str, expected_prefix: str) -> None:
    name = run_namespace(scenario)
    assert name.startswith(expected_prefix)
    assert is_label(name)
    assert len(name) <= 30
    assert len(name) == len(expected_prefix) + 5


def test_run_namespace_is_random_and_takes_a_fixed_suffix() -> None:
    assert len({run_namespace("s") for _ in range(20)}) > 1
    assert run_namespace("s", suffix="zzzzz") == "sbx-s-zzzzz"
    with pytest.raises(ValueError):
        run_namespace("s", suffix="UPPER")


@pytest.mark.parametrize(
    ("logical", "real"),
    [
        (None, RUN),
        ("", RUN),
        ("default", RUN),
        ("web", f"{RUN}-web"),
        ("gateway-conformance-infra", f"{RUN}-gateway-conformance-infra"),
    ],
)
def test_real_namespace(logical: str | None, real: str) -> None:
    assert real_namespace(RUN, logical) == real


def test_long_namespaces_are_hashed_to_valid_distinct_labels() -> None:
    run = "sbx-" + "a" * 20 + "-abcde"
    one = real_namespace(run, "n" * 40 + "-one")
    two = real_namespace(run, "n" * 40 + "-two")
    assert one != two
    for name in (one, two):
        assert is_label(name), name
        assert len(name) == 63
        assert name.startswith(run + "-nnn")
    assert real_namespace(run, "n" * 40 + "-one") == one  # stable


@pytest.mark.parametrize("name", ["ok", "a-b", "x" * 63])
def test_fit_label_keeps_valid_names(name: str) -> None:
    assert fit_label(name) == name


@pytest.mark.parametrize("name", ["x" * 64, "Upper", "a_b", "-a", "a-", "...."])
def test_fit_label_repairs_invalid_names(name: str) -> None:
    fixed = fit_label(name)
    assert is_label(fixed), fixed
    assert fixed != name


def test_namespace_map_both_ways() -> None:
    m = NamespaceMap(RUN)
    assert m.real("web") == f"{RUN}-web"
    assert m.logical(f"{RUN}-web") == "web"
    assert m.logical(RUN) == "default"
    assert m.logical("kube-system") == "kube-system"


def _route(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "r"}, "spec": spec}


# (input object, path into the rewritten object, expected value)
REWRITES: list[tuple[str, dict[str, Any], tuple[Any, ...], Any]] = [
    ("no namespace -> run ns", _route(), ("metadata", "namespace"), RUN),
    (
        "default -> run ns",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"}},
        ("metadata", "namespace"),
        RUN,
    ),
    (
        "other ns -> prefixed",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "web"}},
        ("metadata", "namespace"),
        f"{RUN}-web",
    ),
    ("run label", _route(), ("metadata", "labels", RUN_LABEL), RUN),
    (
        "parentRefs namespace",
        _route(parentRefs=[{"name": "eg", "namespace": "infra"}]),
        ("spec", "parentRefs", 0, "namespace"),
        f"{RUN}-infra",
    ),
    (
        "parentRefs without namespace stay local",
        _route(parentRefs=[{"name": "eg"}]),
        ("spec", "parentRefs", 0),
        {"name": "eg"},
    ),
    (
        "backendRefs namespace default",
        _route(rules=[{"backendRefs": [{"name": "b", "port": 8080, "namespace": "default"}]}]),
        ("spec", "rules", 0, "backendRefs", 0, "namespace"),
        RUN,
    ),
    (
        "requestMirror backendRef",
        _route(
            rules=[
                {
                    "filters": [
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": {"name": "m", "namespace": "web"}},
                        }
                    ]
                }
            ]
        ),
        ("spec", "rules", 0, "filters", 0, "requestMirror", "backendRef", "namespace"),
        f"{RUN}-web",
    ),
    (
        "requestMirror inside a backendRef's filters",
        _route(
            rules=[
                {
                    "backendRefs": [
                        {
                            "name": "b",
                            "filters": [
                                {"requestMirror": {"backendRef": {"name": "m", "namespace": "x"}}}
                            ],
                        }
                    ]
                }
            ]
        ),
        (
            "spec",
            "rules",
            0,
            "backendRefs",
            0,
            "filters",
            0,
            "requestMirror",
            "backendRef",
            "namespace",
        ),
        f"{RUN}-x",
    ),
    (
        "ReferenceGrant from",
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "g", "namespace": "web"},
            "spec": {
                "from": [
                    {
                        "group": "gateway.networking.k8s.io",
                        "kind": "HTTPRoute",
                        "namespace": "default",
                    }
                ],
                "to": [{"group": "", "kind": "Service", "name": "b"}],
            },
        },
        ("spec", "from", 0, "namespace"),
        RUN,
    ),
    (
        "ReferenceGrant to untouched",
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "g", "namespace": "web"},
            "spec": {"from": [], "to": [{"group": "", "kind": "Service", "name": "b"}]},
        },
        ("spec", "to", 0),
        {"group": "", "kind": "Service", "name": "b"},
    ),
    (
        "certificateRefs namespace",
        {
            "apiVersion": GW_API,
            "kind": "Gateway",
            "metadata": {"name": "eg"},
            "spec": {
                "gatewayClassName": "theirs",
                "listeners": [
                    {
                        "name": "https",
                        "port": 443,
                        "protocol": "HTTPS",
                        "tls": {"certificateRefs": [{"name": "cert", "namespace": "certs"}]},
                    }
                ],
            },
        },
        ("spec", "listeners", 0, "tls", "certificateRefs", 0, "namespace"),
        f"{RUN}-certs",
    ),
    (
        "gatewayClassName replaced",
        {
            "apiVersion": GW_API,
            "kind": "Gateway",
            "metadata": {"name": "eg"},
            "spec": {"gatewayClassName": "x"},
        },
        ("spec", "gatewayClassName"),
        "sandbox-class",
    ),
    (
        "allowedRoutes from=Selector kept, metadata.name label rewritten",
        {
            "apiVersion": GW_API,
            "kind": "Gateway",
            "metadata": {"name": "eg"},
            "spec": {
                "listeners": [
                    {
                        "name": "http",
                        "port": 80,
                        "protocol": "HTTP",
                        "allowedRoutes": {
                            "namespaces": {
                                "from": "Selector",
                                "selector": {
                                    "matchLabels": {
                                        "kubernetes.io/metadata.name": "infra",
                                        "team": "a",
                                    }
                                },
                            }
                        },
                    }
                ]
            },
        },
        ("spec", "listeners", 0, "allowedRoutes", "namespaces"),
        {
            "from": "Selector",
            "selector": {
                "matchLabels": {"kubernetes.io/metadata.name": f"{RUN}-infra", "team": "a"}
            },
        },
    ),
    (
        "matchExpressions on metadata.name",
        {
            "apiVersion": GW_API,
            "kind": "Gateway",
            "metadata": {"name": "eg"},
            "spec": {
                "listeners": [
                    {
                        "allowedRoutes": {
                            "namespaces": {
                                "from": "Selector",
                                "selector": {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/metadata.name",
                                            "operator": "In",
                                            "values": ["a", "default"],
                                        }
                                    ]
                                },
                            }
                        }
                    }
                ]
            },
        },
        (
            "spec",
            "listeners",
            0,
            "allowedRoutes",
            "namespaces",
            "selector",
            "matchExpressions",
            0,
            "values",
        ),
        [f"{RUN}-a", RUN],
    ),
    (
        "RoleBinding ServiceAccount subject",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "rb"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "web"}],
        },
        ("subjects", 0, "namespace"),
        f"{RUN}-web",
    ),
    (
        "cluster-scoped objects get no namespace",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "c"},
        },
        ("metadata",),
        {"name": "c", "labels": {RUN_LABEL: RUN}},
    ),
    (
        "core objects' specs are not walked",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"x": {"name": "n", "namespace": "keep"}}},
        },
        ("spec", "template", "x", "namespace"),
        "keep",
    ),
]


@pytest.mark.parametrize(
    ("obj", "path", "expected"), [r[1:] for r in REWRITES], ids=[r[0] for r in REWRITES]
)
def test_rewrite_object(obj: dict[str, Any], path: tuple[Any, ...], expected: Any) -> None:
    before = repr(obj)
    out = rewrite_object(obj, RUN, "sandbox-class")
    assert out is not None
    node: Any = out
    for key in path:
        node = node[key]
    assert node == expected
    assert repr(obj) == before, "the input must not be modified"


def test_gateway_class_is_dropped() -> None:
    gc = {"apiVersion": GW_API, "kind": "GatewayClass", "metadata": {"name": "eg"}, "spec": {}}
    assert rewrite_object(gc, RUN, "eg") is None
    assert rewrite_objects([gc], RUN, "eg") == []


MANIFEST: list[dict[str, Any]] = [
    {"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "web"}},
    {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "g"},
    },
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
    {"apiVersion": GW_API, "kind": "Gateway", "metadata": {"name": "eg"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web", "labels": {"team": "w"}}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "namespace": "certs"}},
    {"apiVersion": GW_API, "kind": "GatewayClass", "metadata": {"name": "eg"}},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "ro"}},
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "default", "labels": {"a": "b"}},
    },
    {"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "r2"}},
]


def test_apply_and_delete_order() -> None:
    kinds = [o["kind"] for o in apply_order(MANIFEST)]
    assert kinds == [
        "Namespace",
        "Namespace",
        "Secret",
        "Role",
        "Service",
        "Deployment",
        "Widget",
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "HTTPRoute",
        "ReferenceGrant",
    ]
    # stable within a kind: file order
    routes = [o["metadata"]["name"] for o in apply_order(MANIFEST) if o["kind"] == "HTTPRoute"]
    assert routes == ["r", "r2"]
    assert [o["kind"] for o in delete_order(MANIFEST)] == list(reversed(kinds))


def test_rewrite_objects_drops_namespaces_and_classes_and_orders() -> None:
    out = rewrite_objects(MANIFEST, RUN, "eg")
    kinds = [o["kind"] for o in out]
    assert "Namespace" not in kinds and "GatewayClass" not in kinds
    assert kinds[0] == "Secret" and kinds[-1] == "ReferenceGrant"
    assert {o["metadata"]["namespace"] for o in out} == {RUN, f"{RUN}-web", f"{RUN}-certs"}


def test_logical_and_namespace_objects() -> None:
    assert logical_namespaces(MANIFEST) == ["certs", "web"]
    nss = namespace_objects(MANIFEST, RUN)
    assert [n["metadata"]["name"] for n in nss] == [RUN, f"{RUN}-certs", f"{RUN}-web"]
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in nss}
    assert labels[RUN] == {"a": "b", RUN_LABEL: RUN}
    assert labels[f"{RUN}-web"] == {"team": "w", RUN_LABEL: RUN}
    assert labels[f"{RUN}-certs"] == {RUN_LABEL: RUN}  # used, not declared: created anyway
    assert all(n["kind"] == "Namespace" and "namespace" not in n["metadata"] for n in nss)
