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

from sandbox.infra import tools
from sandbox.infra.kube import Kubectl
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
    path = Path(
        os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config"
    )
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def test_up_builds_a_ready_stack(e2e_cluster: str, e2e_provider: str, reports_dir: Path) -> None:
    before = _user_kubeconfig_digest()
    result = sandbox("up", "--name", e2e_cluster, "-o", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (reports_dir / "e2e-up.json").write_text(result.stdout)
    assert summary["gatewayClass"] == "eg"
    assert summary["provider"] == e2e_provider
    assert {p["name"] for p in summary["phases"]} >= {
        "docker",
        "cluster",
        "node",
        "preload",
        "controller",
        "class",
    }
    assert _user_kubeconfig_digest() == before  # ~/.kube/config untouched
    # the engine's own report decides whether the kubelet is told to accept cgroup v1
    from sandbox.infra import docker_engine

    v1 = docker_engine.ping().cgroup_version == "1"
    said = any("cgroup v1" in n for n in summary["notes"])
    assert said == v1, summary["notes"]
    if v1:
        assert "the kubelet's cgroup v1 refusal is turned off" in result.stderr


def test_doctor_names_the_host_tweaks(e2e_cluster: str) -> None:
    from sandbox.infra import docker_engine

    result = sandbox("doctor", "--name", e2e_cluster, "-o", "json", timeout=120)
    checks = json.loads(result.stdout)["checks"]
    host = [c["detail"] for c in checks if c["name"] == "host"]
    if docker_engine.ping().cgroup_version == "1":
        assert any("cgroup v1" in h and "failCgroupV1: false" in h for h in host), host
    else:
        assert not any("cgroup v1" in h for h in host), host


def test_repeated_up_is_fast(e2e_cluster: str) -> None:
    started = time.monotonic()
    result = sandbox("up", "--name", e2e_cluster, "-o", "json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    actions = {p["name"]: p["action"] for p in json.loads(result.stdout)["phases"]}
    assert actions["cluster"] == "exists"
    assert actions["controller"] == "already installed"
    assert actions["preload"].endswith("already in the cluster"), actions
    assert elapsed < 10, f"a ready stack took {elapsed:.1f}s"


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


def test_gateway_class_uses_clusterip_envoy_proxy(e2e_cluster: str, e2e_provider: str) -> None:
    settings = Settings(cluster_name=e2e_cluster)
    status = json.loads(sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120).stdout)
    # the kubectl `up` resolved (PATH when it fits, else the verified cached pin)
    found = tools.describe_tool("kubectl", settings.kubectl_version)["use"] or shutil.which(
        "kubectl"
    )
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
    assert (
        annotations.get("gateway.networking.k8s.io/bundle-version") == settings.gateway_api_version
    )
    if e2e_provider == "k3d":  # the k3s components the stack never uses are disabled
        for name in ("traefik", "metrics-server", "local-path-provisioner"):
            assert kubectl.get_json("deployment", name, namespace="kube-system") is None, name


def test_quickstart_runs_through_envoy_gateway(e2e_cluster: str, reports_dir: Path) -> None:
    """The main job on the real stack: apply, wait Programmed/Accepted, port-forward, probe."""
    env = {**os.environ, "SANDBOX_CLUSTER_NAME": e2e_cluster}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "run",
            "quickstart",
            "-o",
            "json",
            "--junit",
            str(reports_dir / "e2e-quickstart.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
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
    found = tools.describe_tool("kubectl", Settings(cluster_name=e2e_cluster).kubectl_version)[
        "use"
    ]
    kubectl = Kubectl(
        found or shutil.which("kubectl") or "kubectl", status["kubeconfig"], status["context"]
    )
    assert kubectl.get_json("namespace", namespace) is None


def test_a_cluster_made_by_hand_is_refused_and_left_alone(
    e2e_cluster: str, e2e_provider: str, tmp_path: Path
) -> None:
    """The owner mark is read from Docker on the real engine (k3d: a label; kind: a mount): a
    cluster of the name that the sandbox did not make is neither used nor deleted (a second
    `up` of our own cluster, above, shows the other side)."""
    name = f"{e2e_cluster}-byhand"[:32]
    settings = Settings(cluster_name=name, cluster=e2e_provider)
    env = {"KUBECONFIG": str(tmp_path / "absent-kubeconfig")}  # keep the tool off ~/.kube/config
    if e2e_provider == "kind":
        import yaml

        from sandbox.infra import docker_engine
        from sandbox.infra.providers import kind as kind_mod
        from sandbox.infra.stack import tweaks_for

        tool = tools.ensure_tool("kind", settings.kind_version).path
        # what a user's own config for this host holds (on a cgroup v1 host without
        # CAP_SYS_RESOURCE kubeadm cannot start a node otherwise), but no owner mark
        cfg = kind_mod.config(
            name,
            owner_file=tmp_path / "unused",
            api_port=None,
            tweaks=tweaks_for(docker_engine.ping()),
        )
        del cfg["nodes"][0]["extraMounts"]
        (tmp_path / "kind.yaml").write_text(yaml.safe_dump(cfg))
        tools.run(
            [
                tool,
                "create",
                "cluster",
                "--name",
                name,
                "--image",
                settings.kind_node_image,
                "--config",
                str(tmp_path / "kind.yaml"),
                "--kubeconfig",
                env["KUBECONFIG"],
            ],
            timeout=300,
            env=env,
        )
        listing: list[str | Path] = [tool, "get", "clusters"]
        delete: list[str | Path] = [
            tool,
            "delete",
            "cluster",
            "--name",
            name,
            "--kubeconfig",
            env["KUBECONFIG"],
        ]
    else:
        tool = tools.ensure_tool("k3d", settings.k3d_version).path
        tools.run(
            [
                tool,
                "cluster",
                "create",
                name,
                "--image",
                settings.k3s_image,
                "--no-lb",
                "--wait=false",
                "--kubeconfig-update-default=false",
            ],
            timeout=300,
            env=env,
        )
        listing = [tool, "cluster", "list", "-o", "json"]
        delete = [tool, "cluster", "delete", name]
    try:
        up = sandbox("up", "--name", name, timeout=120)
        assert up.returncode == 3, up.stderr
        assert "not created by the sandbox" in up.stderr
        down = sandbox("down", "--name", name, timeout=120)
        assert down.returncode == 3, down.stderr
        listed = tools.run(listing, timeout=60, env=env).stdout
        names = (
            {c["name"] for c in json.loads(listed)}
            if e2e_provider == "k3d"
            else set(listed.split())
        )
        assert name in names
    finally:
        tools.run(delete, timeout=180, env=env, check=False)


def test_offline_up_names_a_missing_image_at_once(e2e_cluster: str, e2e_provider: str) -> None:
    """With an image the stack needs removed from the engine, `up --offline` of a cluster that
    does not exist yet exits 3 within seconds, naming it (and creates nothing)."""
    import docker

    from sandbox.settings import ENVOY_PROXY_IMAGE

    name = f"{e2e_cluster}-offline"[:32]
    client = docker.from_env()
    backup = "gateway-sandbox-e2e/backup:envoy"
    client.images.get(ENVOY_PROXY_IMAGE).tag(backup)  # keeps the layers while the name is gone
    repo, tag = ENVOY_PROXY_IMAGE.rsplit(":", 1)
    try:
        client.images.remove(ENVOY_PROXY_IMAGE)
        started = time.monotonic()
        result = sandbox("up", "--name", name, "--offline", timeout=120)
        elapsed = time.monotonic() - started
        assert result.returncode == 3, result.stderr
        assert ENVOY_PROXY_IMAGE in result.stderr
        assert elapsed < 15, f"--offline took {elapsed:.1f}s to name the missing image"
        settings = Settings(cluster_name=name, cluster=e2e_provider)
        label = ("io.x-k8s.kind.cluster" if e2e_provider == "kind" else "k3d.cluster") + f"={name}"
        assert not client.containers.list(all=True, filters={"label": label})
        assert not settings.kubeconfig_path.exists()
    finally:
        client.images.get(backup).tag(repo, tag)
        client.images.remove(backup)
        client.close()


@pytest.mark.skipif(KEEP, reason="SANDBOX_E2E_KEEP is set: the cluster is left up for later steps")
def test_down_twice(e2e_cluster: str) -> None:
    first = sandbox("down", "--name", e2e_cluster, "-o", "json", timeout=300)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["result"] == "deleted"
    second = sandbox("down", "--name", e2e_cluster, "-o", "json", timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["result"] == "absent"
    # nothing left: no container, no kubeconfig of ours, and the kind network only when
    # something else uses it
    import docker

    client = docker.from_env()
    try:
        for label in (f"io.x-k8s.kind.cluster={e2e_cluster}", f"k3d.cluster={e2e_cluster}"):
            assert not client.containers.list(all=True, filters={"label": label}), label
    finally:
        client.close()
    assert not Settings(cluster_name=e2e_cluster).cluster_state_dir.exists()
