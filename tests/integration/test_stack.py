"""`sandbox up / down / status / doctor` against fake k3d, kubectl and Docker engine.

The fakes (tests/fakes/) reproduce the real tools' output and failure modes; the CLI runs in a
subprocess with a private HOME, exactly as a user would run it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import SANDBOX_TIMEOUT, FakeWorld, closed_port

OWNER = "dev.gateway-sandbox.owner"


def _default_sigint() -> None:
    """In the child, before exec: SIGINT as a terminal's process gets it. A test run started in
    the background by a non-interactive shell inherits SIGINT ignored, and Python keeps an
    ignored SIGINT ignored, so the Ctrl-C these tests send would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FakeWorld]:
    with FakeWorld(tmp_path) as w:
        yield w


def _up(world: FakeWorld, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = world.sandbox("up", *args, timeout=SANDBOX_TIMEOUT, **env)
    assert result.returncode == 0, result.stderr
    return result


def _creates(world: FakeWorld) -> list[list[str]]:
    return [c for c in world.calls("k3d") if c[:2] == ["cluster", "create"]]


def _install_applies(world: FakeWorld) -> list[list[str]]:
    return [
        c for c in world.calls("kubectl") if "apply" in c and any("install.yaml" in a for a in c)
    ]


USER_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\n# my comment\ncurrent-context: mine\n"
    "contexts:\n- name: mine\n  context: {cluster: mine, user: me}\n"
    "clusters:\n- name: mine\n  cluster: {server: 'https://10.0.0.1:6443'}\nusers:\n- name: me\n  user: {}\n"
)


def test_lifecycle_up_repeat_status_down_twice(world: FakeWorld) -> None:
    kube = world.home / ".kube" / "config"
    kube.parent.mkdir()
    kube.write_text(USER_KUBECONFIG)
    mtime = kube.stat().st_mtime_ns

    absent = world.sandbox("status", "-o", "json")
    assert absent.returncode == 1
    assert json.loads(absent.stdout)["health"] == "absent"

    # fresh up
    _up(world)
    cluster = world.state()["clusters"]["sandbox"]
    assert cluster["image"] == "rancher/k3s:v1.35.5-k3s1"
    assert cluster["k3sArgs"] == [
        f"--disable={c}@server:*"
        for c in ("traefik", "servicelb", "metrics-server", "local-storage")
    ]
    assert cluster["noLb"] is True
    assert cluster["labels"] == {OWNER: "gateway-sandbox"}
    create = _creates(world)[0]
    assert "--kubeconfig-update-default=false" in create
    assert "--kubeconfig-switch-context=false" in create
    assert create[create.index("--api-port") + 1] == "127.0.0.1:random"
    objects = world.state()["objects"]["sandbox"]
    proxy = objects["EnvoyProxy/envoy-gateway-system/sandbox-proxy"]
    assert proxy["spec"]["provider"]["kubernetes"]["envoyService"] == {"type": "ClusterIP"}
    # the data plane's probes every second (envoy_gateway.FAST_PROBES), merged by name
    patch = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]["patch"]
    assert patch["type"] == "StrategicMerge"
    containers = {c["name"]: c for c in patch["value"]["spec"]["template"]["spec"]["containers"]}
    assert containers["envoy"]["startupProbe"] == {"periodSeconds": 1, "failureThreshold": 300}
    assert containers["shutdown-manager"]["startupProbe"]["periodSeconds"] == 1
    assert proxy["spec"]["shutdown"] == {"drainTimeout": "5s", "minDrainDuration": "1s"}
    gc = objects["GatewayClass//eg"]
    assert gc["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    assert gc["spec"]["parametersRef"]["name"] == "sandbox-proxy"
    apply = _install_applies(world)[0]
    assert "--server-side" in apply and "--force-conflicts" in apply
    for call in world.calls("kubectl"):  # pinned to the private kubeconfig and context
        if call[:1] != ["version"]:
            assert call[:4] == [
                "--kubeconfig",
                str(world.kubeconfig()),
                "--context",
                "k3d-sandbox",
            ], call
    assert oct(world.kubeconfig().stat().st_mode & 0o777) == "0o600"

    # repeated up: fast, changes nothing
    calls_before = len(world.calls())
    started = time.monotonic()
    result = _up(world, "-o", "json", "--k3s-image", "rancher/k3s:v1.34.1-k3s1")
    assert time.monotonic() - started < 10
    assert (
        "the cluster runs rancher/k3s:v1.35.5-k3s1, not rancher/k3s:v1.34.1-k3s1" in result.stderr
    )
    new_calls = world.calls()[calls_before:]
    assert not any(c[1:3] == ["cluster", "create"] for c in new_calls)
    assert not any("apply" in c for c in new_calls)
    summary = json.loads(result.stdout)
    actions = {p["name"]: p["action"] for p in summary["phases"]}
    assert actions["cluster"] == "exists"
    assert actions["controller"] == "already installed"
    assert actions["class"] == "already Accepted"
    assert summary["kubeconfig"] == str(world.kubeconfig())

    # status
    ok = world.sandbox("status", "-o", "json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["health"] == "ok"
    assert report["cluster"]["owned"] is True and report["cluster"]["running"] is True
    assert report["nodes"][0]["ready"] is True
    assert report["controller"]["available"] is True
    assert report["controller"]["image"] == "docker.io/envoyproxy/gateway:v1.9.0"
    assert report["gatewayClass"]["accepted"] is True
    assert report["versions"]["envoyGateway"] == "v1.9.0"

    # down twice
    first = world.sandbox("down", "-o", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"cluster": "sandbox", "result": "deleted"}
    assert "sandbox" not in world.state()["clusters"]
    assert not (world.sandbox_state / "clusters" / "sandbox").exists()
    second = world.sandbox("down", "-o", "json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {"cluster": "sandbox", "result": "absent"}

    # the real `k3d cluster delete` rewrites the default kubeconfig; the sandbox never lets it
    assert kube.read_text() == USER_KUBECONFIG
    assert kube.stat().st_mtime_ns == mtime


def test_interrupted_up_is_repaired_by_the_next_up(world: FakeWorld) -> None:
    proc = subprocess.Popen(
        world.sandbox_argv("up"),
        env={**world.env, "FAKE_KUBECTL_APPLY_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal job
        preexec_fn=_default_sigint,
    )
    try:
        world.wait_for_call(lambda c: c[0] == "kubectl" and "apply" in c)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "run `sandbox up` again" in stderr
    assert "GatewayClass//eg" not in world.state()["objects"]["sandbox"]

    result = _up(world)
    assert len(_creates(world)) == 1  # the cluster was reused, not re-created
    assert "GatewayClass//eg" in world.state()["objects"]["sandbox"]
    assert "controller: installed" in result.stderr


def test_up_interrupted_while_k3d_creates_is_repaired(world: FakeWorld) -> None:
    proc = subprocess.Popen(
        world.sandbox_argv("up"),
        env={**world.env, "FAKE_K3D_CREATE_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    try:
        world.wait_for_call(lambda c: c[:3] == ["k3d", "cluster", "create"])
        deadline = time.monotonic() + 10
        while "sandbox" not in world.state()["clusters"] and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert world.state()["clusters"]["sandbox"]["running"] is False  # half-made, left by k3d

    result = _up(world)
    assert "interrupted while creating the cluster: re-creating it" in result.stderr
    assert ["cluster", "delete", "sandbox"] in world.calls("k3d")
    assert len(_creates(world)) == 2
    assert world.state()["clusters"]["sandbox"]["running"] is True
    assert "GatewayClass//eg" in world.state()["objects"]["sandbox"]


def test_up_that_times_out_says_what_and_last_status_then_is_repaired(world: FakeWorld) -> None:
    result = world.sandbox("up", "--timeout", "20", FAKE_NOT_READY="deployment/envoy-gateway")
    assert result.returncode == 3
    assert "waiting for deployment/envoy-gateway Available in envoy-gateway-system" in result.stderr
    assert (
        "last seen: deployment/envoy-gateway: Available=False (MinimumReplicasUnavailable"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    _up(world)
    assert len(_creates(world)) == 1

    # a stopped cluster is started; --merge-kubeconfig merges without switching the context
    kube = world.home / ".kube" / "config"
    kube.parent.mkdir()
    kube.write_text(USER_KUBECONFIG)
    assert world.tool("k3d", "cluster", "stop", "sandbox").returncode == 0
    result = _up(world, "--merge-kubeconfig")
    assert "cluster: started" in result.stderr
    start = next(c for c in world.calls("k3d") if c[:2] == ["cluster", "start"])
    assert start[:5] == ["cluster", "start", "sandbox", "--wait", "--timeout"]

    merged = yaml.safe_load(kube.read_text())
    assert merged["current-context"] == "mine"
    assert [c["name"] for c in merged["contexts"]] == ["mine", "k3d-sandbox"]


@pytest.mark.parametrize("command", ["up", "doctor", "status", "down"])
def test_docker_missing_exits_3_fast_with_the_fix(world: FakeWorld, command: str) -> None:
    started = time.monotonic()
    result = world.sandbox(command, DOCKER_HOST=f"tcp://127.0.0.1:{closed_port()}")
    assert time.monotonic() - started < 15
    assert result.returncode == 3
    output = result.stdout + result.stderr
    assert "Docker engine" in output
    assert "systemctl start docker" in output and "DOCKER_HOST" in output
    assert "Traceback" not in output
    assert not (world.home / ".kube").exists()
    assert not (world.home / ".cache").exists()  # nothing downloaded
    assert [c for c in world.calls("k3d") if c[0] != "version"] == []  # doctor reads versions


def test_foreign_cluster_of_the_same_name_is_refused_and_untouched(world: FakeWorld) -> None:
    made = world.tool(
        "k3d",
        "cluster",
        "create",
        "sandbox",
        "--image",
        "rancher/k3s:v1.30.0-k3s1",
        "--kubeconfig-update-default=false",
    )
    assert made.returncode == 0, made.stderr
    calls_before = len(world.calls("k3d"))

    up = world.sandbox("up")
    assert up.returncode == 3
    assert "not created by the sandbox" in up.stderr and "--name" in up.stderr
    down = world.sandbox("down")
    assert down.returncode == 3
    assert "not created by the sandbox" in down.stderr
    doctor = world.sandbox("doctor")
    assert doctor.returncode == 3
    assert "FAIL cluster sandbox" in doctor.stdout

    touched = [
        c
        for c in world.calls("k3d")[calls_before:]
        if c[:2] != ["cluster", "list"] and c[0] != "version"
    ]
    assert touched == []
    assert world.state()["clusters"]["sandbox"]["image"] == "rancher/k3s:v1.30.0-k3s1"
    # another name works next to it
    _up(world, "--name", "other")
    assert world.state()["clusters"]["other"]["labels"] == {OWNER: "gateway-sandbox"}


def test_doctor_lists_every_check(world: FakeWorld) -> None:
    result = world.sandbox("doctor", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = [c["name"] for c in report["checks"]]
    assert names[:2] == ["Docker engine", "platform"]
    assert {"k3d", "kubectl", "cluster sandbox"} <= set(names)
    assert report["ok"] is True


def test_doctor_flags_a_busy_fixed_api_port(world: FakeWorld) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = world.sandbox("doctor", SANDBOX_API_PORT=str(port))
    assert result.returncode == 3
    assert f"FAIL API port 127.0.0.1:{port}: in use" in result.stdout
    assert "SANDBOX_API_PORT" in result.stdout
