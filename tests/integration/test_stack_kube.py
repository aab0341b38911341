"""Kubectl and the Envoy Gateway controller against the fake kubectl, in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import FAKES, FakeWorld
from sandbox.errors import WaitTimeout
from sandbox.infra.controllers.envoy_gateway import EnvoyGateway
from sandbox.infra.kube import APIServerUnreachable, Kubectl, KubectlError, NotFound


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeWorld]:
    with FakeWorld(tmp_path_factory.mktemp("kube")) as w:
        result = w.sandbox("up")
        assert result.returncode == 0, result.stderr
        yield w


@pytest.fixture
def kubectl(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> Kubectl:
    for key in ("PATH", "FAKE_STATE_DIR", "HOME", "DOCKER_HOST"):
        monkeypatch.setenv(key, world.env[key])
    return Kubectl(FAKES / "kubectl", world.kubeconfig(), "k3d-sandbox", timeout=20)


def _service(name: str, gateway: str, namespace: str, ports: list[int]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "envoy-gateway-system",
            "labels": {
                "app.kubernetes.io/name": "envoy",
                "gateway.envoyproxy.io/owning-gateway-name": gateway,
                "gateway.envoyproxy.io/owning-gateway-namespace": namespace,
            },
        },
        "spec": {
            "type": "ClusterIP",
            "ports": [{"port": p, "targetPort": p + 10000} for p in ports],
        },
    }


def test_apply_objects_prints_serverside_lines_and_get_json(kubectl: Kubectl) -> None:
    lines = kubectl.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "k-test"}}]
    )
    assert lines == ["namespace/k-test serverside-applied"]
    obj = kubectl.get_json("namespace", "k-test")
    assert obj is not None and obj["metadata"]["name"] == "k-test"
    assert kubectl.get_json("namespace", "nope") is None
    assert kubectl.get_json("pods", namespace="k-test") == {
        "apiVersion": "v1",
        "items": [],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def test_errors_are_typed(kubectl: Kubectl) -> None:
    with pytest.raises(NotFound, match=r'deployments.apps "ghost" not found'):
        kubectl.run(["get", "deployment", "ghost", "-n", "default"])
    with pytest.raises(KubectlError, match="ensure CRDs are installed first"):
        kubectl.apply(
            [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}]
        )


def test_wait_success_and_timeout_with_last_status(
    kubectl: Kubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = kubectl.wait(
        "deployment/envoy-gateway",
        "condition=Available",
        namespace="envoy-gateway-system",
        timeout=10,
    )
    assert out.strip() == "deployment.apps/envoy-gateway condition met"
    monkeypatch.setenv("FAKE_NOT_READY", "deployment/envoy-gateway")
    with pytest.raises(WaitTimeout) as info:
        kubectl.wait(
            "deployment/envoy-gateway",
            "condition=Available",
            namespace="envoy-gateway-system",
            timeout=3,
        )
    message = str(info.value)
    assert (
        "timed out after 3s waiting for deployment/envoy-gateway condition=Available in envoy-gateway-system"
        in message
    )
    assert (
        "last seen: deployment/envoy-gateway: Available=False (MinimumReplicasUnavailable"
        in message
    )


def test_wait_for_an_object_that_never_appears(kubectl: Kubectl) -> None:
    with pytest.raises(WaitTimeout, match="last seen: not found"):
        kubectl.wait("configmap/never", "condition=Ready", namespace="default", timeout=1.5)


def test_wait_for_create_works_with_a_kubectl_older_than_1_31(
    kubectl: Kubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_VERSION", "v1.30.4")
    # the fake rejects --for=create as kubectl 1.30 does (pkg/cmd/wait/wait.go conditionFuncFor)
    raw = kubectl.run(
        ["wait", "serviceaccount/default", "--for=create", "-n", "default"], check=False
    )
    assert raw.exit_code == 1 and 'unrecognized condition: "create"' in raw.stderr
    out = kubectl.wait("serviceaccount/default", "create", namespace="default", timeout=5)
    assert out.strip() == "serviceaccount/default created"
    with pytest.raises(WaitTimeout, match="last seen: serviceaccount/never not found"):
        kubectl.wait("serviceaccount/never", "create", namespace="default", timeout=1.5)


def test_data_plane_service_by_owning_gateway_labels(kubectl: Kubectl) -> None:
    eg = EnvoyGateway()
    assert eg.data_plane_service(kubectl, "team-a", "web") is None
    kubectl.apply(
        [
            _service("envoy-team-a-web-1a2b3c4d", "web", "team-a", [80, 443]),
            _service("envoy-team-b-web-5e6f7a8b", "web", "team-b", [8080]),
        ]
    )
    found = eg.wait_data_plane_service(kubectl, "team-a", "web", timeout=5)
    namespace, name, ports = found
    assert (namespace, name, ports) == (
        "envoy-gateway-system",
        "envoy-team-a-web-1a2b3c4d",
        (80, 443),
    )
    assert eg.data_plane_service(kubectl, "team-b", "web") == (
        "envoy-gateway-system",
        "envoy-team-b-web-5e6f7a8b",
        (8080,),
    )
    with pytest.raises(WaitTimeout, match="data-plane Service of Gateway team-c/web"):
        eg.wait_data_plane_service(kubectl, "team-c", "web", timeout=0.5)


def test_controller_logs_tail_and_status(kubectl: Kubectl) -> None:
    eg = EnvoyGateway()
    tail = eg.controller_logs_tail(kubectl, lines=3)
    assert len(tail.strip().splitlines()) == 3
    assert eg.installed(kubectl) and eg.gateway_class_ready(kubectl)
    status = eg.status(kubectl)
    assert status["controller"]["available"] and status["gatewayClass"]["accepted"]
    assert not EnvoyGateway("v1.8.0").installed(kubectl)  # another version is not "installed"


def test_delete(kubectl: Kubectl) -> None:
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "k-del"}}])
    assert 'namespace "k-del" deleted' in kubectl.delete("namespace", "k-del")
    assert kubectl.delete("namespace", "k-del") == ""  # --ignore-not-found
    with pytest.raises(NotFound):
        kubectl.delete("namespace", "k-del", ignore_not_found=False)


def test_wait_rides_out_an_api_server_that_is_not_up_yet(
    world: FakeWorld, kubectl: Kubectl
) -> None:
    import threading

    assert world.tool("k3d", "cluster", "stop", "sandbox").returncode == 0
    impatient = Kubectl(kubectl.binary, kubectl.kubeconfig, kubectl.context, unreachable_grace=0)
    with pytest.raises(KubectlError, match="was refused"):
        impatient.run(["get", "nodes"])
    timer = threading.Timer(1.0, lambda: world.tool("k3d", "cluster", "start", "sandbox"))
    timer.start()
    try:
        out = kubectl.wait("nodes", "condition=Ready", all_=True, timeout=15)
    finally:
        timer.join()
    assert "node/k3d-sandbox-server-0 condition met" in out


def test_an_api_server_refusing_for_longer_than_the_grace_is_named_with_the_fix(
    world: FakeWorld, kubectl: Kubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("FAKE_KUBECTL_REFUSE", "always")
    server = kubectl.server()
    assert server and server.startswith("https://127.0.0.1:")
    k = Kubectl(kubectl.binary, kubectl.kubeconfig, kubectl.context, unreachable_grace=1.0)
    start = time.monotonic()
    with pytest.raises(APIServerUnreachable) as info:
        k.wait("nodes", "condition=Ready", all_=True, timeout=60, what="every node Ready")
    assert 1.0 <= time.monotonic() - start < 10  # the grace, not the wait's 60 s
    e = info.value
    assert e.exit_code == 3 and e.server == server
    assert f"the Kubernetes API server {server} (context k3d-sandbox) refuses connections" in str(e)
    assert "while waiting for every node Ready" in str(e)
    assert f"The connection to the server {server[8:]} was refused" in str(e)
    assert "cluster-info" in (e.hint or "")
    # still down: the next call says so at once (cleanup and diagnostics do not wait again)
    start = time.monotonic()
    with pytest.raises(APIServerUnreachable, match="while running `kubectl get nodes -o json`"):
        k.get_json("nodes")
    assert time.monotonic() - start < 1.0
    # a create-wait (polled with get) gives up the same way, it does not poll on
    k2 = Kubectl(kubectl.binary, kubectl.kubeconfig, kubectl.context, unreachable_grace=0.5)
    with pytest.raises(APIServerUnreachable, match="waiting for ServiceAccount"):
        k2.wait(
            "serviceaccount/default",
            "create",
            namespace="default",
            timeout=60,
            what="ServiceAccount default/default",
        )


def test_an_envoy_proxy_without_the_short_drain_is_updated(kubectl: Kubectl) -> None:
    eg = EnvoyGateway()
    assert eg.gateway_class_ready(kubectl)
    old = eg.envoy_proxy()
    del old["spec"]["shutdown"]  # as an earlier sandbox applied it
    kubectl.run(["delete", "envoyproxy", eg.proxy_name, "-n", eg.namespace])
    kubectl.apply([old])
    assert not eg.gateway_class_ready(kubectl)
    eg.ensure_gateway_class(kubectl, timeout=10)
    assert eg.gateway_class_ready(kubectl)
