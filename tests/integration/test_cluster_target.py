"""ClusterTarget end to end against the fakes: `sandbox up` on fake k3d/kubectl/Docker, then
scenarios deployed, probed through a (fake) kubectl port-forward that relays to a real loopback
echo backend, and cleaned up.

The fake kubectl simulates Envoy Gateway's status and data planes (tests/fakes/eg_controller.py)
and port-forward (tests/fakes/kubectl_pf.py).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import FakeWorld
from sandbox.echo.http import EchoServer
from sandbox.errors import ClusterError, InputError, TargetUnreachable, WaitTimeout
from sandbox.infra.controllers.envoy_gateway import EnvoyGateway
from sandbox.infra.kube import APIServerUnreachable, Kubectl, KubectlError
from sandbox.runner import Runner
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Scenario, TlsSecret
from sandbox.targets.cluster import ClusterTarget, Timeouts

SUFFIX = "abcde"
RUN_NS = f"sbx-xroute-{SUFFIX}"
APPS_NS = f"{RUN_NS}-apps"
FAST = Timeouts(apply=30, ready=10, data_plane=10, port_forward=10, delete=10, poll=0.1)

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: apps}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: someone-elses}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg}
spec:
  gatewayClassName: someone-elses
  listeners:
    - name: http
      protocol: HTTP
      port: 80
      allowedRoutes: {namespaces: {from: All}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend, namespace: apps}
spec:
  parentRefs: [{name: eg, namespace: default}]
  hostnames: [www.example.com]
  rules:
    - backendRefs: [{name: backend, port: 3000}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: apps}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 3000, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: apps}
spec:
  replicas: 1
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
        - name: backend
          image: registry.k8s.io/gateway-api/echo-basic:v1.5.1
"""

SCENARIO = """\
description: Requests for www.example.com reach the echo backend in namespace apps.
gateway: eg
consecutive: 3
timeout: 8
checks:
  - name: routed across namespaces
    request: {host: www.example.com, path: /get}
    expect:
      status: 200
      backend: backend
      namespace: apps
      request: {host: www.example.com, path: /get}
  - name: still routed after the port-forward dropped
    request: {host: www.example.com, path: /again}
    expect: {status: 200, backend: backend, namespace: apps, request: {path: /again}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeWorld]:
    with FakeWorld(tmp_path_factory.mktemp("world")) as w:
        result = w.sandbox("up")
        assert result.returncode == 0, result.stderr
        yield w


@pytest.fixture
def env(world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fakes' environment for kubectl calls made from this process; yields FAKE_PF_STATE."""
    for key in ("FAKE_STATE_DIR", "PATH"):
        monkeypatch.setenv(key, world.env[key])
    for key in (
        "FAKE_EG_NOT_PROGRAMMED",
        "FAKE_EG_UNSCHEDULABLE",
        "FAKE_STUCK_NAMESPACES",
        "FAKE_PF_DIE_AFTER",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FAKE_PF_STATE", str(tmp_path / "pf"))
    yield tmp_path / "pf"


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoServer]:
    with EchoServer(pod="backend-6b7f9d8c5d-x2x9q", namespace=APPS_NS, service="backend") as e:
        monkeypatch.setenv("FAKE_PF_UPSTREAM", f"127.0.0.1:{e.port}")
        yield e


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    folder = tmp_path / "xroute"
    folder.mkdir()
    (folder / "app.yaml").write_text(MANIFESTS)
    (folder / "scenario.yaml").write_text(SCENARIO)
    return load_scenario(folder)


def _target(world: FakeWorld, **kw: Any) -> ClusterTarget:
    kubectl = Kubectl(world.bin / "kubectl", world.kubeconfig(), "k3d-sandbox")
    lines: list[str] = []
    kw.setdefault("timeouts", FAST)
    target = ClusterTarget(
        kubectl, EnvoyGateway(), "eg", namespace_suffix=SUFFIX, progress=lines.append, **kw
    )
    target.lines = lines  # type: ignore[attr-defined]
    return target


def _objects(world: FakeWorld) -> dict[str, Any]:
    return dict(world.state()["objects"]["sandbox"])


def _run_namespaces(world: FakeWorld) -> list[str]:
    return [k for k in _objects(world) if k.startswith(f"Namespace//{RUN_NS}")]


def _data_planes(world: FakeWorld) -> list[str]:
    # the fake computes data planes from the Gateways present; none may be left behind
    result = world.tool(
        "kubectl", "--kubeconfig", str(world.kubeconfig()), "--context", "k3d-sandbox",
        "get", "services", "-n", "envoy-gateway-system",
        "-l", f"gateway.envoyproxy.io/owning-gateway-namespace={RUN_NS}", "-o", "name",
    )  # fmt: skip
    return result.stdout.split()


def _port_forwards(pf_state: Path) -> list[str]:
    path = pf_state / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def test_runner_flow_survives_a_dropped_port_forward_and_cleans_up(
    world: FakeWorld,
    env: Path,
    echo: EchoServer,
    scenario: Scenario,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the first kubectl port-forward loses the pod after 2 connections (mid check), like kubectl
    # >= 1.23 does when the envoy pod goes away; the supervisor restarts it on the same port
    monkeypatch.setenv("FAKE_PF_DIE_AFTER", "2")
    monkeypatch.setenv("FAKE_PF_DIE_RUNS", "1")
    target = _target(world)
    before = len(world.calls("kubectl"))
    report = Runner(target).run([scenario])
    sr = report.scenarios[0]
    assert sr.error is None and sr.cleanup_error is None, (sr.error, sr.cleanup_error)
    assert [r.passed for r in sr.checks] == [True, True], [
        (r.error, r.mismatches, r.attempts, r.observed) for r in sr.checks
    ]
    assert report.exit_code == 0
    assert sr.namespace == RUN_NS

    runs = _port_forwards(env)
    assert len(runs) == 2, runs
    assert "-n envoy-gateway-system svc/envoy-sbx-xroute-abcde-eg-" in runs[0]
    assert runs[0].endswith(" :80")
    assert runs[1].endswith(":80") and not runs[1].endswith(" :80")  # same local port again

    assert _run_namespaces(world) == []
    assert _data_planes(world) == []
    joined = "\n".join(target.lines)  # type: ignore[attr-defined]
    assert f"creating namespaces {RUN_NS}, {APPS_NS}" in joined
    assert f"deleting namespaces {RUN_NS} {APPS_NS}" in joined
    # the cleanup: both namespaces in one call, before the objects (the namespace controller
    # takes a deleted namespace up only 5 s after the request), then the wait watches them
    calls = [c[c.index("--context") + 2 :] for c in world.calls("kubectl")[before:]]
    ns_delete = calls.index(
        ["delete", "namespace", RUN_NS, APPS_NS, "--ignore-not-found=true", "--wait=false",
         "--timeout=10s"]
    )  # fmt: skip
    objects_delete = next(i for i, c in enumerate(calls) if c[:1] == ["delete"] and "-" in c)
    assert ns_delete < objects_delete
    waits = [c for c in calls[objects_delete:] if c[:1] == ["wait"] and "--for=delete" in c]
    assert waits and waits[0][1:3] == [f"namespace/{RUN_NS}", f"namespace/{APPS_NS}"], waits


def test_a_port_forward_that_gave_up_ends_the_run_with_exit_3_not_a_30s_check(
    world: FakeWorld,
    env: Path,
    echo: EchoServer,
    scenario: Scenario,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every kubectl port-forward loses the pod after one connection; one restart is allowed
    monkeypatch.setenv("FAKE_PF_DIE_AFTER", "1")
    target = _target(world, max_port_forward_restarts=1)
    for check in scenario.checks:
        check.timeout = 30.0
    report = Runner(target).run([scenario])
    sr = report.scenarios[0]
    assert report.exit_code == 3
    assert isinstance(sr.error, TargetUnreachable), sr.error
    message = str(sr.error)
    assert "the port-forward to Gateway default/eg :80, were refused" in message
    assert "its kubectl port-forward gave up" in message and "lost connection to pod" in message
    assert [r.status for r in sr.checks] == ["failed", "skipped"]
    assert "port-forward to Gateway default/eg :80" in (sr.diagnostics or "")
    assert sr.checks[0].elapsed < 15, sr.checks[0].elapsed  # its 30 s were not sat out
    assert _run_namespaces(world) == []  # and the run was cleaned up


def test_keep_leaves_rewritten_objects_and_tls_secrets(
    world: FakeWorld, env: Path, echo: EchoServer, scenario: Scenario
) -> None:
    scenario.tls = [TlsSecret(secret="tls-cert", hosts=["www.example.com"], namespace="apps")]
    target = _target(world, keep=True)
    with target.deploy(scenario) as dep:
        assert dep.namespace == RUN_NS
        assert dep.namespace_of("apps") == APPS_NS
        assert dep.namespace_of("default") == RUN_NS
        address = dep.address("eg", 80)
        assert dep.address("default/eg", 80) == address
        with pytest.raises(InputError, match="no listener on port 8080"):
            dep.address("eg", 8080)
        with pytest.raises(InputError, match="no Gateway 'nope'"):
            dep.address("nope", 80)
        text = dep.diagnostics()
    objects = _objects(world)
    gateway = objects[f"Gateway/{RUN_NS}/eg"]
    assert gateway["spec"]["gatewayClassName"] == "eg"
    assert gateway["metadata"]["labels"]["gateway-sandbox/run"] == RUN_NS
    route = objects[f"HTTPRoute/{APPS_NS}/backend"]
    assert route["spec"]["parentRefs"] == [{"name": "eg", "namespace": RUN_NS}]
    assert objects[f"Namespace//{APPS_NS}"]["metadata"]["labels"] == {
        "team": "apps",
        "gateway-sandbox/run": RUN_NS,
    }
    secret = objects[f"Secret/{APPS_NS}/tls-cert"]
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key"}
    assert not any(k.startswith("GatewayClass//someone-elses") for k in objects)
    assert "Gateway default/eg: Accepted=True" in text
    assert "Programmed=True (Programmed: Address assigned to the Gateway" in text
    assert "HTTPRoute apps/backend: parent Gateway" in text and "Route is accepted" in text
    assert "fake log line" in text  # controller log tail
    assert "port-forward to Gateway default/eg :80" in text
    assert any("kept namespaces" in line for line in target.lines)  # type: ignore[attr-defined]

    # and the kept run can still be removed
    target.keep = False
    target.cleanup(dep)
    assert _run_namespaces(world) == []


def test_gateway_never_programmed_times_out_with_last_conditions_and_cleans_up(
    world: FakeWorld, env: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EG_NOT_PROGRAMMED", "eg")
    target = _target(world, timeouts=Timeouts(ready=0.5, poll=0.1, delete=10))
    with pytest.raises(WaitTimeout) as info, target.deploy(scenario):
        pytest.fail("deploy must not yield")
    message = str(info.value)
    assert "timed out after 0.5s waiting for 1 of 3 objects" in message
    assert "Gateway default/eg: Accepted=True (Accepted: The Gateway has been scheduled" in message
    assert (
        "Programmed=False (AddressNotAssigned: No addresses have been assigned to the Gateway)"
        in message
    )
    assert "log tail" in message
    assert info.value.exit_code == 3
    assert _run_namespaces(world) == []


def test_a_data_plane_waiting_for_cpu_is_waited_for_and_named_when_the_wait_ends(
    world: FakeWorld, env: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a 2-core node shows while earlier runs' Envoy pods are still terminating: the
    # scheduler places the pod once they are gone, so the wait goes on (the fake never frees
    # the room: the wait's own timeout ends it, naming the pod and the scheduler's reason)
    monkeypatch.setenv(
        "FAKE_EG_UNSCHEDULABLE",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod.",
    )
    # longer than STUCK_LOOK_INTERVAL, so the look for stuck pods has run and let it be
    target = _target(world, timeouts=Timeouts(ready=3.0, poll=0.1, delete=10))
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as info, target.deploy(scenario):
        pytest.fail("deploy must not yield")
    assert time.monotonic() - started >= 3.0
    message = str(info.value)
    assert "Programmed=False (NoResources: Envoy replicas unavailable)" in message
    assert (
        f"data-plane pod envoy-gateway-system/envoy-{RUN_NS}-eg-" in message
        and ": Pending, ready 0/0, restarts 0, Unschedulable (0/1 nodes are available: "
        "1 Insufficient cpu."
        in message
    ), message
    assert _run_namespaces(world) == []


def test_a_data_plane_no_node_will_take_fails_the_wait_at_once_naming_the_pod(
    world: FakeWorld, env: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FAKE_EG_UNSCHEDULABLE",
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
    )
    target = _target(world, timeouts=Timeouts(ready=30, poll=0.1, delete=10))
    started = time.monotonic()
    with pytest.raises(ClusterError) as info, target.deploy(scenario):
        pytest.fail("deploy must not yield")
    assert time.monotonic() - started < 15  # not the 30 s timeout
    message = str(info.value)
    assert "1 pod(s) cannot start" in message
    assert "Unschedulable: 0/1 nodes are available: 1 node(s) had untolerated taint" in message
    assert "describe node" in (info.value.hint or "")
    assert _run_namespaces(world) == []


def test_an_api_server_gone_during_the_ready_wait_is_named_at_once_not_sat_out(
    world: FakeWorld, env: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("FAKE_EG_NOT_PROGRAMMED", "eg")  # the ready wait would take its 60 s
    monkeypatch.delenv("FAKE_KUBECTL_REFUSE", raising=False)

    def progress(line: str) -> None:
        if line.startswith("waiting for"):  # the API server goes away now
            monkeypatch.setenv("FAKE_KUBECTL_REFUSE", "always")

    kubectl = Kubectl(
        world.bin / "kubectl", world.kubeconfig(), "k3d-sandbox", unreachable_grace=1.0
    )
    target = ClusterTarget(
        kubectl,
        EnvoyGateway(),
        "eg",
        namespace_suffix=SUFFIX,
        progress=progress,
        timeouts=Timeouts(ready=60, poll=0.1, delete=60),
    )
    start = time.monotonic()
    try:
        with pytest.raises(APIServerUnreachable) as info, target.deploy(scenario):
            pytest.fail("deploy must not yield")
        elapsed = time.monotonic() - start
    finally:
        monkeypatch.delenv("FAKE_KUBECTL_REFUSE")
        world.tool(
            "kubectl",
            "--kubeconfig",
            str(world.kubeconfig()),
            "--context",
            "k3d-sandbox",
            "delete",
            "namespace",
            RUN_NS,
            APPS_NS,
            "--ignore-not-found",
        )
    # neither the ready wait (60 s) nor the cleanup's (60 s) was sat out
    assert elapsed < 10, elapsed
    message = str(info.value)
    assert info.value.exit_code == 3
    server = kubectl.server()
    assert "refuses connections" in message and server is not None and server in message
    assert (
        f"while waiting for 1 Deployment, 1 Gateway, 1 HTTPRoute in namespace {RUN_NS} "
        "to be ready" in message
    )


def test_backend_never_available_times_out_naming_it(
    world: FakeWorld, env: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NOT_READY", "deployment/backend")
    target = _target(world, timeouts=Timeouts(ready=0.5, poll=0.1, delete=10))
    with pytest.raises(WaitTimeout) as info, target.deploy(scenario):
        pytest.fail("deploy must not yield")
    assert (
        "Deployment apps/backend: Available=False (MinimumReplicasUnavailable: Deployment does "
        "not have minimum availability.)"
    ) in str(info.value)
    assert _run_namespaces(world) == []


def test_route_not_accepted_waits_settles_or_is_listed_as_unaccepted(
    world: FakeWorld, env: Path, scenario: Scenario
) -> None:
    for obj in scenario.objects:  # the listener only admits routes from its own namespace
        if obj["kind"] == "Gateway":
            obj["spec"]["listeners"][0]["allowedRoutes"] = {"namespaces": {"from": "Same"}}
    # a status that never settles within the wait: a timeout naming the route's conditions
    target = _target(world, timeouts=Timeouts(ready=0.5, settle=30, poll=0.1, delete=10))
    with pytest.raises(WaitTimeout) as info, target.deploy(scenario):
        pytest.fail("deploy must not yield")
    message = str(info.value)
    assert "HTTPRoute apps/backend: parent Gateway default/eg: Accepted=False" in message
    assert "(NotAllowedByListeners: No listeners included by this parent ref allowed" in message
    assert info.value.hint is not None and "unaccepted_routes" in info.value.hint
    assert _run_namespaces(world) == []

    # the same status, unchanged for `settle` seconds: taken as it is, the checks decide
    target = _target(world, timeouts=Timeouts(ready=10, settle=0.3, poll=0.1, delete=10))
    with target.deploy(scenario) as dep:
        text = dep.diagnostics()
        assert "Accepted=False (NotAllowedByListeners" in text
        # and why, in the scenario's own (logical) names, as `sandbox explain` says it
        assert f"not attached (reference model): {scenario.path / 'app.yaml'}:" in text
        assert (
            "HTTPRoute apps/backend is attached to no listener: parentRef Gateway "
            "default/eg: not accepted (listener http: allowedRoutes from Same: route "
            "namespace apps is not default)"
        ) in text
    notes = [line for line in target.lines if "stays so" in line]  # type: ignore[attr-defined]
    assert len(notes) == 1 and notes[0].startswith("HTTPRoute apps/backend is not Accepted")

    # listed under unaccepted_routes in scenario.yaml, as the hint says: no settling needed
    scenario.file.write_text(
        scenario.file.read_text().replace(
            "gateway: eg\n", "gateway: eg\nunaccepted_routes: [apps/backend]\n"
        )
    )
    listed = load_scenario(scenario.path)
    assert listed.unaccepted_routes == ["apps/backend"]
    for obj in listed.objects:  # the same listener as above
        if obj["kind"] == "Gateway":
            obj["spec"]["listeners"][0]["allowedRoutes"] = {"namespaces": {"from": "Same"}}
    scenario = listed
    target = _target(world, timeouts=Timeouts(ready=10, settle=30, poll=0.1, delete=10))
    with target.deploy(scenario):
        pass
    assert not [line for line in target.lines if "stays so" in line]  # type: ignore[attr-defined]
    assert _run_namespaces(world) == []


def test_failed_cleanup_makes_the_run_fail(
    world: FakeWorld,
    env: Path,
    echo: EchoServer,
    scenario: Scenario,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_STUCK_NAMESPACES", RUN_NS)
    target = _target(world, timeouts=Timeouts(ready=10, poll=0.1, delete=0.5))
    report = Runner(target).run([scenario])
    sr = report.scenarios[0]
    assert [r.passed for r in sr.checks] == [True, True]
    assert isinstance(sr.cleanup_error, WaitTimeout)
    assert "NamespaceFinalizersRemaining=True" in str(sr.cleanup_error)
    assert report.exit_code == 3
    # release the stuck namespaces for the next tests
    monkeypatch.delenv("FAKE_STUCK_NAMESPACES")
    for name in (RUN_NS, APPS_NS):
        target.kubectl.delete("namespace", name, wait=False)
    assert _run_namespaces(world) == []


def test_ctrl_c_inside_the_run_still_cleans_up(
    world: FakeWorld, env: Path, echo: EchoServer, scenario: Scenario
) -> None:
    target = _target(world)
    with pytest.raises(KeyboardInterrupt), target.deploy(scenario) as dep:
        dep.address("eg", 80)
        assert _run_namespaces(world)
        raise KeyboardInterrupt
    assert _run_namespaces(world) == []
    assert _data_planes(world) == []


def test_gateway_class_must_exist_and_be_served_by_the_controller(
    world: FakeWorld, env: Path, scenario: Scenario
) -> None:
    kubectl = Kubectl(world.bin / "kubectl", world.kubeconfig(), "k3d-sandbox")
    target = ClusterTarget(kubectl, EnvoyGateway(), "no-such-class", timeouts=FAST)
    with pytest.raises(ClusterError, match="GatewayClass no-such-class does not exist"):
        target.deploy(scenario).__enter__()
    kubectl.apply(
        [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": "istio"},
                "spec": {"controllerName": "istio.io/gateway-controller"},
            }
        ]
    )
    target = ClusterTarget(kubectl, EnvoyGateway(), "istio", timeouts=FAST)
    with pytest.raises(
        ClusterError, match=r"is served by istio\.io/gateway-controller, not by envoy"
    ):
        target.deploy(scenario).__enter__()
    kubectl.delete("gatewayclass", "istio")
    assert _run_namespaces(world) == []


def test_apply_failure_is_reported_and_cleaned_up(
    world: FakeWorld, env: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "xroute"
    folder.mkdir(exist_ok=True)
    (folder / "app.yaml").write_text(
        MANIFESTS
        + textwrap.dedent(
            """\
            ---
            apiVersion: gateway.networking.k8s.io/v1beta1
            kind: ReferenceGrant
            metadata: {name: g, namespace: apps}
            spec: {from: [], to: []}
            """
        )
    )
    (folder / "scenario.yaml").write_text(SCENARIO)
    scenario = load_scenario(folder)
    target = _target(world)
    # the fake cluster has no ReferenceGrant CRD: kubectl says "ensure CRDs are installed first"
    with pytest.raises(KubectlError) as info, target.deploy(scenario):
        pytest.fail("deploy must not yield")
    assert 'no matches for kind "ReferenceGrant"' in str(info.value)
    assert info.value.exit_code == 3
    assert _run_namespaces(world) == []


CLI_SCENARIO = """\
description: Requests for www.example.com reach the echo backend in namespace apps.
gateway: eg
consecutive: 2
timeout: 8
checks:
  - name: routed across namespaces
    request: {host: www.example.com, path: /get}
    expect: {status: 200, backend: backend, request: {host: www.example.com, path: /get}}
"""


def test_sandbox_run_cli_exits_3_when_cleanup_fails_after_passing_checks(
    world: FakeWorld, echo: EchoServer, tmp_path: Path
) -> None:
    folder = tmp_path / "xroute"
    folder.mkdir()
    (folder / "app.yaml").write_text(MANIFESTS)
    (folder / "scenario.yaml").write_text(CLI_SCENARIO)
    result = world.sandbox(
        "run", str(folder), "-o", "json", timeout=120,
        FAKE_PF_UPSTREAM=f"127.0.0.1:{echo.port}", FAKE_PF_STATE=str(tmp_path / "pf"),
        FAKE_STUCK_NAMESPACES="sbx-xroute-", SANDBOX_CLUSTER_DELETE_TIMEOUT="1",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["exit_code"] == 3
    scenario = report["scenarios"][0]
    assert [c["status"] for c in scenario["checks"]] == ["passed"]
    assert scenario["namespace"].startswith("sbx-xroute-")
    assert "NamespaceFinalizersRemaining=True" in scenario["cleanup_error"]
    assert "port-forward svc/envoy-sbx-xroute-" in result.stderr
    kubeconfig = str(world.kubeconfig())
    stuck = [k for k in world.state()["objects"]["sandbox"] if k.startswith("Namespace//sbx-")]
    assert len(stuck) == 2
    for key in stuck:
        world.tool(
            "kubectl", "--kubeconfig", kubeconfig, "--context", "k3d-sandbox",
            "delete", "namespace", key.split("/")[-1],
        )  # fmt: skip
    assert not [k for k in world.state()["objects"]["sandbox"] if k.startswith("Namespace//sbx-")]
