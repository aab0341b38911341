"""Pure parts of sandbox.kube."""

from __future__ import annotations

from pathlib import Path

from sandbox.kube import Kubectl, summarize_status


def test_argv_always_pins_kubeconfig_and_context() -> None:
    k = Kubectl("/bin/kubectl", Path("/state/kubeconfig"), "k3d-sandbox")
    assert k.argv(["get", "nodes"]) == [
        "/bin/kubectl", "--kubeconfig", "/state/kubeconfig", "--context", "k3d-sandbox",
        "get", "nodes",
    ]
    assert k.env["KUBECONFIG"] == "/state/kubeconfig"


def test_summarize_conditions() -> None:
    obj = {
        "kind": "GatewayClass",
        "metadata": {"name": "eg"},
        "status": {
            "conditions": [
                {"type": "Accepted", "status": "False", "reason": "Waiting", "message": "pending"}
            ]
        },
    }
    assert summarize_status(obj) == "gatewayclass/eg: Accepted=False (Waiting: pending)"
    assert summarize_status(None) == "not found"
    assert summarize_status({"kind": "List", "items": []}) == "no objects"
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Pending"}}
    assert summarize_status({"items": [pod, obj]}) == (
        "pod/p: phase=Pending; gatewayclass/eg: Accepted=False (Waiting: pending)"
    )
    assert summarize_status({"kind": "Node", "metadata": {"name": "n"}}) == "node/n: no conditions yet"


def test_klog_lines_are_dropped_from_messages() -> None:
    from sandbox.kube import _without_klog

    stderr = (
        'E1126 22:35:09.854057   17913 memcache.go:265] "Unhandled Error" err="connection refused"\n'
        "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n"
    )
    assert _without_klog(stderr) == (
        "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
    )
    only = "E1126 22:35:09.854057   17913 portforward.go:406] lost connection to pod"
    assert _without_klog(only) == only
