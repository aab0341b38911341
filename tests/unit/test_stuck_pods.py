"""Pods that cannot become ready are named with their reason and last events (sandbox.infra.kube).

Shapes follow the Pod and Event objects kubectl prints with -o json (k8s.io/api core/v1
ContainerStateWaiting reason/message, PodCondition PodScheduled/Unschedulable, Event
involvedObject/reason/message/lastTimestamp); reasons from the kubelet (pkg/kubelet/images
ErrImagePull, ImagePullBackOff; pkg/kubelet/container CrashLoopBackOff). Scheduler messages as
k8s v1.35 writes them: pkg/scheduler/framework/types.go FitError.Error ("0/N nodes are
available: <sorted 'count reason' list>." + the PostFilter message), reasons from
plugins/noderesources/fit.go ("Insufficient cpu", "Too many pods"), plugins/tainttoleration
("node(s) had untolerated taint {key: value}"), preemption from
framework/preemption/preemption.go ("Preemption is not helpful for scheduling") and
plugins/defaultpreemption ("preemption: " + "No preemption victims found for incoming pod")."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.infra.kube import image_hint, last_events, stuck_pods, waits_for_room


def _pod(
    name: str,
    *,
    waiting: str | None = None,
    message: str = "",
    init: bool = False,
    unschedulable: str | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending", "conditions": []}
    if waiting:
        key = "initContainerStatuses" if init else "containerStatuses"
        status[key] = [
            {
                "name": "c",
                "image": "registry.k8s.io/gateway-api/echo-basic:v9",
                "ready": False,
                "restartCount": restarts,
                "state": {"waiting": {"reason": waiting, "message": message}},
            }
        ]
    if unschedulable:
        status["conditions"].append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        )
    return {"metadata": {"name": name}, "status": status}


TAINTED = (
    "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)
NO_VICTIMS = " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
NOT_HELPFUL = " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def test_image_pull_and_crash_loops_and_unschedulable_are_stuck() -> None:
    pods = {
        "items": [
            _pod("a", waiting="ErrImagePull", message='failed to pull "x": not found'),
            _pod(
                "b",
                waiting="CrashLoopBackOff",
                message="back-off 20s restarting failed container",
                restarts=2,
            ),
            # retried by the kubelet, and seen to succeed on a cgroup v1 host: not stuck (yet)
            _pod("b1", waiting="CrashLoopBackOff", restarts=1),
            _pod("b2", waiting="RunContainerError", message="runc create failed: unable to freeze"),
            _pod("c", waiting="ContainerCreating"),  # on its way: not stuck
            _pod("d", unschedulable=TAINTED),
            _pod("e", waiting="ImagePullBackOff", init=True),
            {"metadata": {"name": "f"}, "status": {"phase": "Running"}},
        ]
    }
    stuck = stuck_pods(pods)
    assert set(stuck) == {"a", "b", "d", "e"}
    assert stuck["a"] == (
        "container c (registry.k8s.io/gateway-api/echo-basic:v9): ErrImagePull: "
        'failed to pull "x": not found'
    )
    assert stuck["d"] == "Unschedulable: " + TAINTED
    assert "ImagePullBackOff" in stuck["e"]
    assert stuck_pods(None) == {}


def test_last_events_are_the_objects_own_newest_first_deduplicated() -> None:
    events = {
        "items": [
            {
                "involvedObject": {"name": "a"},
                "reason": "Pulling",
                "message": "Pulling image x",
                "lastTimestamp": "2026-12-02T10:00:01Z",
            },
            {
                "involvedObject": {"name": "other"},
                "reason": "Started",
                "message": "no",
                "lastTimestamp": "2026-12-02T10:00:02Z",
            },
            {
                "involvedObject": {"name": "a"},
                "reason": "Failed",
                "message": "Error: ErrImagePull",
                "lastTimestamp": "2026-12-02T10:00:03Z",
            },
            {
                "involvedObject": {"name": "a"},
                "reason": "Failed",
                "message": "Error: ErrImagePull",
                "lastTimestamp": "2026-12-02T10:00:04Z",
            },
            {
                "involvedObject": {"name": "a"},
                "reason": "BackOff",
                "message": "Back-off pulling image x",
                "eventTime": "2026-12-02T10:00:05.000000Z",
            },
        ]
    }
    assert last_events(events, "a") == [
        "Pulling: Pulling image x",
        "Failed: Error: ErrImagePull",
        "BackOff: Back-off pulling image x",
    ]
    assert last_events(events, "a", count=1) == ["BackOff: Back-off pulling image x"]
    assert last_events(events, "nobody") == []


def test_hints_name_the_fix_for_each_kind_of_stuck() -> None:
    assert "sandbox up --pull" in (image_hint(["pod x/a: container c: ImagePullBackOff"]) or "")
    assert "logs --previous" in (image_hint(["pod x/a: container c: CrashLoopBackOff"]) or "")
    assert "describe node" in (image_hint(["pod x/a: Unschedulable: no"]) or "")
    assert image_hint(["pod x/a: something else"]) is None


@pytest.mark.parametrize(
    "message",
    [
        # what the last CI run's https-listener data plane saw while earlier runs' Envoy pods
        # were terminating: scheduled seconds later
        "0/1 nodes are available: 1 Insufficient cpu." + NO_VICTIMS,
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory." + NO_VICTIMS,
        "0/1 nodes are available: 1 Too many pods." + NO_VICTIMS,
        "0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu.",  # no preemption
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
        "1 No preemption victims found for incoming pod, 1 Preemption is not helpful for "
        "scheduling.",  # one node can make room
    ],
)
def test_a_pod_waiting_for_room_that_other_pods_hold_is_not_stuck(message: str) -> None:
    assert waits_for_room(message)
    assert stuck_pods({"items": [_pod("p", unschedulable=message)]}) == {}


@pytest.mark.parametrize(
    "message",
    [
        TAINTED,
        # asks for more than the node has at all: UnschedulableAndUnresolvable, no preemption
        "0/1 nodes are available: 1 Insufficient cpu." + NOT_HELPFUL,
        # short of cpu, and the other node is tainted: the shortage alone does not say it fits
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
        "{dedicated: infra}." + NO_VICTIMS,
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        + NOT_HELPFUL,
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        "",  # nothing said: not a reason to wait
    ],
)
def test_a_pod_no_node_will_take_is_stuck(message: str) -> None:
    assert not waits_for_room(message)
    stuck = stuck_pods({"items": [_pod("p", unschedulable=message or "?")]})
    assert list(stuck) == ["p"]
    assert stuck["p"].startswith("Unschedulable: ")
