"""gRPC through the local reference gateway (sandbox.targets.local.grpc) on loopback sockets:
the gateway's HTTP/2 hand-off, the model's GRPCRoute decisions, forwarding raw bytes to gRPC
echo pods, and the library's GRPCRoute scenarios end to end."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.echo.wire import SERVICE
from sandbox.probe.grpc import grpc_probe, grpc_send
from sandbox.probe.prober import Prober
from sandbox.probe.types import Address
from sandbox.runner import Runner
from sandbox.scenario.load import load_scenario
from sandbox.targets.local.target import LocalDeployment, LocalTarget

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def _backend(name: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}}}
        spec:
          selector: {{app: {name}}}
          ports:
            - {{port: 8080, targetPort: 3000, appProtocol: kubernetes.io/h2c}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: 1
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              containers:
                - name: echo
                  image: registry.k8s.io/gateway-api/echo-basic:v1.5.1
                  env:
                    - {{name: GRPC_ECHO_SERVER, value: "1"}}
        """)


ROUTES = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg}}
spec:
  gatewayClassName: eg
  listeners:
    - {{name: http, protocol: HTTP, port: 80}}
    - name: https
      protocol: HTTPS
      port: 443
      tls:
        certificateRefs: [{{kind: Secret, group: "", name: grpc-tls}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [grpc.example.com]
  rules:
    - matches:
        - method: {{service: {SERVICE}, method: Echo}}
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{{name: x-added, value: "yes"}}]
            remove: [x-drop]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{{name: x-from-gateway, value: local}}]
      backendRefs:
        - {{name: grpc-v1, port: 8080}}
    - matches:
        - method: {{service: {SERVICE}, method: EchoTwo}}
      backendRefs:
        - {{name: no-such-service, port: 8080}}
    - matches:
        - method: {{service: {SERVICE}, method: EchoTwo}}
          headers: [{{name: lane, value: split}}]
      backendRefs:
        - {{name: grpc-v1, port: 8080, weight: 1}}
        - {{name: grpc-v2, port: 8080, weight: 1}}
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    folder = tmp_path_factory.mktemp("grpc-local")
    (folder / "backends.yaml").write_text(_backend("grpc-v1") + "---\n" + _backend("grpc-v2"))
    (folder / "routes.yaml").write_text(ROUTES)
    (folder / "scenario.yaml").write_text(
        textwrap.dedent("""\
        description: gRPC through the local gateway.
        gateway: eg
        features: [Gateway, GRPCRoute]
        tls: [{secret: grpc-tls, hosts: [grpc.example.com]}]
        checks:
          - name: echo
            request: {host: grpc.example.com, grpc: {method: Echo}}
            expect: {status: 200, backend: grpc-v1}
        """)
    )
    scenario = load_scenario(folder)
    with LocalTarget().deploy(scenario) as dep:
        yield dep


def _gw(dep: LocalDeployment) -> Address:
    return dep.address("eg", 80)


def test_routed_call_with_request_and_response_header_filters(
    deployment: LocalDeployment,
) -> None:
    observed = grpc_probe(
        _gw(deployment),
        "grpc.example.com",
        SERVICE,
        "Echo",
        {"x-drop": "1", "x-keep": "2"},
        timeout=5,
    )
    assert observed.status == 200, observed.summary() + " " + observed.text
    assert observed.pod is not None and observed.pod.startswith("grpc-v1-")
    assert observed.namespace == "default"
    assert observed.request is not None
    assert observed.request.path == f"/{SERVICE}/Echo"
    assert observed.request.host == "grpc.example.com"
    assert observed.request.header("x-added") == "yes"
    assert observed.request.header("x-keep") == "2"
    assert observed.request.header("x-drop") is None
    assert observed.headers.get("x-from-gateway") == "local"


def test_call_over_tls_terminated_by_the_gateway(deployment: LocalDeployment) -> None:
    observed = grpc_probe(
        deployment.address("eg", 443),
        "grpc.example.com",
        SERVICE,
        "Echo",
        {"x-keep": "tls"},
        timeout=5,
        scheme="https",
    )
    assert observed.status == 200, f"{observed.summary()} {observed.text}"
    assert observed.pod is not None and observed.pod.startswith("grpc-v1-")
    assert observed.request is not None
    assert observed.request.host == "grpc.example.com"
    assert observed.request.header("x-keep") == "tls"


def test_tls_to_a_plaintext_listener_is_no_response(deployment: LocalDeployment) -> None:
    observed = grpc_probe(
        _gw(deployment), "grpc.example.com", SERVICE, "Echo", timeout=3, scheme="https"
    )
    assert observed.status is None
    assert observed.error


def test_no_matching_method_is_unimplemented(deployment: LocalDeployment) -> None:
    observed = grpc_probe(_gw(deployment), "grpc.example.com", SERVICE, "EchoThree", timeout=5)
    assert observed.status == 404
    assert observed.pod is None


def test_host_outside_route_hostnames_is_404(deployment: LocalDeployment) -> None:
    observed = grpc_probe(_gw(deployment), "other.example.com", SERVICE, "Echo", timeout=5)
    assert observed.status == 404


def test_missing_service_is_500(deployment: LocalDeployment) -> None:
    observed = grpc_probe(_gw(deployment), "grpc.example.com", SERVICE, "EchoTwo", timeout=5)
    assert observed.status == 500
    assert observed.pod is None


def test_weights_pick_both_backends(deployment: LocalDeployment) -> None:
    seen: Counter[str] = Counter()
    for _ in range(40):
        observed = grpc_probe(
            _gw(deployment), "grpc.example.com", SERVICE, "EchoTwo", {"lane": "split"}, timeout=5
        )
        assert observed.status == 200, observed.text
        assert observed.pod is not None
        seen[observed.pod.rsplit("-", 2)[0]] += 1
    # 1:1 weights; either missing in 40 draws has probability 2 * 2**-40
    assert set(seen) == {"grpc-v1", "grpc-v2"}


# grpc-weights (2.8 s) is left to the library run (`pytest tests scenarios --sandbox-provider
# local`) and to test_weights_pick_both_backends above.
@pytest.mark.parametrize(
    "name",
    [
        "grpc-method-matching",
        "grpc-header-matching",
        "grpc-hostname-matching",
        "listener-allowed-kinds",
        "grpc-over-https",
    ],
)
def test_library_grpc_scenarios_pass_locally(name: str) -> None:
    scenario = load_scenario(LIBRARY / name)
    report = Runner(LocalTarget(), prober=Prober(grpc_send=grpc_send)).run([scenario])
    problems = [
        f"{r.check.name}: {[(m.field, m.expected, m.observed) for m in r.mismatches]}"
        for s in report.scenarios
        for r in s.checks
        if r.status != "passed"
    ]
    assert not problems
    assert report.scenarios[0].error is None
    assert sum(len(s.checks) for s in report.scenarios) == len(scenario.checks)
