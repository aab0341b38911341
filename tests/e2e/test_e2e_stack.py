"""The real stack: `sandbox up`, `status`, a second fast `up`, and `down`, on a real Docker engine.

Run with ``python -m pytest -m e2e``. Set ``SANDBOX_E2E_KEEP=1`` to leave the cluster up for
later steps (the CI workflow runs the scenario suite on it, then `sandbox down` itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import tools
from sandbox.kube import Kubectl
from sandbox.settings import Settings

pytestmark = pytest.mark.e2e

KEEP = os.environ.get("SANDBOX_E2E_KEEP", "").lower() in ("1", "true", "yes")


def sandbox(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", *args], capture_output=True, text=True, timeout=timeout
    )
    sys.stderr.write(result.stderr)  # phase timings end up in the test log
    return result


def _user_kubeconfig_digest() -> str | None:
    path = Path(os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def test_up_builds_a_ready_stack(e2e_cluster: str, reports_dir: Path) -> None:
    before = _user_kubeconfig_digest()
    result = sandbox("up", "--name", e2e_cluster, "-o", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (reports_dir / "e2e-up.json").write_text(result.stdout)
    assert summary["gatewayClass"] == "eg"
    assert {p["name"] for p in summary["phases"]} >= {"docker", "cluster", "node", "controller", "class"}
    assert _user_kubeconfig_digest() == before  # ~/.kube/config untouched


def test_repeated_up_is_fast(e2e_cluster: str) -> None:
    started = time.monotonic()
    result = sandbox("up", "--name", e2e_cluster, "-o", "json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    actions = {p["name"]: p["action"] for p in json.loads(result.stdout)["phases"]}
    assert actions["cluster"] == "exists"
    assert actions["controller"] == "already installed"
    assert elapsed < 30, f"a ready stack took {elapsed:.1f}s"


def test_status_is_healthy(e2e_cluster: str) -> None:
    result = sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["health"] == "ok"
    assert report["cluster"]["owned"] is True
    assert all(n["ready"] for n in report["nodes"])
    assert report["controller"]["available"] is True
    assert report["controller"]["image"].endswith(":" + report["versions"]["envoyGateway"])
    assert report["gatewayClass"]["accepted"] is True


def test_gateway_class_uses_clusterip_envoy_proxy(e2e_cluster: str) -> None:
    settings = Settings(cluster_name=e2e_cluster)
    status = json.loads(sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120).stdout)
    # the kubectl `up` resolved (PATH when it fits, else the verified cached pin)
    found = tools.describe_tool("kubectl", settings.kubectl_version)["use"] or shutil.which("kubectl")
    assert found, "no kubectl"
    kubectl = Kubectl(found, status["kubeconfig"], status["context"])
    gc = kubectl.get_json("gatewayclass", "eg")
    assert gc is not None
    assert gc["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    ref = gc["spec"]["parametersRef"]
    proxy = kubectl.get_json("envoyproxy", ref["name"], namespace=ref["namespace"])
    assert proxy is not None
    assert proxy["spec"]["provider"]["kubernetes"]["envoyService"]["type"] == "ClusterIP"
    assert proxy["spec"]["shutdown"] == {"drainTimeout": "5s", "minDrainDuration": "1s"}
    crd = kubectl.get_json("crd", "gateways.gateway.networking.k8s.io")
    assert crd is not None
    annotations = crd["metadata"].get("annotations", {})
    assert annotations.get("gateway.networking.k8s.io/bundle-version") == settings.gateway_api_version
    assert kubectl.get_json("deployment", "traefik", namespace="kube-system") is None  # disabled


def test_quickstart_runs_through_envoy_gateway(e2e_cluster: str, reports_dir: Path) -> None:
    """The main job on the real stack: apply, wait Programmed/Accepted, port-forward, probe."""
    env = {**os.environ, "SANDBOX_CLUSTER_NAME": e2e_cluster}
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "run", "quickstart", "-o", "json",
         "--junit", str(reports_dir / "e2e-quickstart.xml")],
        capture_output=True, text=True, timeout=900, env=env,
    )
    sys.stderr.write(result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["target"] != "local"
    assert report["summary"]["failed"] == 0
    assert report["summary"]["passed"] == report["summary"]["executed"] > 0
    namespace = report["scenarios"][0]["namespace"]
    assert namespace.startswith("sbx-quickstart-")
    # cleaned up: the run's namespace is gone
    status = json.loads(sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120).stdout)
    found = tools.describe_tool("kubectl", Settings(cluster_name=e2e_cluster).kubectl_version)["use"]
    kubectl = Kubectl(found or shutil.which("kubectl") or "kubectl", status["kubeconfig"], status["context"])
    assert kubectl.get_json("namespace", namespace) is None


def test_a_cluster_made_by_hand_is_refused_and_left_alone(e2e_cluster: str, tmp_path: Path) -> None:
    """The owner label is read from Docker on the real engine: a k3d cluster of the name that the
    sandbox did not make is neither used nor deleted (a second `up` of our own cluster, above,
    shows the other side)."""
    name = f"{e2e_cluster}-byhand"[:32]
    settings = Settings(cluster_name=name)
    k3d = tools.ensure_tool("k3d", settings.k3d_version).path
    env = {"KUBECONFIG": str(tmp_path / "absent-kubeconfig")}  # keep k3d off ~/.kube/config
    tools.run([k3d, "cluster", "create", name, "--image", settings.k3s_image, "--no-lb",
               "--wait=false", "--kubeconfig-update-default=false"], timeout=300, env=env)
    try:
        up = sandbox("up", "--name", name, timeout=120)
        assert up.returncode == 3, up.stderr
        assert "not created by the sandbox" in up.stderr
        down = sandbox("down", "--name", name, timeout=120)
        assert down.returncode == 3, down.stderr
        listed = tools.run([k3d, "cluster", "list", "-o", "json"], timeout=60, env=env).stdout
        assert name in {c["name"] for c in json.loads(listed)}
    finally:
        tools.run([k3d, "cluster", "delete", name], timeout=180, env=env, check=False)


@pytest.mark.skipif(KEEP, reason="SANDBOX_E2E_KEEP is set: the cluster is left up for later steps")
def test_down_twice(e2e_cluster: str) -> None:
    first = sandbox("down", "--name", e2e_cluster, "-o", "json", timeout=300)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["result"] == "deleted"
    second = sandbox("down", "--name", e2e_cluster, "-o", "json", timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["result"] == "absent"
