"""k3d provider: argv, `cluster list -o json` parsing, kubeconfig parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.errors import ClusterError, ToolError
from sandbox.infra import tools
from sandbox.infra.docker_engine import Container
from sandbox.infra.providers import HostTweaks
from sandbox.infra.providers.k3d import (
    K3dProvider,
    create_args,
    owned_by_sandbox,
    parse_cluster_list,
)
from sandbox.infra.providers.kubeconfig import parse_kubeconfig

OWNER = "dev.gateway-sandbox.owner"


def _cluster(name: str, labels: dict[str, str], running: bool = True) -> dict[str, object]:
    """Shape of one `k3d cluster list -o json` entry (k3d v5.9.0 cmd/cluster/clusterList.go:
    k3d.Cluster + serversRunning/serversCount/agentsRunning/agentsCount/hasLoadbalancer;
    Node.State has no json tags, so its keys are capitalised)."""
    state = {"Running": running, "Status": "running" if running else "exited", "Started": ""}
    return {
        "name": name,
        "network": {"name": f"k3d-{name}", "id": "x", "ipam": {"Managed": False}, "Members": None},
        "nodes": [
            {
                "name": f"k3d-{name}-server-0",
                "role": "server",
                "image": "sha256:" + "ab" * 32,  # ContainerInspect .Image: an ID, not a reference
                "runtimeLabels": {
                    "k3d.cluster": name,
                    "k3d.role": "server",
                    "k3d.server.api.port": "41234",
                    **labels,
                },
                "State": state,
            },
            {
                "name": f"k3d-{name}-serverlb",
                "role": "loadbalancer",
                "runtimeLabels": {"k3d.role": "loadbalancer"},
                "State": state,
            },
        ],
        "InitNode": None,
        "imageVolume": f"k3d-{name}-images",
        "serversRunning": 1 if running else 0,
        "serversCount": 1,
        "agentsRunning": 0,
        "agentsCount": 0,
        "hasLoadbalancer": True,
    }


def test_create_args() -> None:
    args = create_args("sandbox", image="rancher/k3s:v1.35.5-k3s1", timeout=300)
    assert args[:3] == ["cluster", "create", "sandbox"]
    pairs = {
        args[i]: args[i + 1]
        for i in range(3, len(args) - 1)
        if args[i] in ("--image", "--k3s-arg", "--api-port", "--runtime-label", "--timeout")
    }
    assert pairs["--image"] == "rancher/k3s:v1.35.5-k3s1"
    k3s_args = [args[i + 1] for i in range(len(args) - 1) if args[i] == "--k3s-arg"]
    assert k3s_args == [
        f"--disable={c}@server:*"
        for c in ("traefik", "servicelb", "metrics-server", "local-storage")
    ]
    assert "--no-lb" in args
    assert pairs["--api-port"] == "127.0.0.1:random"
    assert pairs["--runtime-label"] == f"{OWNER}=gateway-sandbox@server:*"
    # k3d times each step (pull, create, start) on its own: half the budget each
    assert pairs["--timeout"] == "150s"
    assert "--kubeconfig-update-default=false" in args
    assert "--kubeconfig-switch-context=false" in args
    assert "--wait" in args


def test_create_args_on_a_cgroup_v1_host_turn_off_the_kubelet_refusal() -> None:
    plain = create_args(
        "sandbox", image="rancher/k3s:v1.35.5-k3s1", timeout=300, tweaks=HostTweaks(cgroup_v1=False)
    )
    v1 = create_args(
        "sandbox", image="rancher/k3s:v1.35.5-k3s1", timeout=300, tweaks=HostTweaks(cgroup_v1=True)
    )
    # k3s passes --kubelet-arg on to the kubelet; k3d's --k3s-arg needs the node filter
    assert "--kubelet-arg=fail-cgroupv1=false@server:*" in v1
    assert not any("cgroupv1" in a for a in plain)


def test_list_finds_running_cluster() -> None:
    text = json.dumps([_cluster("other", {}), _cluster("sandbox", {})])
    info = parse_cluster_list(text, "sandbox")
    assert info is not None
    assert info.running
    assert info.api_port == "41234"
    assert info.image is None  # an image ID says nothing about the pin


def test_list_never_decides_ownership() -> None:
    # k3d copies only labels starting with "k3d" into runtimeLabels (pkg/runtimes/docker/
    # translate.go), so the list cannot show the owner label; even if it did, Docker decides
    text = json.dumps([_cluster("sandbox", {OWNER: "gateway-sandbox"})])
    assert parse_cluster_list(text, "sandbox").owned is False  # type: ignore[union-attr]


def _container(role: str, labels: dict[str, str]) -> Container:
    return Container(
        name=f"k3d-sandbox-{role}",
        state="running",
        labels={"app": "k3d", "k3d.cluster": "sandbox", "k3d.role": role, **labels},
    )


def test_owned_by_sandbox_reads_docker_labels_of_servers() -> None:
    mine = {OWNER: "gateway-sandbox"}
    assert owned_by_sandbox([_container("server", mine), _container("loadbalancer", {})])
    assert not owned_by_sandbox([_container("server", {}), _container("loadbalancer", {})])
    assert not owned_by_sandbox([_container("server", {OWNER: "someone-else"})])
    assert not owned_by_sandbox([_container("loadbalancer", mine)])  # no server at all
    assert not owned_by_sandbox([])


def test_list_stopped_and_missing() -> None:
    text = json.dumps([_cluster("sandbox", {}, running=False)])
    info = parse_cluster_list(text, "sandbox")
    assert info is not None and not info.running
    assert parse_cluster_list(text, "nope") is None
    assert parse_cluster_list("[]", "sandbox") is None


def test_list_garbage_is_a_tool_error() -> None:
    with pytest.raises(ToolError):
        parse_cluster_list("level=fatal msg=boom", "sandbox")
    with pytest.raises(ToolError):
        parse_cluster_list('{"name": "sandbox"}', "sandbox")


def test_kubeconfig_get_output_starts_with_a_separator() -> None:
    # cmd/kubeconfig/kubeconfigGet.go: fmt.Println("---") before each kubeconfig
    text = "---\napiVersion: v1\nkind: Config\nclusters:\n- name: k3d-sandbox\n  cluster: {server: 'https://127.0.0.1:41234'}\n"
    config = parse_kubeconfig(text)
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:41234"
    with pytest.raises(ToolError):
        parse_kubeconfig("---\n")


def test_create_that_runs_out_of_time_says_to_pull_the_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # k3d's fatal lines after its --timeout (cmd/cluster/clusterCreate.go: log the error, roll back)
    stderr = (
        'time="2026-11-26T23:00:00Z" level=error msg="failed Cluster Creation: failed to create node '
        "'k3d-sandbox-server-0': failed to pull image 'rancher/k3s:v1.35.5-k3s1': context deadline "
        'exceeded"\n'
        'time="2026-11-26T23:00:00Z" level=error msg="Failed to create cluster >>> Rolling Back"\n'
        'time="2026-11-26T23:00:01Z" level=fatal msg="Cluster creation FAILED, all changes have been rolled back!"\n'
    )
    provider = K3dProvider(
        tmp_path / "k3d", image="rancher/k3s:v1.35.5-k3s1", scratch_kubeconfig=tmp_path / "guard"
    )

    def fail(args: list[str], *, timeout: float, check: bool = True) -> tools.ToolResult:
        result = tools.ToolResult(("k3d", *args), 1, "", stderr)
        raise tools.ToolFailed("k3d failed", result)

    monkeypatch.setattr(provider, "_run", fail)
    with pytest.raises(ClusterError) as info:
        provider.create("sandbox", timeout=300)
    assert "context deadline exceeded" in info.value.message
    assert info.value.hint is not None and "docker pull rancher/k3s:v1.35.5-k3s1" in info.value.hint
