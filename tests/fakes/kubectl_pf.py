#!/usr/bin/env python3
"""A fake ``kubectl port-forward`` that really forwards: loopback in, loopback out.

Runs as an executable (``kubectl_pf.py [--kubeconfig F --context C] port-forward ...``) or is
called by the fake kubectl as ``kubectl_pf.main(argv)`` for its ``port-forward`` verb.

It reproduces the real tool's output and failure modes (kubernetes/kubernetes
staging/src/k8s.io/client-go/tools/portforward/portforward.go and
staging/src/k8s.io/kubectl/pkg/cmd/portforward/portforward.go):

- listens on ``--address`` (only IPs; ``localhost`` = 127.0.0.1 here), local port 0 for
  ``:REMOTE`` / ``0:REMOTE``, then prints ``Forwarding from <JoinHostPort(addr, local)> ->
  <target>`` on stdout, where ``<target>`` is the container port: ``FAKE_PF_TARGET_PORT``, else
  the Envoy Gateway rule (port + 10000 below 1024, envoyproxy/gateway #4981) for ``svc/envoy-*``
  and the port itself otherwise;
- prints ``Handling connection for <local>`` per accepted connection;
- a local port already in use: ``Unable to listen on port N: Listeners failed to create with the
  following errors: [unable to create listener: Error listen tcp4 ...: bind: address already in
  use]`` on stderr, then ``error: unable to listen on any of the requested ports: [{N R}]``,
  exit 1;
- losing the pod: klog error lines, then ``error: lost connection to pod``, exit 1;
- SIGINT: closes and exits 0.

Behaviour is set by environment variables (all optional):

``FAKE_PF_UPSTREAM``    ``HOST:PORT`` every connection is relayed to (a loopback echo server);
                        without it connections are accepted and closed.
``FAKE_PF_DIE_AFTER``   lose the pod after this many connections (``error: lost connection to
                        pod``, exit 1) ...
``FAKE_PF_DIE_RUNS``    ... but only in the first N runs (counted in ``FAKE_PF_STATE``).
``FAKE_PF_STATE``       a directory for that counter and for ``runs.log`` (one argv per line).
``FAKE_PF_FAIL``        exit 1 at once with ``error: <this text>`` (e.g. ``unable to forward port
                        because pod is not running. Current status=Pending``).
``FAKE_PF_DELAY``       seconds to wait before listening (to test the ready timeout).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import sys
import threading
from pathlib import Path

EG_SHIFT = 10000  # Envoy Gateway: container port = listener port + 10000 when below 1024


def _klog(message: str, source: str = "portforward.go:424") -> None:
    # klog header: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
    now = datetime.datetime.now()
    sys.stderr.write(f"E{now:%m%d %H:%M:%S.%f} {os.getpid():7d} {source}] {message}\n")


def _die(message: str, code: int = 1) -> int:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return code


def _parse(argv: list[str]) -> tuple[str, str, list[str], list[str]]:
    """(namespace, target, ports, addresses) from a kubectl command line."""
    namespace, addresses, rest = "default", ["localhost"], []
    it = iter(argv)
    for arg in it:
        if arg in ("--kubeconfig", "--context", "--pod-running-timeout"):
            next(it, None)
        elif arg in ("-n", "--namespace"):
            namespace = next(it, namespace)
        elif arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
        elif arg == "--address":
            addresses = next(it, "localhost").split(",")
        elif arg.startswith("--address="):
            addresses = arg.split("=", 1)[1].split(",")
        elif arg.startswith("-"):
            continue
        else:
            rest.append(arg)
    if rest and rest[0] == "port-forward":
        rest = rest[1:]
    if len(rest) < 2:
        raise SystemExit(_die("TYPE/NAME and list of ports are required for port-forward"))
    return namespace, rest[0], rest[1:], addresses


def _target_port(target: str, remote: int) -> int:
    if os.environ.get("FAKE_PF_TARGET_PORT"):
        return int(os.environ["FAKE_PF_TARGET_PORT"])
    name = target.split("/", 1)[-1]
    if target.startswith(("svc/", "service/")) and name.startswith("envoy-") and remote < 1024:
        return remote + EG_SHIFT
    return remote


def _should_die(state: Path | None) -> bool:
    runs = int(os.environ.get("FAKE_PF_DIE_RUNS", "0") or 0)
    if not os.environ.get("FAKE_PF_DIE_AFTER"):
        return False
    if runs <= 0 or state is None:
        return True
    counter = state / "pf-runs"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    return n < runs


def _relay(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_WR)


def _handle(conn: socket.socket, upstream: str | None) -> None:
    with conn:
        if not upstream:
            return
        host, _, port = upstream.rpartition(":")
        try:
            up = socket.create_connection((host, int(port)), timeout=5)
        except OSError as e:
            _klog(f'"Unhandled Error" err="an error occurred forwarding: {e}"')
            return
        with up:
            up.settimeout(None)
            t = threading.Thread(target=_relay, args=(up, conn), daemon=True)
            t.start()
            _relay(conn, up)
            t.join(timeout=30)


def main(argv: list[str]) -> int:
    if os.environ.get("FAKE_PF_FAIL"):
        return _die(os.environ["FAKE_PF_FAIL"])
    _namespace, target, ports, addresses = _parse(argv)
    state = Path(os.environ["FAKE_PF_STATE"]) if os.environ.get("FAKE_PF_STATE") else None
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        with (state / "runs.log").open("a") as f:
            f.write(" ".join(argv) + "\n")
    local_s, _, remote_s = ports[0].rpartition(":") if ":" in ports[0] else (ports[0], "", ports[0])
    local, remote = int(local_s or 0), int(remote_s)
    target_port = _target_port(target, remote)
    if os.environ.get("FAKE_PF_DELAY"):
        threading.Event().wait(float(os.environ["FAKE_PF_DELAY"]))

    # kubectl installs its os.Interrupt handler before it listens (RunPortForwardContext)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    address = "127.0.0.1" if addresses[0] == "localhost" else addresses[0]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Go's net.Listen sets SO_REUSEADDR on Unix (net/sockopt_posix.go setDefaultListenerSockopts),
    # so kubectl can listen again on a port whose old connections are in TIME_WAIT
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, local))
    except OSError as e:
        sys.stderr.write(
            f"Unable to listen on port {local}: Listeners failed to create with the following "
            f"errors: [unable to create listener: Error listen tcp4 {address}:{local}: bind: "
            f"{'address already in use' if e.errno == 98 else e.strerror}]\n"
        )
        return _die(f"unable to listen on any of the requested ports: [{{{local} {target_port}}}]")
    listener.listen(64)
    local = listener.getsockname()[1]
    host = f"[{address}]" if ":" in address else address
    sys.stdout.write(f"Forwarding from {host}:{local} -> {target_port}\n")
    sys.stdout.flush()

    die_after = int(os.environ.get("FAKE_PF_DIE_AFTER", "0") or 0) if _should_die(state) else 0
    upstream = os.environ.get("FAKE_PF_UPSTREAM")
    lost = threading.Event()
    workers: list[threading.Thread] = []

    def accept() -> None:
        handled = 0
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            sys.stdout.write(f"Handling connection for {local}\n")
            sys.stdout.flush()
            handled += 1
            t = threading.Thread(target=_handle, args=(conn, upstream), daemon=True)
            t.start()
            workers.append(t)
            if die_after and handled >= die_after:
                t.join(timeout=10)  # the Nth connection is served, then the pod goes away
                lost.set()
                return

    threading.Thread(target=accept, daemon=True).start()
    while not stop.is_set() and not lost.is_set():
        stop.wait(0.05)
    listener.close()
    if lost.is_set():
        _klog(
            f'"Unhandled Error" err="an error occurred forwarding {local} -> {target_port}: '
            f"error forwarding port {target_port} to pod {target.split('/')[-1]}-7d4f9c6b8-x2x9q, "
            f'uid : container not running" logger="UnhandledError"'
        )
        _klog("lost connection to pod", "portforward.go:234")
        return _die("lost connection to pod")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
