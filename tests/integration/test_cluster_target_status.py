"""How the cluster target reads Gateway, route and Deployment status (no processes).

Condition texts are the ones Envoy Gateway writes (envoyproxy/gateway
internal/gatewayapi/status/gateway.go, internal/gatewayapi/route.go).
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.targets.cluster import deployment_state, gateway_state, route_decided, route_state

EG = "gateway.envoyproxy.io/gatewayclass-controller"
NS = "sbx-demo-ab1c2"


def _cond(type_: str, status: str, reason: str, message: str = "", gen: int = 1) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": "2026-11-26T22:00:00Z",
    }


def _gateway(*conditions: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "kind": "Gateway",
        "metadata": {"name": "eg", "namespace": NS, "generation": generation},
        "status": {"conditions": list(conditions)},
    }


PROGRAMMED = _cond(
    "Programmed",
    "True",
    "Programmed",
    "Address assigned to the Gateway, 1/1 envoy replicas available",
)
ACCEPTED_GW = _cond(
    "Accepted", "True", "Accepted", "The Gateway has been scheduled by Envoy Gateway"
)


def test_gateway_programmed() -> None:
    ready, summary = gateway_state(_gateway(ACCEPTED_GW, PROGRAMMED))
    assert ready
    assert "Programmed=True (Programmed: Address assigned" in summary


@pytest.mark.parametrize(
    ("gateway", "text"),
    [
        (
            _gateway(
                ACCEPTED_GW,
                _cond(
                    "Programmed",
                    "False",
                    "AddressNotAssigned",
                    "No addresses have been assigned to the Gateway",
                ),
            ),
            "Programmed=False (AddressNotAssigned: No addresses have been assigned to the Gateway)",
        ),
        (
            _gateway(
                ACCEPTED_GW,
                _cond("Programmed", "False", "NoResources", "Envoy replicas unavailable"),
            ),
            "NoResources",
        ),
        (_gateway(ACCEPTED_GW, PROGRAMMED, generation=2), "Programmed=True"),  # stale generation
        (_gateway(), "no conditions yet"),
    ],
)
def test_gateway_not_programmed(gateway: dict[str, Any], text: str) -> None:
    ready, summary = gateway_state(gateway)
    assert not ready
    assert text in summary


def test_gateway_listener_problems_are_shown() -> None:
    gw = _gateway(ACCEPTED_GW, PROGRAMMED)
    gw["status"]["listeners"] = [
        {
            "name": "https",
            "conditions": [
                _cond(
                    "ResolvedRefs", "False", "InvalidCertificateRef", "Secret sbx/x does not exist."
                ),
                _cond("Programmed", "True", "Programmed"),
            ],
        }
    ]
    _, summary = gateway_state(gw)
    assert (
        "listener https: ResolvedRefs=False (InvalidCertificateRef: Secret sbx/x does not exist.)"
        in summary
    )


def _route(
    parent_refs: list[dict[str, Any]], parents: list[dict[str, Any]], generation: int = 1
) -> dict[str, Any]:
    return {
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": NS, "generation": generation},
        "spec": {"parentRefs": parent_refs},
        "status": {"parents": parents},
    }


ROUTE_OK = [
    _cond("Accepted", "True", "Accepted", "Route is accepted"),
    _cond(
        "ResolvedRefs", "True", "ResolvedRefs", "Resolved all the Object references for the Route"
    ),
]


def _parent(
    ref: dict[str, Any], conditions: list[dict[str, Any]], controller: str = EG
) -> dict[str, Any]:
    return {"parentRef": ref, "controllerName": controller, "conditions": conditions}


def test_route_accepted_and_resolved() -> None:
    ref = {"name": "eg"}
    ready, summary = route_state(
        _route(
            [ref],
            [
                _parent(
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg"},
                    ROUTE_OK,
                )
            ],
        ),
        EG,
    )
    assert ready
    assert f"parent Gateway {NS}/eg: Accepted=True (Accepted: Route is accepted)" in summary


@pytest.mark.parametrize(
    ("route", "text"),
    [
        (_route([{"name": "eg"}], []), f"no status from {EG} yet"),
        (
            _route(
                [{"name": "eg"}], [_parent({"name": "eg"}, ROUTE_OK, controller="other.io/ctrl")]
            ),
            "no status from",
        ),
        (
            _route(
                [{"name": "eg"}],
                [
                    _parent(
                        {"name": "eg"},
                        [
                            _cond("Accepted", "True", "Accepted", "Route is accepted"),
                            _cond(
                                "ResolvedRefs",
                                "False",
                                "RefNotPermitted",
                                "Backend ref to Service x not permitted by any ReferenceGrant.",
                            ),
                        ],
                    )
                ],
            ),
            "ResolvedRefs=False (RefNotPermitted",
        ),
        (
            _route(
                [{"name": "eg", "sectionName": "http"}],
                [_parent({"name": "eg", "sectionName": "https"}, ROUTE_OK)],
            ),
            "section http: no status",
        ),
        (
            _route(
                [{"name": "eg"}, {"name": "other", "namespace": f"{NS}-infra"}],
                [_parent({"name": "eg"}, ROUTE_OK)],
            ),
            f"parent Gateway {NS}-infra/other: no status",
        ),
        (
            _route([{"name": "eg"}], [_parent({"name": "eg"}, ROUTE_OK)], generation=2),
            "Accepted=True",
        ),
        (_route([], []), "no parentRefs"),
    ],
)
def test_route_not_ready(route: dict[str, Any], text: str) -> None:
    ready, summary = route_state(route, EG)
    assert not ready
    assert text in summary


def test_negative_route_is_ready_once_the_controller_has_spoken() -> None:
    refused = [
        _cond(
            "Accepted",
            "False",
            "NotAllowedByListeners",
            "No listeners included by this parent ref allowed this attachment.",
        ),
        _cond("ResolvedRefs", "True", "ResolvedRefs"),
    ]
    route = _route([{"name": "eg"}], [_parent({"name": "eg"}, refused)])
    assert route_state(route, EG) == (False, route_state(route, EG)[1])
    ready, summary = route_state(route, EG, negative=True)
    assert ready
    assert "NotAllowedByListeners" in summary
    assert not route_state(_route([{"name": "eg"}], []), EG, negative=True)[0]


def test_deployment_available() -> None:
    dep: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "backend", "generation": 1},
        "status": {
            "conditions": [
                _cond(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            ]
        },
    }
    assert deployment_state(dep)[0]
    dep["status"]["conditions"][0]["status"] = "False"
    ready, summary = deployment_state(dep)
    assert not ready and "Available=False (MinimumReplicasAvailable" in summary


def test_timeouts_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.errors import InputError
    from sandbox.targets.cluster import Timeouts

    monkeypatch.setenv("SANDBOX_CLUSTER_READY_TIMEOUT", "42")
    monkeypatch.setenv("SANDBOX_CLUSTER_DELETE_TIMEOUT", "7.5")
    t = Timeouts.from_env()
    assert (t.ready, t.delete, t.apply) == (42.0, 7.5, Timeouts().apply)
    monkeypatch.setenv("SANDBOX_CLUSTER_READY_TIMEOUT", "soon")
    with pytest.raises(InputError, match="SANDBOX_CLUSTER_READY_TIMEOUT"):
        Timeouts.from_env()


def test_parents_that_are_not_gateways_of_the_run_are_not_waited_for() -> None:
    gateways = {(NS, "eg")}
    refs = [
        {"name": "eg"},
        {"name": "missing"},  # no such Gateway: no controller answers for it
        {"name": "ls", "kind": "ListenerSet"},
    ]
    route = _route(refs, [_parent({"name": "eg"}, ROUTE_OK)])
    ready, summary = route_state(route, EG, gateways=gateways)
    assert ready
    assert f"parent Gateway {NS}/missing: not a Gateway of this run" in summary
    assert route_decided(route, EG, gateways=gateways)
    assert not route_state(route, EG)[0]  # without the run's Gateways every parent counts
    only_foreign = _route([{"name": "missing"}], [])
    assert route_state(only_foreign, EG, gateways=gateways)[0]


def test_route_decided_needs_both_conditions_at_the_current_generation() -> None:
    refused = [
        _cond("Accepted", "True", "Accepted", "Route is accepted"),
        _cond("ResolvedRefs", "False", "BackendNotFound", "service x not found"),
    ]
    assert route_decided(_route([{"name": "eg"}], [_parent({"name": "eg"}, refused)]), EG)
    assert not route_decided(
        _route([{"name": "eg"}], [_parent({"name": "eg"}, refused)], generation=2), EG
    )
    assert not route_decided(_route([{"name": "eg"}], [_parent({"name": "eg"}, refused[:1])]), EG)
    assert not route_decided(_route([{"name": "eg"}], []), EG)


def test_pod_summary_names_the_waiting_reason() -> None:
    from sandbox.targets.cluster import pod_summary

    pod = {
        "metadata": {"name": "backend-6b7f9d8c5d-x2x9q"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "backend",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": 'Back-off pulling image "registry.k8s.io/gateway-api/echo-basic:v1.5.1"',
                        }
                    },
                }
            ],
        },
    }
    assert pod_summary(pod) == (
        "backend-6b7f9d8c5d-x2x9q: Pending, ready 0/1, restarts 0, container backend: "
        'ImagePullBackOff (Back-off pulling image "registry.k8s.io/gateway-api/echo-basic:v1.5.1")'
    )
    running = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}}}]}}  # fmt: skip
    assert pod_summary(running) == "p: Running, ready 1/1, restarts 2"
    unscheduled = {"metadata": {"name": "envoy-x"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}  # fmt: skip
    assert pod_summary(unscheduled) == (
        "envoy-x: Pending, ready 0/0, restarts 0, Unschedulable (0/1 nodes are available: "
        "1 Insufficient cpu.)"
    )
