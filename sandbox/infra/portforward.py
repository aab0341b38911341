"""A supervised ``kubectl port-forward`` to a Service: start it, read its port, restart it, stop it.

    with PortForward(kubectl_argv, "svc/envoy-sbx-eg-1234", 80, namespace="envoy-gateway-system") as pf:
        port = pf.port()          # call per request: restarts kubectl if it has exited

Facts this relies on (kubernetes/kubernetes, staging/src/k8s.io/client-go/tools/portforward/
portforward.go and staging/src/k8s.io/kubectl/pkg/cmd/portforward/portforward.go):

- once listening, kubectl prints ``Forwarding from %s -> %d`` to stdout, the first ``%s`` being
  ``net.JoinHostPort(address, localPort)`` and the ``%d`` the *container* port the Service port
  maps to (Envoy Gateway shifts ports below 1024 by +10000, so ``:80`` prints ``-> 10080``);
  with ``--address 127.0.0.1`` there is exactly one such line; each accepted connection then
  prints ``Handling connection for <localPort>``;
- ``:REMOTE`` (local port 0) lets the OS choose; ``LOCAL:REMOTE`` asks for a given port and, when
  it cannot be bound, kubectl prints ``Unable to listen on port ...`` and exits 1 with
  ``error: unable to listen on any of the requested ports: ...``;
- the session is bound to one pod; when its stream closes kubectl exits 1 with
  ``error: lost connection to pod`` (client-go ``ErrLostConnectionToPod``) and must be rerun;
- SIGINT (``os.Interrupt``) closes the forwarder cleanly.

So: start it with ``:REMOTE``, wait (bounded) for the ``Forwarding from`` line, and whenever
``port()`` finds the process gone, start it again, first asking for the same local port (so the
address stays the same) and falling back to a new one. Restarts are bounded; the error then
carries kubectl's stderr. The process is always stopped on exit: SIGINT, then kill.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import NoReturn

from sandbox.errors import SandboxError, ToolError, WaitTimeout

log = logging.getLogger(__name__)

FORWARDING_RE = re.compile(r"^Forwarding from (?P<host>\S+):(?P<local>\d+) -> (?P<remote>\d+)\s*$")
HANDLING_RE = re.compile(r"^Handling connection for (?P<local>\d+)\s*$")
STDERR_TAIL = 40  # lines of kubectl stderr kept for error messages

_live: weakref.WeakSet[PortForward] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # a last resort: never leave a kubectl behind
    for pf in list(_live):
        pf.close()


class PortForwardError(ToolError):
    """kubectl port-forward failed to start, or died more often than allowed."""


class _Run:
    """One kubectl process and the threads that read its output."""

    def __init__(self, argv: list[str], env: Mapping[str, str] | None) -> None:
        self.argv = argv
        self.ready = threading.Event()
        self.local_port: int | None = None
        self.remote_port: int | None = None
        self.connections = 0
        self.stderr: deque[str] = deque(maxlen=STDERR_TAIL)
        self.stdout: deque[str] = deque(maxlen=STDERR_TAIL)
        self.started = time.monotonic()
        self.noted = False  # its exit was recorded in the PortForward's history
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                env=dict(env) if env is not None else None,
            )
        except OSError as e:
            raise PortForwardError(
                f"cannot run {argv[0]}: {e}", hint="is kubectl installed? try `sandbox doctor`"
            ) from e
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True, name="pf-stdout"),
            threading.Thread(target=self._read_stderr, daemon=True, name="pf-stderr"),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            m = FORWARDING_RE.match(line)
            if m and not self.ready.is_set():
                self.local_port = int(m.group("local"))
                self.remote_port = int(m.group("remote"))
                self.ready.set()
            elif HANDLING_RE.match(line):
                self.connections += 1
            else:
                self.stdout.append(line)
        self.ready.set()  # EOF: the process is gone; wake the waiter

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> bool:
        """True once listening; False when the process exited first. Raises on timeout."""
        if not self.ready.wait(timeout):
            return False if not self.alive() else self._timeout(timeout)
        if self.local_port is None:
            # stdout closed without a Forwarding line: let the process finish to read its code
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.join()
            return False
        return True

    def _timeout(self, timeout: float) -> bool:
        self.stop()
        raise WaitTimeout(
            f"`{' '.join(self.argv)}` to print 'Forwarding from ...'",
            timeout,
            self.stderr_text() or "no output",
            hint="is the data-plane pod running? `kubectl get pods -n <namespace>`",
        )

    def stderr_text(self) -> str:
        return "\n".join(self.stderr).strip()

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=2)

    def stop(self, grace: float = 3.0) -> None:
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
        self.join()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class PortForward:
    """A supervised ``kubectl port-forward --address 127.0.0.1 TARGET :PORT -n NAMESPACE``.

    ``kubectl`` is the argv prefix that runs kubectl against the right cluster, e.g.
    ``["kubectl", "--kubeconfig", path, "--context", ctx]``.

    A supervisor thread restarts kubectl as soon as it fails (exits non-zero, e.g. ``error: lost
    connection to pod``), asking for the same local port, so
    an address handed out earlier keeps working; ``port()`` (cheap; meant to be called before
    every request) returns the current port and also restarts kubectl itself when it finds it
    gone first. At most ``max_restarts`` restarts happen over the life of this object (backing
    off ``restart_backoff`` seconds, doubling, up to 2 s); then ``port()`` raises
    :class:`PortForwardError` with kubectl's stderr.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        kubectl: Sequence[str],
        target: str,
        remote_port: int,
        *,
        namespace: str,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
        max_restarts: int = 5,
        restart_backoff: float = 0.2,
        pod_running_timeout: str = "60s",
    ) -> None:
        self.kubectl = list(kubectl)
        self.target = target
        self.remote_port = remote_port
        self.namespace = namespace
        self.env = env
        self.ready_timeout = ready_timeout
        self.max_restarts = max_restarts
        self.restart_backoff = restart_backoff
        self.pod_running_timeout = pod_running_timeout
        self.restarts = 0
        self.target_port: int | None = None  # the container port kubectl reports (after ->)
        self._run: _Run | None = None
        self._last_port: int | None = None
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._error: SandboxError | None = None  # why supervision gave up
        self._history: list[str] = []  # why earlier processes ended, for the final error
        self._supervisor: threading.Thread | None = None

    # --- public --------------------------------------------------------------------------------

    def __enter__(self) -> PortForward:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def describe(self) -> str:
        return f"port-forward {self.target} :{self.remote_port} -n {self.namespace}"

    def argv(self, local_port: int | None = None) -> list[str]:
        ports = f"{local_port}:{self.remote_port}" if local_port else f":{self.remote_port}"
        return [
            *self.kubectl,
            "port-forward",
            "--address",
            self.host,
            f"--pod-running-timeout={self.pod_running_timeout}",
            "-n",
            self.namespace,
            self.target,
            ports,
        ]

    def start(self) -> int:
        """Start kubectl and wait until it listens; returns the local port."""
        with self._lock:
            self._check_open()
            _live.add(self)
            port = self._spawn(preferred=None)
            if self._supervisor is None:
                self._supervisor = threading.Thread(
                    target=self._supervise, daemon=True, name=f"pf-{self.target}"
                )
                self._supervisor.start()
            return port

    def port(self) -> int:
        """The local port that reaches the Service now; restarts kubectl if it has exited."""
        with self._lock:
            self._check_open()
            run = self._run
            if run is not None and run.alive() and run.local_port is not None:
                return run.local_port
            if run is None:
                return self.start()
            return self._restart(run)

    def connections(self) -> int:
        """Connections the current kubectl process reported handling."""
        run = self._run
        return run.connections if run else 0

    @property
    def last_port(self) -> int | None:
        """The local port handed out last (kept across restarts when it can be)."""
        return self._last_port

    def alive(self) -> bool:
        """kubectl is running and listening."""
        run = self._run
        return run is not None and run.alive() and run.local_port is not None

    def close(self) -> None:
        """Stop kubectl (SIGINT, then kill) and its supervisor. Safe to call more than once."""
        self._closed.set()
        with self._lock:
            run, self._run = self._run, None
        if run is not None:
            run.stop()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)
        _live.discard(self)

    # --- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise PortForwardError(f"{self.describe}: already closed")
        if self._error is not None:
            raise self._error

    def _supervise(self) -> None:
        """Restart kubectl whenever it exits, until closed or out of restarts."""
        while not self._closed.is_set():
            run = self._run
            if run is None:
                return
            while run.proc.poll() is None:
                if self._closed.wait(0.05):
                    return
            if run.proc.returncode == 0:
                # kubectl exits 0 only when interrupted (SIGINT, e.g. the terminal's Ctrl-C):
                # not a lost pod; leave any restart to port()
                while self._run is run:
                    if self._closed.wait(0.05):
                        return
                continue
            backoff = min(2.0, self.restart_backoff * (2 ** min(self.restarts, 4)))
            if self._closed.wait(backoff):
                return
            with self._lock:
                if self._closed.is_set() or self._error is not None:
                    return
                if self._run is not run:
                    continue  # port() restarted it already
                try:
                    self._restart(run)
                except SandboxError:
                    return  # kept in self._error; port() raises it

    def _restart(self, run: _Run) -> int:
        """Replace the exited ``run`` (lock held). Raises, and remembers, when it cannot."""
        try:
            self._note_exit(run)
            if self.restarts >= self.max_restarts:
                self._give_up(
                    f"exited {self.restarts + 1} times (restart limit {self.max_restarts})"
                )
            self.restarts += 1
            log.warning(
                "%s exited (%s); restarting (%d/%d)",
                self.describe,
                self._history[-1],
                self.restarts,
                self.max_restarts,
            )
            return self._spawn(preferred=self._last_port)
        except SandboxError as e:
            self._error = e
            raise

    def _spawn(self, preferred: int | None) -> int:
        attempts = [preferred, None] if preferred else [None]
        for local in attempts:
            run = _Run(self.argv(local), self.env)
            self._run = run
            if run.wait_ready(self.ready_timeout):
                assert run.local_port is not None
                self._last_port = run.local_port
                self.target_port = run.remote_port
                log.info("%s listening on %s:%d", self.describe, self.host, run.local_port)
                return run.local_port
            self._note_exit(run)
            if local is not None:
                log.info(
                    "%s: local port %d not available again; taking a new one", self.describe, local
                )
        self._give_up("did not start")

    def _note_exit(self, run: _Run) -> None:
        if run.noted:
            return
        run.noted = True
        code = run.proc.poll()
        run.join()
        last = run.stderr[-1] if run.stderr else "no output"
        self._history.append(f"exit code {code}: {last}")

    def _give_up(self, why: str) -> NoReturn:
        run = self._run
        stderr = run.stderr_text() if run else ""
        if run is not None:
            run.stop()
            self._run = None
        raise PortForwardError(
            f"kubectl {self.describe} {why}; kubectl said:\n{stderr or '(nothing on stderr)'}",
            hint="check the Gateway's data-plane pod: `kubectl get pods -n "
            f"{self.namespace}`; earlier exits: {'; '.join(self._history[-3:]) or 'none'}",
        )
