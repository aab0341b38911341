"""The local provider over real loopback sockets, driven by a scripted model.

The model here is a stand-in whose ``decide`` returns hand-written Decisions, so these tests check
what the reference gateway *does* with a Decision (weights, redirects, header changes, rewrites,
mirrors, timeouts, invalid backends), independently of how the reference model decides.
"""

from __future__ import annotations

import collections
import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from sandbox.errors import InputError
from sandbox.reference.decision import (
    BackendChoice,
    Decision,
    Mirror,
    ModelRedirect,
    ModelRequest,
)
from sandbox.reference.model import (
    DeploymentInfo,
    ListenerInfo,
    Model,
    ServiceInfo,
    ServicePort,
)
from sandbox.reference.objects import HeaderOps
from sandbox.scenario.model import Scenario, TlsSecret
from sandbox.targets.local.pods import deployment_of_pod
from sandbox.targets.local.target import LocalDeployment, LocalTarget

POD_RE = re.compile(
    r"^(?P<dep>.+)-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$"
)

Decide = Callable[[str, int, str, str, str, dict[str, str], str], Decision]


class ScriptedModel(Model):
    """A Model whose decisions come from a function (the gateway under test only carries them out)."""

    def __init__(
        self,
        decide: Decide,
        *,
        listeners: dict[str, list[ListenerInfo]] | None = None,
        services: dict[str, int] | None = None,  # "ns/name" -> replicas of its one Deployment
    ) -> None:
        super().__init__()
        self._decide = decide
        self._listeners = listeners or {"default/eg": [ListenerInfo("http", 80, "HTTP")]}
        for key, replicas in (services or {}).items():
            ns, name = key.split("/")
            self.deployments.append(DeploymentInfo(ns, name, replicas, {"app": name}))
            self.services.append(
                ServiceInfo(ns, name, [ServicePort(8080, target_port=3000)], {"app": name}, [name])
            )

    def gateways(self) -> list[str]:
        return list(self._listeners)

    def listeners(self, gateway: str) -> list[ListenerInfo]:
        return self._listeners[gateway]

    def backends_of(self, namespace: str, service: str) -> list[DeploymentInfo]:
        svc = next(s for s in self.services if (s.namespace, s.name) == (namespace, service))
        return [
            d for d in self.deployments if d.namespace == namespace and d.name in svc.deployments
        ]

    def decide(
        self,
        gateway: str,
        port: int,
        method: str,
        host: str,
        path: str,
        headers: dict[str, str],
        scheme: str = "http",
    ) -> Decision:
        return self._decide(gateway, port, method, host, path, headers, scheme)


def scenario(tmp_path: Path, tls: list[TlsSecret] | None = None) -> Scenario:
    return Scenario(
        name="scripted",
        path=tmp_path,
        file=tmp_path / "scenario.yaml",
        description="scripted",
        gateway="eg",
        manifests=[],
        objects=[],
        checks=[],
        tls=tls or [],
    )


def decision(
    status: int = 200,
    backends: list[BackendChoice] | None = None,
    request: ModelRequest | None = None,
    **kw: Any,
) -> Decision:
    fields: dict[str, Any] = {
        "listener": "http",
        "route": "default/r" if status != 404 else None,
        "rule": 0 if status != 404 else None,
        "response_headers": {},
        "redirect": None,
        "reason": "scripted",
        **kw,
    }
    return Decision(
        status=status,
        gateway="default/eg",
        backends=backends or [],
        request=request or ModelRequest("GET", "www.example.com", "/"),
        **fields,
    )


def passthrough(backends: list[BackendChoice], **kw: Any) -> Decide:
    """Every request goes unchanged to ``backends``."""

    def decide(
        gw: str, port: int, method: str, host: str, path: str, headers: dict[str, str], scheme: str
    ) -> Decision:
        return decision(200, backends, ModelRequest(method, host, path, dict(headers)), **kw)

    return decide


def svc(name: str, weight: int = 1, *, valid: bool = True, ns: str = "default") -> BackendChoice:
    return BackendChoice(
        name, ns, 8080, weight, valid=valid, invalid_reason="" if valid else "no such Service"
    )


@pytest.fixture()
def deploy(tmp_path: Path) -> Iterator[Callable[..., LocalDeployment]]:
    with_stack: list[Any] = []

    def make(model: Model, tls: list[TlsSecret] | None = None) -> LocalDeployment:
        cm = LocalTarget(model_factory=lambda _objects: model).deploy(scenario(tmp_path, tls))
        with_stack.append(cm)
        return cm.__enter__()

    yield make
    for cm in reversed(with_stack):
        cm.__exit__(None, None, None)


def send(
    dep: LocalDeployment,
    path: str = "/",
    host: str = "www.example.com",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    port: int = 80,
    timeout: float = 5,
) -> tuple[int, http.client.HTTPResponse, Any]:
    addr = dep.address("eg", port)
    conn = http.client.HTTPConnection(addr.host, addr.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        raw = resp.read()
        body: Any = json.loads(raw) if resp.getheader("Content-Type") == "application/json" else raw
        return resp.status, resp, body
    finally:
        conn.close()


def test_pods_are_named_like_replicaset_pods(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(
        ScriptedModel(
            passthrough([svc("infra-backend-v1")]), services={"default/infra-backend-v1": 3}
        )
    )
    names = [p.name for p in dep.pods]
    assert len(set(names)) == 3
    for name in names:
        m = POD_RE.match(name)
        assert m and m.group("dep") == "infra-backend-v1", name
    # one ReplicaSet: the same template hash on every pod
    assert len({n.split("-")[-2] for n in names}) == 1
    status, _, body = send(dep, "/get")
    assert status == 200
    assert body["pod"] in names
    assert body["namespace"] == "default"
    assert body["service"] == "infra-backend-v1"


def test_weighted_split_is_observed(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(
        ScriptedModel(
            passthrough([svc("v1", 70), svc("v2", 30), svc("v3", 0)]),
            services={"default/v1": 2, "default/v2": 2, "default/v3": 1},
        )
    )
    counts: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    for _ in range(200):
        status, _, body = send(dep, "/w")
        assert status == 200
        counts[deployment_of_pod(body["pod"])] += 1
    assert time.monotonic() - started < 5
    assert set(counts) == {"v1", "v2"}  # weight 0 gets nothing
    assert abs(counts["v1"] / 200 - 0.7) < 0.1
    # both pods of a Service take traffic (round robin)
    pods_v1 = {p.name for p in dep.pods_of("default", "v1")}
    assert all(any(p.saw("/w") for p in dep.pods if p.name == n) for n in pods_v1)


def test_invalid_backend_share_answers_500(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(
        ScriptedModel(
            passthrough([svc("v1", 1), svc("missing", 1, valid=False)]), services={"default/v1": 1}
        )
    )
    statuses = collections.Counter(send(dep, "/x")[0] for _ in range(60))
    assert set(statuses) == {200, 500}
    assert 10 < statuses[500] < 50


def test_all_invalid_backends_is_500_from_the_gateway(
    deploy: Callable[..., LocalDeployment],
) -> None:
    dep = deploy(ScriptedModel(lambda *a: decision(500, [svc("missing", valid=False)])))
    status, resp, body = send(dep)
    assert status == 500
    assert b"local reference gateway" in body
    assert resp.getheader("Server") is None


def test_unknown_host_is_404(deploy: Callable[..., LocalDeployment]) -> None:
    def decide(
        gw: str, port: int, method: str, host: str, path: str, headers: dict[str, str], scheme: str
    ) -> Decision:
        if host == "www.example.com":
            return decision(200, [svc("v1")], ModelRequest(method, host, path, headers))
        return decision(404)

    dep = deploy(ScriptedModel(decide, services={"default/v1": 1}))
    assert send(dep, host="www.example.com")[0] == 200
    status, _, body = send(dep, "/unrouted", host="nope.example.com")
    assert status == 404
    assert b"no route matched" in body
    assert not any(p.saw("/unrouted") for p in dep.pods)
    assert "nope.example.com" in dep.diagnostics()


def test_redirect_is_answered_by_the_gateway(deploy: Callable[..., LocalDeployment]) -> None:
    redirect = ModelRedirect("https", "example.org", None, "/new", "https://example.org/new")
    dep = deploy(
        ScriptedModel(lambda *a: decision(301, redirect=redirect), services={"default/v1": 1})
    )
    status, resp, _ = send(dep, "/old")
    assert status == 301
    assert resp.getheader("Location") == "https://example.org/new"
    assert not any(p.requests for p in dep.pods)


def test_request_as_decided_reaches_the_backend(deploy: Callable[..., LocalDeployment]) -> None:
    """Header modifiers and URL rewrite: the backend sees exactly the Decision's request."""

    def decide(
        gw: str, port: int, method: str, host: str, path: str, headers: dict[str, str], scheme: str
    ) -> Decision:
        assert headers.get("X-In") == "a,b"  # repeated headers reach the model joined
        assert "Host" not in headers and "host" not in headers
        changed = {k: v for k, v in headers.items() if k.lower() not in ("x-remove", "x-in")}
        changed["X-Added"] = "yes"
        return decision(
            200,
            [svc("v1")],
            ModelRequest(method, "rewritten.example.com", "/prefix/x?q=1", changed),
        )

    dep = deploy(ScriptedModel(decide, services={"default/v1": 1}))
    addr = dep.address("eg", 80)
    conn = http.client.HTTPConnection(addr.host, addr.port, timeout=5)
    conn.putrequest("GET", "/old/x?q=1", skip_host=True, skip_accept_encoding=True)
    for k, v in [
        ("Host", "www.example.com"),
        ("X-In", "a"),
        ("X-In", "b"),
        ("X-Remove", "1"),
        ("X-Keep", "k"),
    ]:
        conn.putheader(k, v)
    conn.endheaders()
    body = json.loads(conn.getresponse().read())
    conn.close()
    assert body["path"] == "/prefix/x?q=1"
    assert body["host"] == "rewritten.example.com"
    assert body["headers"]["X-Added"] == ["yes"]
    assert body["headers"]["X-Keep"] == ["k"]
    assert "X-Remove" not in body["headers"] and "X-In" not in body["headers"]


def test_response_header_modifier(deploy: Callable[..., LocalDeployment]) -> None:
    ops = HeaderOps(
        set=[("X-Set", "s")], add=[("X-Echoed", "added")], remove=["X-Content-Type-Options"]
    )
    dep = deploy(
        ScriptedModel(
            passthrough([svc("v1")], response_header_ops=[ops]), services={"default/v1": 1}
        )
    )
    status, resp, _ = send(dep, headers={"X-Echo-Set-Header": "X-Echoed:from-backend"})
    assert status == 200
    assert resp.getheader("X-Set") == "s"
    assert resp.getheader("X-Echoed") == "from-backend,added"
    assert resp.getheader("X-Content-Type-Options") is None
    assert resp.getheader("Content-Type") == "application/json"
    assert "envoy" not in str(resp.getheaders()).lower()


def test_mirror_reaches_the_mirror_backend(deploy: Callable[..., LocalDeployment]) -> None:
    mirrors = [Mirror("mirror", "default", 8080, 100.0), Mirror("never", "default", 8080, 0.0)]
    dep = deploy(
        ScriptedModel(
            passthrough([svc("v1")], mirrors=mirrors),
            services={"default/v1": 1, "default/mirror": 1, "default/never": 1},
        )
    )
    status, _, body = send(dep, "/mirrored?id=42")
    assert status == 200
    assert deployment_of_pod(body["pod"]) == "v1"  # the answer comes from the real backend
    dep.wait_mirrors()
    assert any(p.saw("/mirrored?id=42") for p in dep.pods_of("default", "mirror"))
    assert not any(p.requests for p in dep.pods_of("default", "never"))


def test_request_timeout_is_504(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(
        ScriptedModel(passthrough([svc("v1")], request_timeout=0.3), services={"default/v1": 1})
    )
    started = time.monotonic()
    status, _, _ = send(dep, "/slow?delay=3s")
    assert status == 504
    assert time.monotonic() - started < 2
    assert send(dep, "/fast?delay=10ms")[0] == 200


def test_backend_timeout_is_504(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(
        ScriptedModel(passthrough([svc("v1")], backend_timeout=0.3), services={"default/v1": 1})
    )
    assert send(dep, "/slow?delay=2s")[0] == 504


@pytest.mark.parametrize(("request_timeout", "backend_timeout"), [(0.3, 30.0), (30.0, 0.3)])
def test_the_shorter_of_request_and_backend_timeout_wins(
    deploy: Callable[..., LocalDeployment], request_timeout: float, backend_timeout: float
) -> None:
    dep = deploy(
        ScriptedModel(
            passthrough(
                [svc("v1")], request_timeout=request_timeout, backend_timeout=backend_timeout
            ),
            services={"default/v1": 1},
        )
    )
    started = time.monotonic()
    assert send(dep, "/slow?delay=2s")[0] == 504
    assert time.monotonic() - started < 1.5


def test_service_without_pods_is_503(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 0}))
    assert send(dep)[0] == 503


def test_address_errors_name_what_exists(deploy: Callable[..., LocalDeployment]) -> None:
    dep = deploy(ScriptedModel(passthrough([])))
    assert dep.address("eg", 80) == dep.address("default/eg", 80)
    with pytest.raises(InputError, match="ports: 80"):
        dep.address("eg", 8080)
    with pytest.raises(InputError, match="default/eg"):
        dep.address("other", 80)


def test_diagnostics_describe_decisions_and_name_the_provider(
    deploy: Callable[..., LocalDeployment],
) -> None:
    dep = deploy(ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 1}))
    send(dep, "/diag")
    text = dep.diagnostics()
    assert "provider local" in text
    assert "GET http://www.example.com/diag via default/eg:80 -> 200" in text
    assert "scripted" in text  # the model's reason
    assert "envoy" not in text.lower()


def test_servers_stop_on_exit(tmp_path: Path) -> None:
    model = ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 2})
    with LocalTarget(model_factory=lambda _o: model).deploy(scenario(tmp_path)) as dep:
        ports = [dep.address("eg", 80).port] + [p.port for p in dep.pods]
        assert send(dep)[0] == 200
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_servers_stop_on_ctrl_c(tmp_path: Path) -> None:
    model = ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 1})
    ports: list[int] = []
    with (
        pytest.raises(KeyboardInterrupt),
        LocalTarget(model_factory=lambda _o: model).deploy(scenario(tmp_path)) as dep,
    ):
        ports = [dep.address("eg", 80).port, dep.pods[0].port]
        raise KeyboardInterrupt
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _tls_get(port: int, sni: str) -> tuple[x509.Certificate, int, Any]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET /tls HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        resp = http.client.HTTPResponse(tls)
        resp.begin()
        body = json.loads(resp.read())
        return x509.load_der_x509_certificate(der), resp.status, body


def test_https_listeners_pick_the_certificate_by_sni(
    deploy: Callable[..., LocalDeployment],
) -> None:
    seen: list[str] = []

    def decide(
        gw: str, port: int, method: str, host: str, path: str, headers: dict[str, str], scheme: str
    ) -> Decision:
        seen.append(scheme)
        return decision(200, [svc("v1")], ModelRequest(method, host, path, headers))

    listeners = {
        "default/eg": [
            ListenerInfo("a", 443, "HTTPS", "a.example.com", ("default/cert-a",)),
            ListenerInfo("org", 443, "HTTPS", "*.example.org", ("default/cert-org",)),
        ]
    }
    tls = [TlsSecret("cert-a", ["a.example.com"]), TlsSecret("cert-org", ["*.example.org"])]
    dep = deploy(ScriptedModel(decide, listeners=listeners, services={"default/v1": 1}), tls)
    port = dep.address("eg", 443).port
    for sni, san in [("a.example.com", "a.example.com"), ("b.example.org", "*.example.org")]:
        cert, status, body = _tls_get(port, sni)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [san]
        assert status == 200
        assert body["host"] == sni
    assert seen == ["https", "https"]


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def test_http2_preface_goes_to_the_grpc_hook(
    deploy: Callable[..., LocalDeployment], monkeypatch: pytest.MonkeyPatch
) -> None:
    """sandbox.targets.local.grpc.handle_connection receives connections that open with the
    HTTP/2 preface (gRPC over h2c), with everything it needs to route them."""
    from sandbox.targets.local import grpc as local_grpc
    from sandbox.targets.local.grpc import GrpcConnection

    handed: list[GrpcConnection] = []

    def handle_connection(conn: GrpcConnection) -> None:
        rest = conn.rfile.read(len(H2_PREFACE) - len(conn.preface))
        handed.append(conn)
        pod = conn.pick_pod("default", "v1")
        conn.record(f"grpc hook saw {conn.preface + rest!r}")
        conn.sock.sendall(f"{conn.gateway} {conn.port} {conn.scheme} {pod and pod.name}".encode())

    monkeypatch.setattr(local_grpc, "handle_connection", handle_connection)
    dep = deploy(ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 1}))
    addr = dep.address("eg", 80)
    with socket.create_connection((addr.host, addr.port), timeout=5) as s:
        s.sendall(H2_PREFACE)
        answer = s.recv(200).decode()
    assert answer == f"default/eg 80 http {dep.pods[0].name}"
    assert len(handed) == 1 and handed[0].model is dep.model
    assert repr(H2_PREFACE) in dep.diagnostics()
    # plain HTTP/1.1 on the same port is unaffected
    assert send(dep)[0] == 200


def test_client_that_hangs_up_leaves_no_traceback(
    deploy: Callable[..., LocalDeployment], capfd: pytest.CaptureFixture[str]
) -> None:
    dep = deploy(ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 1}))
    addr = dep.address("eg", 80)
    for _ in range(3):
        with socket.create_connection((addr.host, addr.port), timeout=5) as s:
            s.sendall(b"GET /hangup?delay=100ms HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(p.saw("/hangup?delay=100ms") for p in dep.pods):
        time.sleep(0.02)
    time.sleep(0.3)  # the gateway writes its answer into the closed connection
    assert send(dep)[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_startup_wait_is_bounded_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.echo.http import EchoServer
    from sandbox.errors import WaitTimeout

    model = ScriptedModel(passthrough([svc("v1")]), services={"default/v1": 1})
    started: list[int] = []

    def echo(*a: Any, **kw: Any) -> Any:
        server = EchoServer(*a, **kw)
        started.append(server.port)
        return server

    def refuse(address: tuple[str, int], timeout: float = 0) -> socket.socket:
        raise ConnectionRefusedError("refused (test)")

    monkeypatch.setattr("sandbox.targets.local.target.EchoServer", echo)
    monkeypatch.setattr("sandbox.targets.local.target.socket.create_connection", refuse)
    t0 = time.monotonic()
    with (
        pytest.raises(WaitTimeout, match="refused"),
        LocalTarget(startup_timeout=0.2, model_factory=lambda _o: model).deploy(scenario(tmp_path)),
    ):
        pass
    assert time.monotonic() - t0 < 2
    monkeypatch.undo()
    assert started
    for port in started:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
