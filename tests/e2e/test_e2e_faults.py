"""Faults on the real stack (kind or k3d + Envoy Gateway v1.9.0): what a user's laptop does to a
running sandbox, and what the sandbox then says and does.

- the envoy pod of a Gateway deleted in the middle of a run: the run recovers within its
  convergence window (the port-forward is restarted onto the new pod);
- the node container stopped: ``status`` says stopped and how to fix it, ``up`` starts it;
- Ctrl-C during a real ``up``: the next ``up`` repairs what was left, ``down`` leaves nothing;
- the Envoy Gateway controller scaled to zero: ``run`` names the controller, not a 404.

Each test brings the e2e cluster up first (seconds when it is ready), so they do not depend on
the order of the files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from sandbox.settings import Settings

pytestmark = pytest.mark.e2e


def sandbox(*args: str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    sys.stderr.write(result.stderr)
    return result


def _node_label(provider: str, cluster: str) -> str:
    return ("io.x-k8s.kind.cluster" if provider == "kind" else "k3d.cluster") + f"={cluster}"


def _docker() -> Any:
    import docker

    return docker.from_env()


@pytest.fixture
def stack(e2e_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The e2e cluster, up and healthy; its ``status -o json``."""
    up = sandbox("up", "--name", e2e_cluster)
    assert up.returncode == 0, up.stderr
    monkeypatch.setenv("SANDBOX_CLUSTER_NAME", e2e_cluster)
    status = sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120)
    assert status.returncode == 0, status.stdout
    yield json.loads(status.stdout)


def _kubectl(
    stack: dict[str, Any], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    from sandbox.infra import tools

    found = tools.describe_tool("kubectl", Settings().kubectl_version)["use"] or "kubectl"
    result = subprocess.run(
        [str(found), "--kubeconfig", stack["kubeconfig"], "--context", stack["context"], *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_envoy_pod_deleted_mid_run_the_run_recovers(
    stack: dict[str, Any], e2e_provider: str
) -> None:
    from sandbox.cli.run import make_target
    from sandbox.probe.prober import Prober
    from sandbox.report.text import format_failure
    from sandbox.runner import Runner
    from sandbox.scenario.library import resolve_scenario
    from sandbox.scenario.load import load_scenario
    from sandbox.targets.cluster import ClusterDeployment

    scenario = load_scenario(resolve_scenario("quickstart"))
    target = make_target(
        address=None,
        provider=e2e_provider,
        gateway_class=None,
        context=None,
        keep=False,
        quiet=True,
        scenarios=[scenario],
    )
    runner = Runner(target, prober=Prober())
    try:
        with target.deploy(scenario) as deployed:
            # the k3d and kind providers' target is a ClusterTarget: its deployments have gateways()
            dep = cast(ClusterDeployment, deployed)
            first = runner.run_check(scenario, scenario.checks[0], dep)
            assert first.status == "passed", format_failure(scenario, first)
            [(ns, name)] = dep.gateways()
            selector = (
                f"gateway.envoyproxy.io/owning-gateway-name={name},"
                f"gateway.envoyproxy.io/owning-gateway-namespace={ns}"
            )
            pods = _kubectl(
                stack, "get", "pods", "-n", "envoy-gateway-system", "-l", selector, "-o", "name"
            ).stdout.split()
            assert pods, f"no envoy pod for Gateway {ns}/{name}"
            _kubectl(stack, "delete", "-n", "envoy-gateway-system", *pods, "--wait=false")
            started = time.monotonic()
            # while the old pod drains (the sandbox's EnvoyProxy: drainTimeout 5s)...
            during = [runner.run_check(scenario, check, dep) for check in scenario.checks]
            assert [r.status for r in during] == ["passed"] * len(during), [
                format_failure(scenario, r) for r in during
            ]
            # ...and once it is gone: the port-forward lost its pod and must find the new one
            _kubectl(
                stack, "wait", "-n", "envoy-gateway-system", "--for=delete", *pods, "--timeout=120s"
            )
            after = [runner.run_check(scenario, check, dep) for check in scenario.checks]
            took = time.monotonic() - started
            assert [r.status for r in after] == ["passed"] * len(after), [
                format_failure(scenario, r) for r in after
            ]
            now = _kubectl(
                stack, "get", "pods", "-n", "envoy-gateway-system", "-l", selector, "-o", "name"
            ).stdout.split()
            assert now and set(now).isdisjoint(pods)  # only the new pod is left to answer
            sys.stderr.write(f"recovered from the envoy pod's deletion in {took:.1f}s\n")
    finally:
        failures = target.finish()
    assert not failures


def test_a_stopped_node_is_named_by_status_and_started_by_up(
    stack: dict[str, Any], e2e_cluster: str, e2e_provider: str
) -> None:
    client = _docker()
    try:
        nodes = client.containers.list(filters={"label": _node_label(e2e_provider, e2e_cluster)})
        assert nodes
        for node in nodes:
            node.stop(timeout=10)  # `docker stop`: what a laptop's reboot or Docker Desktop does
    finally:
        client.close()
    status = sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120)
    assert status.returncode != 0
    report = json.loads(status.stdout)
    assert report["cluster"]["exists"] is True and report["cluster"]["running"] is False, report
    text = sandbox("status", "--name", e2e_cluster, timeout=120)
    assert "stopped" in text.stdout + text.stderr and "sandbox up" in text.stdout + text.stderr
    started = time.monotonic()
    up = sandbox("up", "--name", e2e_cluster, "-o", "json")
    assert up.returncode == 0, up.stderr
    actions = {p["name"]: p["action"] for p in json.loads(up.stdout)["phases"]}
    assert "start" in actions["cluster"], actions  # started, not re-created
    sys.stderr.write(
        f"a stopped node was started and the stack ready in {time.monotonic() - started:.1f}s\n"
    )
    again = sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120)
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["health"] == "ok"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a terminal's job gets SIGINT; see test_stack


def test_ctrl_c_during_a_real_up_is_repaired_by_the_next_up(
    e2e_cluster: str, e2e_provider: str
) -> None:
    name = f"{e2e_cluster}-int"[:32]
    label = _node_label(e2e_provider, name)
    client = _docker()
    assert sandbox("down", "--name", name, timeout=300).returncode == 0  # a clean start
    assert not client.api.containers(all=True, filters={"label": label})
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--name", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 300
        # the low-level list: the high-level one inspects each container it lists and fails
        # when one is gone in between (kind runs short-lived containers of the node image)
        while not client.api.containers(all=True, filters={"label": label}):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no node container appeared"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C while the cluster tool makes the node
        _, stderr = proc.communicate(timeout=120)
        sys.stderr.write(stderr)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        up = sandbox("up", "--name", name)
        assert up.returncode == 0, up.stderr
        status = sandbox("status", "--name", name, "-o", "json", timeout=120)
        assert json.loads(status.stdout)["health"] == "ok", status.stdout
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        # a `docker run` that the engine was still carrying out when its client died can make
        # its container after a first delete: down again until nothing is left
        deadline = time.monotonic() + 120
        while True:
            down = sandbox("down", "--name", name, timeout=300)
            left = client.api.containers(all=True, filters={"label": label})
            if not left or time.monotonic() > deadline:
                break
            time.sleep(2)
        client.close()
    assert down.returncode == 0, down.stderr
    assert not left
    assert not Settings(cluster_name=name, cluster=e2e_provider).cluster_state_dir.exists()


def test_a_controller_scaled_to_zero_is_named_by_run(
    stack: dict[str, Any], e2e_cluster: str
) -> None:
    """On another cluster (``--provider existing``: nothing re-installs it first) a controller
    scaled to 0 leaves every Gateway without status: `run` says so within seconds. On the
    sandbox's own cluster `run` brings the stack up first, which scales it back (the fake
    stack's tests show both sides, tests/integration/test_run_cluster_cli.py)."""
    _kubectl(
        stack, "-n", "envoy-gateway-system", "scale", "deployment/envoy-gateway", "--replicas=0"
    )
    try:
        _kubectl(
            stack,
            "-n",
            "envoy-gateway-system",
            "wait",
            "--for=delete",
            "pod",
            "-l",
            "control-plane=envoy-gateway",
            "--timeout=60s",
            check=False,
        )
        started = time.monotonic()
        result = sandbox(
            "run",
            "quickstart",
            "--provider",
            "existing",
            "--context",
            stack["context"],
            timeout=300,
            KUBECONFIG=stack["kubeconfig"],
        )
        took = time.monotonic() - started
        assert result.returncode == 3, result.stdout + result.stderr
        assert (
            "the Envoy Gateway controller (deployment/envoy-gateway in "
            "envoy-gateway-system) is scaled to 0 replicas"
        ) in result.stderr
        assert "404" not in result.stdout
        assert took < 90, f"took {took:.1f}s"
        status = sandbox("status", "--name", e2e_cluster, "-o", "json", timeout=120)
        assert json.loads(status.stdout)["controller"]["available"] is False
    finally:
        up = sandbox("up", "--name", e2e_cluster)  # re-applies install.yaml: replicas back
    assert up.returncode == 0, up.stderr
    back = json.loads(sandbox("status", "--name", e2e_cluster, "-o", "json").stdout)
    assert back["controller"]["available"] is True
