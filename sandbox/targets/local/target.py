"""The ``local`` provider: a scenario served on loopback by the reference model, no cluster at all.

``LocalTarget().deploy(scenario)`` builds the reference ``Model`` from the scenario's objects and
starts, all on 127.0.0.1 with OS-chosen ports:

- **echo backends standing in for pods**: for every Deployment selected by a Service,
  ``replicas`` (default 1) :class:`~sandbox.echo.http.EchoServer` instances named like the pods a
  ReplicaSet makes (``<deployment>-<pod-template-hash>-<5 chars>``), with the logical namespace
  and the Service name set;
- **one reference gateway per (Gateway, listener port)**: a threaded HTTP/1.1 proxy (TLS on
  HTTPS listeners) that asks the model for a :class:`~sandbox.reference.decision.Decision` on
  every request and carries it out: 404/500 and redirects are answered by the gateway itself;
  otherwise one backend is drawn by weight (an invalid backend's share answers 500), the
  request the Decision describes (method, path, Host, headers, after filters and rewrites) is sent
  to one pod of that Service (round robin), mirrors are sent fire-and-forget, the rule's
  timeouts answer 504, and the Decision's response headers are set on the way back.

Nothing here imitates a particular proxy: the gateway adds no ``Server`` header and names itself
"local reference gateway" in the bodies it writes.

gRPC: a connection that opens with the HTTP/2 preface (``PRI * HTTP/2.0``, i.e. gRPC over h2c,
or h2 via ALPN on HTTPS listeners) is handed, as a ``GrpcConnection``, to
``sandbox.targets.local.grpc.handle_connection``; pods of Deployments whose literal env sets
``GRPC_ECHO_SERVER`` (as the upstream gRPC echo backends do) are gRPC echo servers from the
same module, whose fronts are closed when the deployment ends.

The parts: ``pods`` (echo pods and their names), ``router`` (a Decision carried out), ``http``
(the HTTP/1.1 proxy front), ``grpc`` (the gRPC front and echo pods), ``tls`` (certificates and
SNI); this module puts them together behind the ``Target`` protocol.
"""

from __future__ import annotations

import contextlib
import random
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.echo.http import EchoServer
from sandbox.errors import (
    EnvironmentProblem,
    InputError,
    SandboxError,
    TargetUnreachable,
    WaitTimeout,
)
from sandbox.infra.kube import Kubectl
from sandbox.probe.types import Address, Refusals
from sandbox.reference.model import ListenerInfo, Model
from sandbox.reference.verify import unattached_lines
from sandbox.scenario.model import Scenario
from sandbox.targets.local import grpc as local_grpc
from sandbox.targets.local.http import _ProxyServer
from sandbox.targets.local.pods import (
    HOST,
    STARTUP_TIMEOUT,
    LocalPod,
    _Server,
    image_warnings,
    pod_names,
)
from sandbox.targets.local.router import MIRROR_TIMEOUT, _Router
from sandbox.targets.local.tls import _tls_context

PROVIDER = "local"
MAX_REPLICAS = 16  # more pods than this add nothing to a loopback run


# ---------------------------------------------------------------------------------------------
# Pod names, as Kubernetes makes them
#
# - ReplicaSet name: ``<deployment>-<pod-template-hash>``, where the hash is
#   ``rand.SafeEncodeString(fmt.Sprint(fnv32a(pod template).Sum32()))``
#   (kubernetes/kubernetes pkg/controller/controller_utils.go ``ComputeHash``);
# - SafeEncodeString maps each character ``c`` of the decimal string to
#   ``alphanums[int(c) % len(alphanums)]`` with ``alphanums = "bcdfghjklmnpqrstvwxz2456789"``
#   (staging/src/k8s.io/apimachinery/pkg/util/rand/rand.go), so a hash has 1-10 characters, all
#   from "4567 89bcdf" (the digits' code points modulo 27);
# - pod name: ``generateName = "<replicaset>-"`` truncated to 58 characters, plus
#   ``rand.String(5)`` from the same alphabet (staging/src/k8s.io/apiserver/pkg/storage/names/
#   generate.go: maxNameLength 63, randomLength 5).
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# What a deployment is made of
# ---------------------------------------------------------------------------------------------


@dataclass
class LocalGateway:
    gateway: str  # "ns/name"
    port: int  # listener port (as in the manifests)
    protocol: str  # HTTP | HTTPS
    listeners: list[ListenerInfo]
    address: Address  # where it really listens
    server: _ProxyServer


# ---------------------------------------------------------------------------------------------
# The reference gateway
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# TLS for HTTPS listeners
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Target and Deployment
# ---------------------------------------------------------------------------------------------


class LocalDeployment:
    """A scenario served on loopback. See the module docstring."""

    # the reference gateway answers the same request the same way from the first one on (it
    # is ready before deploy() yields): a check's first full round decides, nothing converges
    settled = True

    def __init__(self, scenario: Scenario, model: Model, router: _Router) -> None:
        self.namespace = ""  # no run namespace: logical names are used as written
        self.scenario = scenario
        self.model = model
        self._router = router
        self.gateways: dict[tuple[str, int], LocalGateway] = {}
        self.pods: list[LocalPod] = []
        self.skipped: list[str] = []  # listeners not served, with the reason
        self.warnings: list[str] = []  # e.g. a Deployment that is not an echo backend

    def _resolve_gateway(self, gateway: str) -> str:
        keys = sorted({g for g, _ in self.gateways} | set(self.model.gateways()))
        if "/" in gateway:
            if gateway in keys:
                return gateway
        else:
            if f"default/{gateway}" in keys:
                return f"default/{gateway}"
            named = [k for k in keys if k.split("/", 1)[1] == gateway]
            if len(named) == 1:
                return named[0]
        raise InputError(
            f"no Gateway {gateway!r} in scenario {self.scenario.name}; Gateways: {', '.join(keys) or 'none'}",
            file=str(self.scenario.file),
            field="gateway",
        )

    def address(self, gateway: str, port: int) -> Address:
        key = self._resolve_gateway(gateway)
        served = self.gateways.get((key, port))
        if served is None:
            ports = sorted(p for g, p in self.gateways if g == key)
            raise InputError(
                f"Gateway {key} has no listener the local provider serves on port {port}; "
                f"ports: {', '.join(map(str, ports)) or 'none'}",
                file=str(self.scenario.file),
                field="request.port",
            )
        return served.address

    def namespace_of(self, logical: str) -> str:
        return logical

    def pods_of(self, namespace: str, service: str) -> list[LocalPod]:
        return list(self._router.pods.get((namespace, service), []))

    def wait_mirrors(self, timeout: float = MIRROR_TIMEOUT) -> None:
        """Wait (bounded) for mirror requests sent so far to finish."""
        deadline = time.monotonic() + timeout
        for t in list(self._router.mirror_threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def unreachable(self, refusals: Refusals) -> TargetUnreachable | None:
        """Never: the servers listen until the deployment ends (deploy waited for them)."""
        return None

    def diagnostics(self) -> str:
        lines = [f"provider {PROVIDER}: reference model gateway on loopback (sandbox.reference)"]
        lines.extend(f"  warning: {w}" for w in self.warnings)
        for (gw, port), g in sorted(self.gateways.items()):
            names = ", ".join(
                f"{lst.name}" + (f" ({lst.hostname})" if lst.hostname else "")
                for lst in g.listeners
            )
            lines.append(
                f"  gateway {gw} port {port} {g.protocol} at {g.address.host}:{g.address.port}: listeners {names}"
            )
        for note in self.skipped:
            lines.append(f"  not served: {note}")
        for pod in self.pods:
            lines.append(
                f"  pod {pod.namespace}/{pod.name} (service {pod.service}) at {HOST}:{pod.port}"
            )

        lines.extend(f"  not attached: {line}" for line in unattached_lines(self.model))
        with self._router._lock:
            recent = list(self._router.log)
        lines.append("last requests (newest last):" if recent else "no requests yet")
        lines.extend(f"  {line}" for line in recent)
        return "\n".join(lines)


def _warn_on_stderr(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


class LocalTarget:
    """``sandbox run --provider local``: the reference gateway and echo backends on loopback.

    ``model_factory`` (default ``Model.from_objects``) and ``rng`` are for tests; ``warn``
    gets each warning line (default: ``warning: ...`` on stderr).
    """

    name = PROVIDER
    deploys = True
    keep = False  # nothing outlives a deploy here: --keep has nothing to keep
    kubectl: Kubectl | None = None  # no cluster

    def __init__(
        self,
        *,
        startup_timeout: float = STARTUP_TIMEOUT,
        rng: random.Random | None = None,
        model_factory: Callable[[list[dict[str, Any]]], Model] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.warn = warn or _warn_on_stderr
        self.startup_timeout = startup_timeout
        self.rng = rng or random.Random()
        self.model_factory = model_factory or Model.from_objects

    def finish(self) -> dict[str, SandboxError]:
        """Nothing is left running after a deploy here."""
        return {}

    @contextlib.contextmanager
    def deploy(self, scenario: Scenario) -> Iterator[LocalDeployment]:
        model = self.model_factory(scenario.objects)
        router = _Router(model, self.rng)
        deployment = LocalDeployment(scenario, model, router)
        deployment.warnings = image_warnings(model)
        for line in deployment.warnings:
            self.warn(f"{scenario.name}: {line}")
        with (
            contextlib.ExitStack() as stack,
            tempfile.TemporaryDirectory(prefix="sandbox-local-") as tmp,
        ):
            stack.callback(local_grpc.close_fronts, model)  # after the gateways (LIFO)
            try:
                self._start_pods(model, router, deployment, stack)
                self._start_gateways(scenario, model, router, deployment, stack, Path(tmp))
                self._wait_ready(deployment)
            except OSError as e:
                raise EnvironmentProblem(f"local provider: cannot listen on {HOST}: {e}") from None
            yield deployment

    def _start_pods(
        self,
        model: Model,
        router: _Router,
        deployment: LocalDeployment,
        stack: contextlib.ExitStack,
    ) -> None:
        started: dict[tuple[str, str], list[LocalPod]] = {}
        for svc in model.services:
            pods: list[LocalPod] = []
            for dep in model.backends_of(svc.namespace, svc.name):
                key = (dep.namespace, dep.name)
                if key not in started:
                    started[key] = []
                    replicas = min(max(dep.replicas, 0), MAX_REPLICAS)
                    for name in pod_names(dep, replicas, self.rng):
                        service = dep.env.get("SERVICE_NAME", svc.name)
                        requests: deque[str] = deque(maxlen=2000)
                        server: _Server
                        if dep.env.get("GRPC_ECHO_SERVER"):
                            server = local_grpc.echo_server(
                                pod=name, namespace=dep.namespace, service=service
                            )
                        else:
                            server = EchoServer(
                                HOST,
                                0,
                                pod=name,
                                namespace=dep.namespace,
                                service=service,
                                ingress=dep.env.get("INGRESS_NAME", ""),
                                log=requests.append,
                            ).start()
                        stack.callback(server.close)
                        pod = LocalPod(
                            name, dep.namespace, dep.name, service, server.port, server, requests
                        )
                        started[key].append(pod)
                        deployment.pods.append(pod)
                pods.extend(started[key])
            router.pods[(svc.namespace, svc.name)] = pods

    def _start_gateways(
        self,
        scenario: Scenario,
        model: Model,
        router: _Router,
        deployment: LocalDeployment,
        stack: contextlib.ExitStack,
        tmp: Path,
    ) -> None:
        for gw in model.gateways():
            by_port: dict[int, list[ListenerInfo]] = {}
            for listener in model.listeners(gw):
                if listener.protocol not in ("HTTP", "HTTPS"):
                    deployment.skipped.append(
                        f"{gw} listener {listener.name} ({listener.protocol} :{listener.port}): "
                        "only HTTP and HTTPS listeners are served locally"
                    )
                    continue
                by_port.setdefault(listener.port, []).append(listener)
            for port, listeners in sorted(by_port.items()):
                protocol = listeners[0].protocol
                same = [lst for lst in listeners if lst.protocol == protocol]
                for other in listeners:
                    if other.protocol != protocol:
                        deployment.skipped.append(
                            f"{gw} listener {other.name}: {other.protocol} conflicts with "
                            f"{protocol} on port {port}"
                        )
                ctx = None
                if protocol == "HTTPS":
                    alpn = ["h2", "http/1.1"]
                    ctx = _tls_context(same, scenario, tmp, alpn)
                server = _ProxyServer(router, gw, port, "https" if ctx else "http", ctx)
                stack.callback(server.close)
                server.start()
                deployment.gateways[(gw, port)] = LocalGateway(
                    gw, port, protocol, same, Address(HOST, server.port), server
                )

    def _wait_ready(self, deployment: LocalDeployment) -> None:
        """Every server accepts a connection within the startup timeout (bounded poll)."""
        deadline = time.monotonic() + self.startup_timeout
        pending = [(f"pod {p.name}", p.port) for p in deployment.pods] + [
            (f"gateway {g.gateway}:{g.port}", g.address.port) for g in deployment.gateways.values()
        ]
        last = "nothing tried"
        while pending:
            what, port = pending[0]
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    pending.pop(0)
                    continue
            except OSError as e:
                last = f"{what} on {HOST}:{port}: {e}"
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    "the local provider's servers to accept connections", self.startup_timeout, last
                )
            time.sleep(0.02)
