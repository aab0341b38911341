"""verify_scenario: the model's answer against each check's expectation, one message per field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.reference.verify import echo_delay, verify_scenario
from sandbox.scenario.model import (
    Check,
    Expect,
    ExpectedRedirect,
    ExpectedRequest,
    Request,
    Scenario,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "reference"

EXTRA = """
apiVersion: v1
kind: Service
metadata: {name: v2}
spec: {selector: {app: v2}, ports: [{port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend-v2}
spec: {replicas: 3, template: {metadata: {labels: {app: v2}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend-v2b}
spec: {replicas: 1, template: {metadata: {labels: {app: v2}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra}
spec:
  parentRefs: [{name: eg}]
  hostnames: [extra.example.com]
  rules:
    - matches: [{path: {value: /split}}]
      backendRefs: [{name: backend, port: 3000, weight: 1}, {name: v2, port: 8080, weight: 1}]
    - matches: [{path: {value: /broken}}]
      backendRefs: [{name: backend, port: 3000}, {name: missing, port: 8080}]
    - matches: [{path: {value: /redirect}}]
      filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org}}]
    - matches: [{path: {value: /headers}}]
      filters:
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Set, value: s}], remove: [X-Gone]}}
        - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-Resp, value: added}]}}
      backendRefs: [{name: backend, port: 3000}]
    - matches: [{path: {value: /slow}}]
      timeouts: {request: 500ms}
      backendRefs: [{name: backend, port: 3000}]
"""


def scenario(*checks: Check) -> Scenario:
    objects: list[dict[str, Any]] = [
        o
        for o in yaml.safe_load_all((DATA / "quickstart.yaml").read_text() + "\n---\n" + EXTRA)
        if o
    ]
    for i, c in enumerate(checks):
        c.line = 10 + i
    return Scenario(
        name="t",
        path=Path("scenarios/t"),
        file=Path("scenarios/t/scenario.yaml"),
        description="d",
        gateway="eg",
        manifests=[],
        objects=objects,
        checks=list(checks),
    )


def check(name: str, request: Request, expect: Expect, **kw: Any) -> Check:
    return Check(name=name, request=request, expect=expect, **kw)


def test_agreeing_checks_give_no_messages() -> None:
    s = scenario(
        check(
            "routed",
            Request(host="www.example.com", path="/get?x=1", headers={"X-A": "b"}),
            Expect(
                status=[200],
                backend="backend",
                namespace="default",
                request=ExpectedRequest(
                    path="/get?x=1",
                    host="www.example.com",
                    method="GET",
                    headers={"x-a": "b", "X-Forwarded-Proto": "http"},
                ),
            ),
        ),
        check("404", Request(host="nope.example.com"), Expect(status=[404])),
        check(
            "split",
            Request(host="extra.example.com", path="/split"),
            Expect(
                status=[200], backends={"backend": 0.5, "backend-v2": 0.375, "backend-v2b": 0.125}
            ),
        ),
        check(
            "redirect",
            Request(host="extra.example.com", path="/redirect"),
            Expect(
                status=[302],
                redirect=ExpectedRedirect(scheme="https", host="example.org", path="/redirect"),
            ),
        ),
        check(
            "headers",
            Request(
                host="extra.example.com",
                path="/headers",
                headers={"X-Gone": "1"},
                backend_response_headers={"X-Resp": "orig"},
            ),
            Expect(
                status=[200],
                request=ExpectedRequest(headers={"X-Set": "s"}, absent_headers=["X-Gone"]),
                headers={"X-Resp": "orig,added", "Content-Type": "application/json"},
            ),
        ),
        check(
            "slow", Request(host="extra.example.com", path="/slow?delay=1s"), Expect(status=[504])
        ),
        check(
            "fast",
            Request(host="extra.example.com", path="/slow?delay=100ms"),
            Expect(status=[200]),
        ),
        check(
            "broken", Request(host="extra.example.com", path="/broken"), Expect(status=[200, 500])
        ),
    )
    assert verify_scenario(s) == []


def test_each_disagreement_is_reported_with_file_line_field_and_both_values() -> None:
    s = scenario(
        check("wrong status", Request(host="www.example.com"), Expect(status=[404])),
        check(
            "wrong backend",
            Request(host="www.example.com"),
            Expect(status=[200], backend="infra-backend-v1"),
        ),
        check(
            "wrong namespace",
            Request(host="www.example.com"),
            Expect(status=[200], namespace="other"),
        ),
        check(
            "wrong path",
            Request(host="www.example.com", path="/a"),
            Expect(status=[200], request=ExpectedRequest(path="/b", absent_headers=["X-A"])),
        ),
    )
    s.checks[3].request.headers = {"X-A": "1"}
    msgs = verify_scenario(s)
    assert len(msgs) == 5, msgs
    assert msgs[0].startswith(
        "scenarios/t/scenario.yaml:10: check 'wrong status': status: model says 200, expected 404"
    )
    assert (
        "scenario.yaml:11: check 'wrong backend': backend: model says 'backend', expected 'infra-backend-v1'"
        in msgs[1]
    )
    assert "namespace: model says 'default', expected 'other'" in msgs[2]
    assert "request.path: model says '/a', expected '/b'" in msgs[3]
    assert "request.absent_headers.X-A: model says '1', expected 'absent'" in msgs[4]


def test_shares_redirect_and_partial_500_disagreements() -> None:
    s = scenario(
        check(
            "shares",
            Request(host="extra.example.com", path="/split"),
            Expect(status=[200], backends={"backend": 0.7, "backend-v2": 0.3}),
        ),
        check(
            "redirect",
            Request(host="extra.example.com", path="/redirect"),
            Expect(status=[302], redirect=ExpectedRedirect(scheme="http", port=8443)),
        ),
        check("flaky", Request(host="extra.example.com", path="/broken"), Expect(status=[200])),
        check(
            "timeout",
            Request(host="extra.example.com", path="/slow?delay=2s"),
            Expect(status=[200]),
        ),
    )
    msgs = verify_scenario(s)
    fields = [m.split(": ")[2] for m in msgs]
    assert fields == [
        "backends.backend",
        "backends.backend-v2",
        "backends.backend-v2b",
        "redirect.scheme",
        "redirect.port",
        "status",
        "status",
    ], msgs
    assert "model says [200, 500], expected 200" in msgs[5]
    assert "model says 504, expected 200" in msgs[6]


def test_echo_delay_parses_go_durations() -> None:
    assert echo_delay("/p?delay=1s") == 1.0
    assert echo_delay("/p?a=1&delay=1m30s") == 90.0
    assert echo_delay("/p?delay=250ms") == 0.25
    assert echo_delay("/p?delay=soon") is None
    assert echo_delay("/p") is None


def test_grpc_checks_go_through_decide_grpc() -> None:
    from sandbox.scenario.model import GrpcRequest

    s = scenario(
        check(
            "no grpc route",
            Request(host="www.example.com", grpc=GrpcRequest(service="pkg.Echo", method="Echo")),
            Expect(status=[404]),
        ),
        check(
            "wrong",
            Request(host="www.example.com", grpc=GrpcRequest(service="pkg.Echo", method="Echo")),
            Expect(status=[200]),
        ),
    )
    msgs = verify_scenario(s)
    assert len(msgs) == 1 and "check 'wrong': status: model says 404, expected 200" in msgs[0]
