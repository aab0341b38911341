"""`sandbox up / down / status / doctor --cluster kind` against the fake kind, kubectl and Docker
engine (tests/fakes/kind: kind v0.33.0's output, taken from its source and checked against the
real binary that ../shared/realstack builds). What this proves: the commands the sandbox gives
kind, what it does with kind's answers and failures, and what it leaves behind. That a real kind
cluster comes up is proven by tests/e2e on the real stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import fakestate
from harness import SANDBOX_TIMEOUT, FakeWorld

NODE_IMAGE = "kindest/node:v1.35.4"  # a tag without a digest, as our CI's locally built one
STACK_IMAGES = [
    "docker.io/envoyproxy/gateway:v1.9.0",
    "docker.io/envoyproxy/envoy:distroless-v1.39.0",
]
KIND = {"SANDBOX_CLUSTER": "kind", "SANDBOX_KIND_NODE_IMAGE": NODE_IMAGE}

USER_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\n# mine\ncurrent-context: mine\n"
    "contexts:\n- name: mine\n  context: {cluster: mine, user: me}\n"
    "clusters:\n- name: mine\n  cluster: {server: 'https://10.0.0.1:6443'}\nusers:\n- name: me\n  user: {}\n"
)


def _engine(world: FakeWorld, *, images: list[str], cgroup: str = "2") -> None:
    with fakestate.locked(world.state_dir) as st:
        st.setdefault("engine", {})["images"] = images
        st["engine"]["cgroupVersion"] = cgroup


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FakeWorld]:
    with FakeWorld(tmp_path) as w:
        _engine(w, images=[NODE_IMAGE, *STACK_IMAGES])
        yield w


def _sandbox(world: FakeWorld, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return world.sandbox(*args, timeout=SANDBOX_TIMEOUT, **{**KIND, **env})


def _up(world: FakeWorld, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = _sandbox(world, "up", *args, **env)
    assert result.returncode == 0, result.stderr
    return result


def _kind(world: FakeWorld, *verb: str) -> list[list[str]]:
    return [c for c in world.calls("kind") if c[: len(verb)] == list(verb)]


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _cluster(world: FakeWorld, name: str = "sandbox") -> dict[str, Any]:
    cluster: dict[str, Any] = world.state()["clusters"][name]
    return cluster


def test_up_creates_a_kind_cluster_with_a_private_kubeconfig_and_loads_the_images(
    world: FakeWorld,
) -> None:
    (world.home / ".kube").mkdir()
    (world.home / ".kube" / "config").write_text(USER_KUBECONFIG)
    result = _up(world)

    [create] = _kind(world, "create", "cluster")
    assert _flag(create, "--name") == "sandbox"
    assert _flag(create, "--image") == NODE_IMAGE
    scratch = Path(_flag(create, "--kubeconfig"))
    assert world.sandbox_state in scratch.parents  # kind writes only the sandbox's own file
    config = _cluster(world)["config"]
    assert config["networking"] == {"apiServerAddress": "127.0.0.1"}  # a free port, loopback
    [mount] = config["nodes"][0]["extraMounts"]
    assert mount["readOnly"] is True and Path(mount["hostPath"]).is_file()  # the owner mark
    assert "kubeadmConfigPatches" not in config  # cgroup v2: nothing to turn off
    # the images the engine has and the node lacked were loaded, the node image was not pulled
    [load] = _kind(world, "load", "docker-image")
    assert sorted(load[2 : load.index("--name")]) == sorted(STACK_IMAGES)
    assert _cluster(world)["images"] == load[2 : load.index("--name")]
    # the user's kubeconfig is byte for byte what it was; the sandbox's has the one context
    assert (world.home / ".kube" / "config").read_text() == USER_KUBECONFIG
    private = yaml.safe_load(world.kubeconfig("kind-sandbox").read_text())
    assert [c["name"] for c in private["contexts"]] == ["kind-sandbox"]
    assert (
        private["clusters"][0]["cluster"]["server"]
        == f"https://127.0.0.1:{_cluster(world)['apiPort']}"
    )
    assert "ready in" in result.stderr and "kind cluster sandbox" in result.stderr


def test_cgroup_v1_is_said_in_up_and_doctor_and_patched_into_the_kubelet(world: FakeWorld) -> None:
    _engine(world, images=[NODE_IMAGE, *STACK_IMAGES], cgroup="1")
    why = "cgroup v1, which the Kubernetes 1.35+ kubelet refuses unless told"
    doctor = _sandbox(world, "doctor")
    assert why in doctor.stdout + doctor.stderr
    result = _up(world)
    assert why in result.stderr and "failCgroupV1: false" in result.stderr
    assert _cluster(world)["config"]["kubeadmConfigPatches"] == [
        "kind: KubeletConfiguration\nfailCgroupV1: false\n"
    ]


def test_a_second_up_creates_and_loads_nothing(world: FakeWorld) -> None:
    _up(world)
    t0 = time.monotonic()
    result = _up(world)
    elapsed = time.monotonic() - t0
    assert len(_kind(world, "create", "cluster")) == 1
    assert len(_kind(world, "load", "docker-image")) == 1  # the node already holds them
    assert elapsed < 10, result.stderr


def test_a_stopped_node_is_shown_by_status_and_started_by_up(world: FakeWorld) -> None:
    _up(world)
    with fakestate.locked(world.state_dir) as st:
        st["clusters"]["sandbox"]["running"] = False  # `docker stop sandbox-control-plane`
    status = _sandbox(world, "status", "-o", "json")
    assert status.returncode != 0
    report = json.loads(status.stdout)
    assert report["cluster"]["exists"] is True and report["cluster"]["running"] is False, report
    result = _up(world)
    assert _cluster(world)["running"] is True
    assert len(_kind(world, "create", "cluster")) == 1  # started, not re-created
    assert "start" in result.stderr


def test_a_kind_cluster_the_sandbox_did_not_create_is_never_touched(world: FakeWorld) -> None:
    made = world.tool(
        "kind",
        "create",
        "cluster",
        "--name",
        "sandbox",
        "--image",
        NODE_IMAGE,
        "--kubeconfig",
        str(world.root / "theirs.kubeconfig"),
    )
    assert made.returncode == 0, made.stderr
    before = len(world.calls("kind"))
    up = _sandbox(world, "up")
    down = _sandbox(world, "down")
    assert up.returncode == 3 and down.returncode == 3, (up.stderr, down.stderr)
    assert "not created by" in up.stderr or "did not create" in up.stderr, up.stderr
    assert "sandbox" in world.state()["clusters"]
    assert [c for c in world.calls("kind")[before:] if c[0] in ("delete", "create", "load")] == []


def test_offline_names_a_missing_image_at_once_and_creates_nothing(world: FakeWorld) -> None:
    _engine(world, images=[NODE_IMAGE, STACK_IMAGES[0]])
    t0 = time.monotonic()
    result = _sandbox(world, "up", "--offline")
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - t0 < 15
    assert STACK_IMAGES[1] in result.stderr and "needed by Envoy data plane" in result.stderr
    assert _kind(world, "create", "cluster") == []


def test_a_failed_create_is_reported_with_kinds_error_and_repaired_by_the_next_up(
    world: FakeWorld,
) -> None:
    failed = _sandbox(world, "up", FAKE_KIND_CREATE_FAIL="1")
    assert failed.returncode == 3
    assert "kind could not create cluster 'sandbox'" in failed.stderr
    assert "failed to init node with kubeadm" in failed.stderr  # kind's own words, tail
    assert world.state()["clusters"] == {}  # kind rolled its node back (no --retain)
    _up(world)
    assert _cluster(world)["running"] is True


def test_down_deletes_the_cluster_its_kubeconfig_and_the_network_it_created(
    world: FakeWorld,
) -> None:
    _up(world)
    assert world.state()["networks"] == ["kind"]
    result = _sandbox(world, "down")
    assert result.returncode == 0, result.stderr
    [delete] = _kind(world, "delete", "cluster")
    assert _flag(delete, "--name") == "sandbox"
    assert world.sandbox_state in Path(_flag(delete, "--kubeconfig")).parents
    assert world.state()["clusters"] == {}
    assert world.state()["networks"] == []  # the sandbox made it, nothing else is on it
    assert not world.kubeconfig("kind-sandbox").exists()
    again = _sandbox(world, "down")
    assert again.returncode == 0, again.stderr
    assert len(_kind(world, "delete", "cluster")) == 1  # nothing left to ask kind about


def test_down_keeps_a_kind_network_that_was_there_before(world: FakeWorld) -> None:
    with fakestate.locked(world.state_dir) as st:
        st["networks"] = ["kind"]  # someone's earlier kind cluster made it
    _up(world)
    assert _sandbox(world, "down").returncode == 0
    assert world.state()["networks"] == ["kind"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # see test_stack._default_sigint


def test_ctrl_c_while_kind_creates_leaves_a_node_that_the_next_up_replaces(
    world: FakeWorld,
) -> None:
    proc = subprocess.Popen(
        world.sandbox_argv("up"),
        env={**world.env, **KIND, "FAKE_KIND_CREATE_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 20
        while "sandbox" not in world.state()["clusters"] and time.monotonic() < deadline:
            time.sleep(0.05)  # kind has made the node and is "starting the control plane"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert _cluster(world)["running"] is False  # kind died: its half-made node stays
    _up(world)
    # the half-made cluster was the sandbox's (its owner mark): deleted, then made again
    assert len(_kind(world, "delete", "cluster")) == 1
    assert len(_kind(world, "create", "cluster")) == 2
    assert _cluster(world)["running"] is True
