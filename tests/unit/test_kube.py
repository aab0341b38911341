"""Pure parts of sandbox.infra.kube."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.infra.kube import Kubectl, summarize_status, unreachable


def test_argv_always_pins_kubeconfig_and_context() -> None:
    k = Kubectl("/bin/kubectl", Path("/state/kubeconfig"), "k3d-sandbox")
    assert k.argv(["get", "nodes"]) == [
        "/bin/kubectl",
        "--kubeconfig",
        "/state/kubeconfig",
        "--context",
        "k3d-sandbox",
        "get",
        "nodes",
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
    assert (
        summarize_status({"kind": "Node", "metadata": {"name": "n"}}) == "node/n: no conditions yet"
    )


def test_klog_lines_are_dropped_from_messages() -> None:
    from sandbox.infra.kube import _without_klog

    stderr = (
        'E1126 22:35:09.854057   17913 memcache.go:265] "Unhandled Error" err="connection refused"\n'
        "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n"
    )
    assert _without_klog(stderr) == (
        "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
    )
    only = "E1126 22:35:09.854057   17913 portforward.go:406] lost connection to pod"
    assert _without_klog(only) == only


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        # kubectl pkg/cmd/util/helpers.go StandardErrorMessage, after client-go's klog line
        (
            'E1126 22:35:09.854057   17913 memcache.go:265] "Unhandled Error" err="couldn\'t get current '
            'server API group list: Get \\"https://127.0.0.1:6443/api?timeout=32s\\": dial tcp '
            '127.0.0.1:6443: connect: connection refused"\n'
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host "
            "or port?\n",
            ("127.0.0.1:6443", "refuses connections"),
        ),
        (
            "Unable to connect to the server: dial tcp 10.1.2.3:6443: connect: no route to host\n",
            ("10.1.2.3:6443", "cannot be reached (no route to host)"),
        ),
        (
            "Unable to connect to the server: dial tcp 10.1.2.3:6443: i/o timeout\n",
            ("10.1.2.3:6443", "does not answer (connecting timed out)"),
        ),
        (
            "Unable to connect to the server: dial tcp: lookup api.example.test on 127.0.0.53:53: no "
            "such host\n",
            ("api.example.test", "has a name that does not resolve (no such host)"),
        ),
        # the server answered: not "unreachable" (a starting server, a webhook's own dial error)
        ("Unable to connect to the server: net/http: TLS handshake timeout\n", None),
        (
            'Error from server (InternalError): error when creating "STDIN": Internal error occurred: '
            'failed calling webhook "w": failed to call webhook: Post "https://svc.ns.svc:443/x": dial '
            "tcp 10.43.0.5:443: connect: connection refused\n",
            None,
        ),
        ('Error from server (NotFound): nodes "x" not found\n', None),
    ],
)
def test_unreachable_api_server_in_kubectls_words(
    stderr: str, expected: tuple[str, str] | None
) -> None:
    assert unreachable(stderr) == expected


def test_the_server_url_comes_from_the_contexts_cluster(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: a\n  cluster: {server: 'https://10.0.0.1:6443'}\n"
        "- name: b\n  cluster: {server: 'https://127.0.0.1:41234'}\n"
        "contexts:\n- name: k3d-sandbox\n  context: {cluster: b, user: u}\n"
    )
    assert Kubectl("kubectl", config, "k3d-sandbox").server() == "https://127.0.0.1:41234"
    assert Kubectl("kubectl", config, "other").server() is None
    assert Kubectl("kubectl", tmp_path / "missing", "k3d-sandbox").server() is None
