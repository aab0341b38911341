"""`sandbox run` on the k3d provider, end to end through the real CLI, on the fake stack.

What this proves (layer 2): the CLI brings the stack up through the fake k3d/kubectl/Docker
engine, applies the scenario into a fresh namespace, waits for the Gateway and route, starts a
`kubectl port-forward` to the data-plane Service found by its labels, sends real HTTP through it
to a real echo server on loopback, restarts the port-forward when it loses the pod, and deletes
the namespace afterwards. What it does not prove: that Envoy Gateway routes (the fake
port-forward relays every connection to one echo server; routing is the reference model's and
the e2e tests' business).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import FakeWorld
from sandbox.echo.http import EchoServer

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart"

SCENARIO = """\
description: www.example.com reaches the echo backend through Gateway eg.
gateway: eg
features: [Gateway, HTTPRoute]
timeout: 20
checks:
  - name: routed to the backend
    request: {host: www.example.com, path: /get}
    expect: {status: 200, backend: backend, request: {host: www.example.com, path: /get}}
  - name: query string kept
    request: {host: www.example.com, path: "/search?q=1"}
    expect: {status: 200, backend: backend, request: {path: "/search?q=1"}}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios" / "quick"
    folder.mkdir(parents=True)
    for manifest in QUICKSTART.glob("*.yaml"):
        if manifest.name != "scenario.yaml":
            shutil.copy(manifest, folder / manifest.name)
    (folder / "scenario.yaml").write_text(SCENARIO)
    return folder


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FakeWorld]:
    with FakeWorld(tmp_path / "world") as w:
        yield w


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer(pod="backend-6f4d5c9b7-x7k2p", namespace="sbx") as server:
        yield server


def test_run_brings_the_stack_up_applies_forwards_probes_and_cleans_up(
    world: FakeWorld, echo: EchoServer, scenario: Path, tmp_path: Path
) -> None:
    user_kube = world.home / ".kube"
    result = world.sandbox(
        "run",
        str(scenario),
        "-o",
        "json",
        timeout=180,
        FAKE_PF_UPSTREAM=f"127.0.0.1:{echo.port}",
        FAKE_PF_STATE=str(tmp_path / "pf"),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["target"] == "k3d"
    assert report["summary"] == {**report["summary"], "executed": 2, "passed": 2, "failed": 0}
    run_ns = report["scenarios"][0]["namespace"]
    assert run_ns.startswith("sbx-quick-")
    # the scenario's objects went to the fake API server through server-side apply on stdin,
    # into the run's namespace; the port-forward went to the Envoy Service found by its labels
    kubectl = [" ".join(c) for c in world.calls("kubectl")]
    assert any("apply --server-side" in c and c.endswith("-f -") for c in kubectl)
    pf = [c for c in kubectl if " port-forward " in f" {c} "]
    assert pf and "--address 127.0.0.1" in pf[0] and "-n envoy-gateway-system" in pf[0]
    assert "svc/envoy-" + run_ns in pf[0]
    # and it was all deleted afterwards: nothing of the run is left in the cluster
    assert any(f"delete namespace {run_ns}" in c for c in kubectl)
    left = [
        k
        for k in world.state()["objects"]["sandbox"]
        if f"/{run_ns}/" in k or k.endswith(f"//{run_ns}")
    ]
    assert left == []
    assert not user_kube.exists()  # the user's kubeconfig was never written


def test_port_forward_that_loses_the_pod_is_restarted(
    world: FakeWorld, echo: EchoServer, scenario: Path, tmp_path: Path
) -> None:
    state = tmp_path / "pf"
    result = world.sandbox(
        "run",
        str(scenario),
        timeout=180,
        FAKE_PF_UPSTREAM=f"127.0.0.1:{echo.port}",
        FAKE_PF_STATE=str(state),
        FAKE_PF_DIE_AFTER="2",
        FAKE_PF_DIE_RUNS="1",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "2 executed, 2 passed, 0 failed" in result.stdout
    runs = (state / "runs.log").read_text().splitlines()
    assert len(runs) >= 2, runs  # the first kubectl died with "lost connection to pod"


def test_without_docker_run_exits_3_and_points_at_the_local_provider(
    scenario: Path, tmp_path: Path
) -> None:
    import os
    import subprocess

    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "run", str(scenario)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 3, result.stderr
    assert "Docker engine does not answer" in result.stderr
    assert "--provider local" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / ".kube").exists()


def test_an_api_server_that_refuses_connections_is_named_within_seconds_exit_3(
    world: FakeWorld, scenario: Path
) -> None:
    import time

    assert world.sandbox("up", timeout=120).returncode == 0
    # k3d still lists the cluster as running, but its API server refuses every connection;
    # `sandbox run` used to sit out its 180 s node wait and then say "timed out"
    start = time.monotonic()
    result = world.sandbox("run", str(scenario), timeout=60, FAKE_KUBECTL_REFUSE="always")
    elapsed = time.monotonic() - start
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-3000:]
    assert elapsed < 15, elapsed
    port = world.state()["clusters"]["sandbox"]["apiPort"]
    err = result.stderr
    assert (
        f"the Kubernetes API server https://127.0.0.1:{port} (context k3d-sandbox) "
        "refuses connections" in err
    )
    assert "while waiting for every node Ready" in err  # what was being done
    assert f"The connection to the server 127.0.0.1:{port} was refused" in err
    assert "`sandbox up` starts it" in err  # the fix, for the sandbox's own cluster
    assert "timed out" not in err and "Traceback" not in err


def test_an_api_server_that_restarts_for_a_moment_is_ridden_out(
    world: FakeWorld, echo: EchoServer, scenario: Path, tmp_path: Path
) -> None:
    assert world.sandbox("up", timeout=120).returncode == 0
    result = world.sandbox(
        "run",
        str(scenario),
        timeout=180,
        FAKE_KUBECTL_REFUSE="2",
        FAKE_PF_UPSTREAM=f"127.0.0.1:{echo.port}",
        FAKE_PF_STATE=str(tmp_path / "pf"),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "refuse_since" in world.state()  # it did refuse, for 2 s
    assert "2 executed, 2 passed, 0 failed" in result.stdout


def test_an_existing_context_whose_api_server_refuses_says_to_check_that_cluster(
    world: FakeWorld, scenario: Path
) -> None:
    assert world.sandbox("up", timeout=120).returncode == 0
    result = world.sandbox(
        "run",
        str(scenario),
        "--provider",
        "existing",
        "--context",
        "k3d-sandbox",
        timeout=60,
        FAKE_KUBECTL_REFUSE="always",
        KUBECONFIG=str(world.kubeconfig()),
    )
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout  # the scenario's error, in the report
    assert "ERROR quick: the Kubernetes API server https://127.0.0.1:" in out
    assert "(context k3d-sandbox) refuses connections" in out
    assert "while looking up GatewayClass eg" in out
    assert (
        "  hint: check that the cluster of context k3d-sandbox is running and reachable: "
        "`kubectl --context k3d-sandbox cluster-info`" in out
    )
    assert "sandbox up" not in out and "Traceback" not in result.stderr


def _scale_controller(world: FakeWorld, replicas: int) -> None:
    """`kubectl -n envoy-gateway-system scale deployment/envoy-gateway --replicas=N`."""
    import fakestate

    with fakestate.locked(world.state_dir) as st:
        st["objects"]["sandbox"]["Deployment/envoy-gateway-system/envoy-gateway"]["spec"][
            "replicas"
        ] = replicas


def test_a_controller_scaled_to_zero_during_run_is_named_not_waited_out(
    world: FakeWorld, echo: EchoServer, scenario: Path, tmp_path: Path
) -> None:
    import subprocess
    import time

    assert world.sandbox("up", timeout=120).returncode == 0
    env = {
        **world.env,
        "FAKE_PF_UPSTREAM": f"127.0.0.1:{echo.port}",
        "FAKE_PF_STATE": str(tmp_path / "pf"),
        "FAKE_EG_STATUS_DELAY": "3",
    }  # the scenario's objects wait 3 s for their status
    before = len(world.state()["calls"])
    start = time.monotonic()
    proc = subprocess.Popen(
        world.sandbox_argv("run", str(scenario)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the scenario is being applied: `run`'s own `up` found the controller running
        world.wait_for_call(
            lambda c: c[0] == "kubectl" and "apply" in c and c[-2:] == ["-f", "-"], after=before
        )
        _scale_controller(world, 0)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, stderr[-3000:]
    assert (
        "the Envoy Gateway controller (deployment/envoy-gateway in envoy-gateway-system) "
        "is scaled to 0 replicas, so nothing accepts or programs its Gateways and routes"
    ) in stderr, stderr[-2500:]
    assert "hint: `sandbox up` re-installs it" in stdout  # the report, with the error
    assert "kubectl -n envoy-gateway-system scale deployment/envoy-gateway --replicas=1" in (
        " ".join((stdout + stderr).split())  # the hint may be wrapped
    )
    assert "404" not in stdout + stderr
    assert elapsed < 40, f"took {elapsed:.1f}s"  # not the 180 s ready wait
    status = world.sandbox("status", "-o", "json", timeout=60)
    assert status.returncode != 0
    controller = json.loads(status.stdout)["controller"]
    assert controller["available"] is False and "scaled to 0" in controller["status"]
    # the next `up` (and so the next `run`) re-applies install.yaml: the controller is back
    assert world.sandbox("up", timeout=120).returncode == 0
    assert (
        world.state()["objects"]["sandbox"]["Deployment/envoy-gateway-system/envoy-gateway"][
            "spec"
        ].get("replicas", 1)
        == 1
    )
    again = world.sandbox(
        "run",
        str(scenario),
        timeout=120,
        FAKE_PF_UPSTREAM=f"127.0.0.1:{echo.port}",
        FAKE_PF_STATE=str(tmp_path / "pf"),
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
