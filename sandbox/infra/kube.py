"""kubectl pinned to one kubeconfig and one context.

Every call passes ``--kubeconfig FILE --context NAME`` explicitly, so the user's default
kubeconfig and current context are never read or changed. Output formats relied on (verified in
kubernetes/kubernetes staging/src/k8s.io/kubectl):

- ``kubectl apply --server-side`` prints one line per object, ``<kind>.<group>/<name>
  serverside-applied`` (pkg/cmd/apply/apply.go: ``printer ... "serverside-applied"``; core
  objects have no group: ``namespace/foo serverside-applied``).
- ``kubectl wait`` prints ``<kind>.<group>/<name> condition met`` and on timeout exits 1 with
  ``error: timed out waiting for the condition on <kind>/<name>`` (pkg/cmd/wait/wait.go,
  ``wait.ErrWaitTimeout`` wrapped as "timed out waiting for the condition on %s").
- A missing object: ``Error from server (NotFound): <kind>.<group> "<name>" not found``
  (apimachinery StatusError printed by cmdutil.CheckErr), exit 1. A selector matching nothing
  for wait: ``error: no matching resources found``.
- No connection to the API server at all (pkg/cmd/util/helpers.go ``StandardErrorMessage``, a
  ``*url.Error``; exit 1, ``DefaultErrorExitCode``): ``The connection to the server HOST:PORT
  was refused - did you specify the right host or port?`` when the cause says "connection
  refused", else ``Unable to connect to the server: <cause>``, a failed dial reading as Go's
  net.OpError prints it: ``dial tcp HOST:PORT: connect: no route to host``, ``dial tcp
  HOST:PORT: i/o timeout``, ``dial tcp: lookup NAME on DNS:53: no such host``. Before that line
  client-go logs klog lines (discovery/cached/memory/memcache.go: ``couldn't get current server
  API group list: Get "https://HOST:PORT/api?timeout=32s": dial tcp ...``).

An API server that cannot be reached is retried for ``unreachable_grace`` seconds (API servers
restart); after that every call raises :class:`APIServerUnreachable` (a
:class:`~sandbox.errors.ClusterError`, exit 3) naming the server's URL, what was being done and
the fix, at once until a call reaches the server again. Waits never sit out their whole timeout
against a server that is not there.

Usage::

    k = Kubectl(binary, kubeconfig, "k3d-sandbox")
    k.apply([Path("install.yaml")], force_conflicts=True)
    k.wait("deployment/envoy-gateway", "condition=Available", namespace="envoy-gateway-system",
           timeout=300)
    obj = k.get_json("gatewayclass", "eg")          # None when it does not exist

Long on purpose: one class, kubectl pinned to one kubeconfig and context, with the readers of its
output (status conditions, stuck pods, image hints) that its waits need.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ClusterError, ToolError, WaitTimeout
from sandbox.infra import tools

log = logging.getLogger(__name__)

FIELD_MANAGER = "gateway-sandbox"
DEFAULT_TIMEOUT = 60.0  # seconds for one kubectl call that is not a wait
POLL_INTERVAL = 0.5
UNREACHABLE_GRACE = 5.0  # s an API server may refuse connections (restarting) before we say so
_DOWN_MEMORY = 30.0  # s after its last failure that an unreachable verdict still stands

Manifest = Path | str | Mapping[str, Any]


class KubectlError(tools.ToolFailed):
    """kubectl exited non-zero. ``result.stderr`` has its message."""


class NotFound(KubectlError):
    """``Error from server (NotFound)``: the named object does not exist."""


class APIServerUnreachable(KubectlError, ClusterError):
    """kubectl could not connect to the API server for longer than the grace period.

    ``server`` is the server's URL (from the kubeconfig, else from kubectl's message)."""

    def __init__(
        self, message: str, result: tools.ToolResult, *, server: str, hint: str | None = None
    ) -> None:
        super().__init__(message, result, hint=hint)
        self.server = server


def _is_not_found(stderr: str) -> bool:
    return "(NotFound)" in stderr or "no matching resources found" in stderr


# API server not answering (yet): a freshly created or started k3s, a restarting apiserver
_TRANSIENT = (
    "connection refused",
    "was refused - did you specify the right host or port",  # kubectl, API server down
    "Unable to connect to the server",
    "TLS handshake timeout",
    "the server is currently unable to handle the request",
    "ServiceUnavailable",
    "i/o timeout",
    "connection reset by peer",
    "http2: client connection lost",
)


def _is_transient(stderr: str) -> bool:
    return any(t in stderr for t in _TRANSIENT)


# kubectl's words when no connection to the API server could be made at all (see the module
# docstring); the server may be restarting, so these are retried for a grace period only
_UNREACHABLE = re.compile(
    r"The connection to the server (?P<refused>\S+) was refused"
    r"|Unable to connect to the server: dial tcp (?P<addr>\S+): (?:connect: )?"
    r"(?P<why>connection refused|no route to host|network is unreachable|i/o timeout)"
    r"|Unable to connect to the server: dial tcp: lookup (?P<name>\S+)(?: on \S+)?: no such host"
)
_UNREACHABLE_SAYS = {
    "connection refused": "refuses connections",
    "no route to host": "cannot be reached (no route to host)",
    "network is unreachable": "cannot be reached (network is unreachable)",
    "i/o timeout": "does not answer (connecting timed out)",
}


def unreachable(stderr: str) -> tuple[str, str] | None:
    """(HOST:PORT or name, what it does) when kubectl could not connect to the API server."""
    m = _UNREACHABLE.search(stderr)
    if m is None:
        return None
    if m.group("refused"):
        return m.group("refused"), _UNREACHABLE_SAYS["connection refused"]
    if m.group("addr"):
        return m.group("addr"), _UNREACHABLE_SAYS[m.group("why")]
    return m.group("name"), "has a name that does not resolve (no such host)"


_KLOG = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+ ")


def _without_klog(stderr: str) -> str:
    """kubectl's message without client-go's klog lines (``E1126 22:35:09.854057 ...``),
    unless they are all there is."""
    lines = stderr.strip().splitlines()
    kept = [line for line in lines if not _KLOG.match(line)]
    return "\n".join(kept or lines)


def summarize_status(obj: Mapping[str, Any] | None) -> str:
    """One line per object: ``kind/name: Type=Status (Reason: message); ...``.

    Used as the "last status seen" of a :class:`WaitTimeout`. Accepts a single object or a
    ``List`` with ``items``; ``None`` reads "not found".
    """
    if obj is None:
        return "not found"
    if "items" in obj and isinstance(obj.get("items"), list):
        items = obj["items"]
        if not items:
            return "no objects"
        return "; ".join(summarize_status(i) for i in items)
    kind = str(obj.get("kind", "object")).lower()
    name = str(obj.get("metadata", {}).get("name", "?"))
    status = obj.get("status") or {}
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    parts: list[str] = []
    if isinstance(conditions, list):
        for c in conditions:
            if not isinstance(c, Mapping):
                continue
            text = f"{c.get('type')}={c.get('status')}"
            reason, message = c.get("reason"), c.get("message")
            if reason or message:
                text += f" ({reason or ''}{': ' if reason and message else ''}{message or ''})"
            parts.append(text)
    elif isinstance(status, Mapping) and status.get("phase"):
        parts.append(f"phase={status['phase']}")
    return f"{kind}/{name}: " + (", ".join(parts) if parts else "no conditions yet")


def dump_manifests(objects: Iterable[Mapping[str, Any]]) -> str:
    """Objects as one multi-document YAML stream."""
    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)


def _filenames(manifests: Sequence[Manifest] | Manifest) -> tuple[list[str], str | None]:
    """``-f FILE`` for each path, then ``-f -`` with the objects as one YAML stream on stdin."""
    items: list[Manifest] = (
        [manifests] if isinstance(manifests, (Path, str, Mapping)) else list(manifests)
    )
    args = [a for m in items if not isinstance(m, Mapping) for a in ("-f", str(m))]
    objects = [m for m in items if isinstance(m, Mapping)]
    if not objects:
        return args, None
    return [*args, "-f", "-"], dump_manifests(objects)


class Kubectl:
    """kubectl bound to ``kubeconfig`` + ``context`` (both always passed explicitly).

    :param binary: path to the kubectl executable (see :func:`sandbox.infra.tools.ensure_tool`).
    :param kubeconfig: the private kubeconfig file (never the user's default).
    :param context: the context in that file to use (``k3d-<cluster>`` for the sandbox).
    :param timeout: default timeout in seconds of calls that are not waits.
    """

    def __init__(
        self,
        binary: Path | str,
        kubeconfig: Path | str,
        context: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        unreachable_grace: float = UNREACHABLE_GRACE,
        unreachable_hint: str | None = None,
    ) -> None:
        self.binary = Path(binary)
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.timeout = timeout
        self.unreachable_grace = unreachable_grace
        #: what to do when the API server cannot be reached (default: ask it with cluster-info)
        self.unreachable_hint = unreachable_hint
        self._down_since: float | None = None  # first failed connection of the current streak
        self._down_last = 0.0  # the latest one

    def __repr__(self) -> str:
        return f"Kubectl({str(self.binary)!r}, {str(self.kubeconfig)!r}, {self.context!r})"

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def base_args(self) -> list[str]:
        """``--kubeconfig FILE --context NAME``: put before every kubectl verb."""
        return ["--kubeconfig", str(self.kubeconfig), "--context", self.context]

    def argv(self, args: Sequence[str]) -> list[str]:
        """The full argv for ``args`` (for long-running processes such as port-forward)."""
        return [str(self.binary), *self.base_args, *args]

    @property
    def env(self) -> dict[str, str]:
        """Environment for a kubectl process started outside :meth:`run` (KUBECONFIG pinned too)."""
        return tools.tool_env({"KUBECONFIG": str(self.kubeconfig)})

    def server(self) -> str | None:
        """The API server URL of the context in the kubeconfig (None when it cannot be read)."""
        try:
            config = yaml.safe_load(self.kubeconfig.read_text(encoding="utf-8")) or {}
            contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
            clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters") or []}
            server = clusters[contexts[self.context]["cluster"]]["server"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
            return None
        return str(server) if server else None

    def run(
        self,
        args: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        doing: str | None = None,
    ) -> tools.ToolResult:
        """Run ``kubectl --kubeconfig F --context C ARGS``.

        Raises :class:`NotFound` for ``Error from server (NotFound)``, :class:`KubectlError`
        for any other non-zero exit (when ``check``), :class:`ToolError` on timeout, and
        :class:`APIServerUnreachable` (even without ``check``) when the API server could not be
        connected to for ``unreachable_grace`` seconds (retried until then). ``doing`` says
        what the call was for, in that error (default: the kubectl command).
        """
        while True:
            started = time.monotonic()
            result = tools.run(
                self.argv(args),
                input=input,
                timeout=self.timeout if timeout is None else timeout,
                env={"KUBECONFIG": str(self.kubeconfig)},
                check=False,
            )
            down = unreachable(result.stderr) if result.exit_code != 0 else None
            if down is None:
                self._down_since = None  # the server answered (whatever it said)
                break
            if self._down_since is None or started - self._down_last > _DOWN_MEMORY:
                self._down_since = started
            self._down_last = time.monotonic()
            if self._down_last - self._down_since >= self.unreachable_grace:
                raise self._unreachable_error(args, result, down, doing)
            time.sleep(POLL_INTERVAL)
        if check and result.exit_code != 0:
            what = "kubectl " + " ".join(args)
            detail = _without_klog(result.stderr) or result.stdout.strip() or "(no output)"
            cls = NotFound if _is_not_found(result.stderr) else KubectlError
            raise cls(f"`{what}` failed (exit {result.exit_code}):\n{detail}", result)
        return result

    def _unreachable_error(
        self,
        args: Sequence[str],
        result: tools.ToolResult,
        down: tuple[str, str],
        doing: str | None,
    ) -> APIServerUnreachable:
        address, says = down
        server = self.server() or address
        seconds = time.monotonic() - (self._down_since or time.monotonic())
        what = doing or "running `kubectl " + " ".join(args) + "`"
        said = _without_klog(result.stderr).strip().splitlines()[-1]
        hint = self.unreachable_hint or (
            f"is the cluster of context {self.context} running? `kubectl --kubeconfig "
            f"{self.kubeconfig} --context {self.context} cluster-info` asks it directly"
        )
        return APIServerUnreachable(
            f"the Kubernetes API server {server} (context {self.context}) {says}, for "
            f"{seconds:.1f}s, while {what}; kubectl said: {said}",
            result,
            server=server,
            hint=hint,
        )

    # -- verbs ------------------------------------------------------------------------------

    def apply(
        self,
        manifests: Sequence[Manifest] | Manifest,
        *,
        namespace: str | None = None,
        server_side: bool = True,
        force_conflicts: bool = False,
        field_manager: str = FIELD_MANAGER,
        timeout: float | None = None,
        doing: str | None = None,
    ) -> list[str]:
        """Apply files/directories (Path or str) and/or objects (mappings).

        Files are passed with ``-f``; objects are sent as one YAML stream on stdin (``-f -``).
        Returns kubectl's per-object lines (``<kind>.<group>/<name> serverside-applied``).
        """
        files, stdin = _filenames(manifests)
        if not files:
            return []
        args = ["apply"]
        if server_side:
            args += ["--server-side", f"--field-manager={field_manager}"]
            if force_conflicts:
                args.append("--force-conflicts")
        if namespace:
            args += ["-n", namespace]
        result = self.run(args + files, input=stdin, timeout=timeout, doing=doing)
        return [line for line in result.stdout.splitlines() if line.strip()]

    def delete(
        self,
        kind: str,
        name: str | Sequence[str] | None = None,
        *,
        namespace: str | None = None,
        selector: str | None = None,
        ignore_not_found: bool = True,
        wait: bool = True,
        timeout: float | None = None,
        doing: str | None = None,
    ) -> str:
        """Delete ``kind/name`` (several names: one call), or ``kind -l selector``. Missing
        objects are fine by default."""
        names = [name] if isinstance(name, str) else list(name or [])
        args = ["delete", kind, *names]
        args += self._scope(namespace, selector)
        if ignore_not_found:
            args.append("--ignore-not-found=true")
        args.append(f"--wait={'true' if wait else 'false'}")
        t = self.timeout if timeout is None else timeout
        args.append(f"--timeout={int(t)}s")
        return self.run(args, timeout=t + 15, doing=doing).stdout

    def delete_manifests(
        self,
        manifests: Sequence[Manifest] | Manifest,
        *,
        namespace: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        doing: str | None = None,
    ) -> str:
        """``kubectl delete -f ... --ignore-not-found`` for files and/or objects."""
        files, stdin = _filenames(manifests)
        args = ["delete", "--ignore-not-found=true", f"--wait={'true' if wait else 'false'}"]
        if namespace:
            args += ["-n", namespace]
        args += files
        t = self.timeout if timeout is None else timeout
        args.append(f"--timeout={int(t)}s")
        return self.run(args, input=stdin, timeout=t + 15, doing=doing).stdout

    def get_json(
        self,
        kind: str,
        name: str | None = None,
        *,
        namespace: str | None = None,
        selector: str | None = None,
        all_namespaces: bool = False,
        timeout: float | None = None,
        doing: str | None = None,
    ) -> dict[str, Any] | None:
        """``kubectl get KIND [NAME] -o json``.

        With ``name``: the object, or ``None`` when it does not exist. Without: the ``List``
        (``{"kind": "List", "items": [...]}``; empty items when nothing matches).
        """
        args = ["get", kind] + ([name] if name else [])
        if all_namespaces:
            args.append("--all-namespaces")
        args += self._scope(None if all_namespaces else namespace, selector)
        args += ["-o", "json"]
        try:
            result = self.run(args, timeout=timeout, doing=doing)
        except NotFound:
            if name:
                return None
            return {"apiVersion": "v1", "kind": "List", "items": []}
        try:
            data = json.loads(result.stdout or "{}")
        except ValueError as e:
            raise ToolError(f"kubectl get {kind} printed no JSON: {result.stdout[:200]!r}") from e
        if not isinstance(data, dict):
            raise ToolError(f"kubectl get {kind} printed unexpected JSON: {result.stdout[:200]!r}")
        return data

    def exists(self, kind: str, name: str, *, namespace: str | None = None) -> bool:
        return self.get_json(kind, name, namespace=namespace) is not None

    def wait(
        self,
        resource: str | Sequence[str],
        condition: str,
        *,
        namespace: str | None = None,
        selector: str | None = None,
        all_: bool = False,
        timeout: float,
        what: str | None = None,
    ) -> str:
        """``kubectl wait RESOURCE --for=CONDITION``, bounded by ``timeout`` seconds.

        ``resource`` is ``kind/name`` (or a list of them) or, with ``selector``/``all_``, a
        kind. ``condition`` is
        what follows ``--for=``: ``condition=Available``, ``condition=Ready=false``,
        ``jsonpath={.status.phase}=Running``, ``create`` or ``delete``.

        Objects that do not exist yet are polled for (every 0.5 s) within the same deadline.
        ``create`` is polled with ``kubectl get`` rather than ``--for=create``, which kubectl
        before 1.31 rejects (``error: unrecognized condition: "create"``: pkg/cmd/wait/wait.go
        conditionFuncFor), so it works with any kubectl. On timeout raises
        :class:`WaitTimeout` naming ``what`` and the object's last conditions.
        """
        resources = [resource] if isinstance(resource, str) else list(resource)
        label = resources[0] if len(resources) == 1 else f"{resources[0]} (+{len(resources) - 1})"
        what = what or f"{label} {condition}" + (f" in {namespace}" if namespace else "")
        deadline = time.monotonic() + timeout
        if condition == "create":
            return self._wait_created(resources, namespace, deadline, timeout, what)
        kind, _, name = resources[0].partition("/")
        target = resources + self._scope(namespace, selector) + (["--all"] if all_ else [])
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    what, round(timeout, 1), self._last_status(kind, name, namespace, selector)
                )
            seconds = max(1, int(remaining))
            result = self.run(
                ["wait", *target, f"--for={condition}", f"--timeout={seconds}s"],
                timeout=seconds + 30,
                check=False,
                doing=f"waiting for {what}",
            )
            if result.exit_code == 0:
                return result.stdout
            stderr = result.stderr
            if "timed out waiting for the condition" in stderr:
                # "error: timed out waiting for the condition on deployments/envoy-gateway"
                on = stderr.split("condition on ", 1)[-1].strip().splitlines()[0]
                kind_t, _, name_t = on.partition("/") if "/" in on else (kind, "", name)
                if selector or all_:
                    kind_t, name_t = kind, ""
                raise WaitTimeout(
                    what, round(timeout, 1), self._last_status(kind_t, name_t, namespace, selector)
                )
            if (_is_not_found(stderr) and condition != "delete") or _is_transient(stderr):
                # not created yet, or the API server is not answering yet: poll, then wait again
                if time.monotonic() + POLL_INTERVAL >= deadline:
                    last = "not found" if _is_not_found(stderr) else stderr.strip().splitlines()[-1]
                    raise WaitTimeout(what, round(timeout, 1), last)
                time.sleep(POLL_INTERVAL)
                continue
            if _is_not_found(stderr) and condition == "delete":
                return result.stdout
            raise KubectlError(
                f"`kubectl wait {label} --for={condition}` failed (exit {result.exit_code}):\n"
                f"{stderr.strip() or result.stdout.strip()}",
                result,
            )

    def _wait_created(
        self,
        resources: Sequence[str],
        namespace: str | None,
        deadline: float,
        timeout: float,
        what: str,
    ) -> str:
        """Poll ``kubectl get`` until every ``kind/name`` exists (API server hiccups included)."""
        pending = list(resources)
        last = "not found"
        while True:
            try:
                pending = [
                    r
                    for r in pending
                    if self.get_json(
                        r.partition("/")[0],
                        r.partition("/")[2],
                        namespace=namespace,
                        timeout=max(5.0, min(30.0, deadline - time.monotonic())),
                        doing=f"waiting for {what}",
                    )
                    is None
                ]
                last = f"{pending[0]} not found" if pending else ""
            except APIServerUnreachable:
                raise
            except ToolError as e:
                if not _is_transient(str(e)):
                    raise
                last = str(e).strip().splitlines()[-1]
            if not pending:
                return "".join(f"{r} created\n" for r in resources)
            if time.monotonic() + POLL_INTERVAL >= deadline:
                raise WaitTimeout(what, round(timeout, 1), last)
            time.sleep(POLL_INTERVAL)

    def logs(
        self,
        target: str,
        *,
        namespace: str | None = None,
        tail: int | None = None,
        container: str | None = None,
        all_containers: bool = False,
        selector: str | None = None,
        since: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """``kubectl logs TARGET`` (``pod/x``, ``deployment/x``; or ``""`` with ``selector``)."""
        args = ["logs"] + ([target] if target else [])
        args += self._scope(namespace, selector)
        if tail is not None:
            args.append(f"--tail={tail}")
        if container:
            args += ["-c", container]
        if all_containers:
            args.append("--all-containers=true")
        if since:
            args.append(f"--since={since}")
        return self.run(args, timeout=timeout).stdout

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _scope(namespace: str | None, selector: str | None) -> list[str]:
        args: list[str] = []
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        return args

    def _last_status(
        self, kind: str, name: str, namespace: str | None, selector: str | None
    ) -> str:
        try:
            obj = self.get_json(
                kind, name or None, namespace=namespace, selector=selector, timeout=15
            )
        except ToolError as e:
            return f"unknown ({e.message.splitlines()[0]})"
        return summarize_status(obj)


# --------------------------------------------------------------------------------------------
# Pods that cannot become ready: named as soon as they are seen, not after a full timeout

# Container waiting reasons that do not go away by waiting (kubelet pkg/kubelet/images/types.go
# ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName). Not RunContainerError
# or CreateContainerError: the kubelet retries those, and a cgroup v1 host sees runc's "unable
# to freeze" now and then on a first start that the retry gets past.
STUCK_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
)
# pkg/kubelet/container sync_result.go CrashLoopBackOff: stuck once the container has been
# restarted this often (a single failed start is retried and may succeed)
CRASH_LOOP = "CrashLoopBackOff"
CRASH_LOOP_RESTARTS = 2


# The scheduler's message for a pod that fits no node (pkg/scheduler/framework/types.go
# FitError.Error, k8s v1.35): "0/N nodes are available: <count reason>, <count reason>." then,
# when preemption ran, " preemption: 0/N nodes are available: <count reason>." Reasons that
# go away once other pods end (plugins/noderesources/fit.go fitsRequest: "Too many pods",
# "Insufficient cpu", "Insufficient memory", "Insufficient <resource>"): a run whose
# neighbours' data planes are still terminating sees them for a few seconds on a 2-core node.
# When the request exceeds a node's allocatable, the same reason is UnschedulableAndUnresolvable
# and preemption says so (framework/preemption/preemption.go: "Preemption is not helpful for
# scheduling"); when other pods hold the room it says "No preemption victims found for incoming
# pod" (plugins/defaultpreemption/default_preemption.go).
_FIT_PREFIX = re.compile(r"^0/\d+ nodes are available:\s*")
_ROOM_REASONS = ("Insufficient ", "Too many pods")
_UNRESOLVABLE = "Preemption is not helpful for scheduling"


def _reasons(text: str) -> list[str]:
    """``["Insufficient cpu", ...]`` of one ``0/N nodes are available: 1 a, 2 b.`` part."""
    body = _FIT_PREFIX.sub("", text.strip()).rstrip(".").strip()
    return [re.sub(r"^\d+\s+", "", r.strip()) for r in body.split(", ") if r.strip()]


def waits_for_room(message: str) -> bool:
    """True when an Unschedulable pod's scheduler ``message`` says only that the nodes are full
    for now (cpu, memory, pod count held by other pods): it is scheduled once they end, so it
    is not stuck. False for any other reason (taints, selectors, affinity, volumes) and when the
    request exceeds what every node can ever give (preemption: not helpful)."""
    if not _FIT_PREFIX.match(message.strip()):
        return False
    fit, _, post = message.partition(" preemption: ")
    reasons = _reasons(fit)
    if not reasons or not all(r.startswith(_ROOM_REASONS) for r in reasons):
        return False
    if post:
        after = _reasons(post)
        if after and all(r == _UNRESOLVABLE for r in after):
            return False
    return True


def unschedulable(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message when the pod's ``PodScheduled`` condition is False with reason
    ``Unschedulable``, else None."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            isinstance(cond, Mapping)
            and cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "").strip()
    return None


def stuck_pods(pods: Mapping[str, Any] | None) -> dict[str, str]:
    """Pods of a ``kubectl get pods -o json`` list that are stuck: ``{name: reason line}``.

    Stuck: a container (or init container) waiting with one of :data:`STUCK_REASONS`, or in
    CrashLoopBackOff after :data:`CRASH_LOOP_RESTARTS` restarts, or the pod ``Unschedulable``
    for a reason that waiting does not cure (:func:`waits_for_room` says which do: a pod
    waiting for cpu that other pods hold is not stuck; the caller's own timeout bounds it)."""
    out: dict[str, str] = {}
    for pod in (pods or {}).get("items") or []:
        if not isinstance(pod, Mapping):
            continue
        name = str((pod.get("metadata") or {}).get("name", "?"))
        status = pod.get("status") or {}
        statuses = [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        for c in statuses:
            waiting = ((c or {}).get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            crash_loop = (
                reason == CRASH_LOOP
                and int((c or {}).get("restartCount") or 0) >= CRASH_LOOP_RESTARTS
            )
            if reason in STUCK_REASONS or crash_loop:
                message = str(waiting.get("message") or "").strip().splitlines()
                image = c.get("image")
                text = f"container {c.get('name')}"
                if image:
                    text += f" ({image})"
                text += f": {reason}"
                if message:
                    text += f": {message[0][:300]}"
                out[name] = text
                break
        if name in out:
            continue
        why = unschedulable(pod)
        if why is not None and not waits_for_room(why):
            out[name] = f"Unschedulable: {why[:300]}"
    return out


def last_events(events: Mapping[str, Any] | None, name: str, count: int = 3) -> list[str]:
    """The last ``count`` events of the object ``name`` from ``kubectl get events -o json``:
    ``Reason: message`` lines, oldest first."""
    found = []
    for e in (events or {}).get("items") or []:
        if not isinstance(e, Mapping) or (e.get("involvedObject") or {}).get("name") != name:
            continue
        when = str(
            e.get("lastTimestamp")
            or e.get("eventTime")
            or (e.get("metadata") or {}).get("creationTimestamp")
            or ""
        )
        found.append((when, f"{e.get('reason')}: {str(e.get('message') or '').strip()[:300]}"))
    found.sort(key=lambda t: t[0])
    lines: list[str] = []
    for _, text in found:
        if not lines or lines[-1] != text:
            lines.append(text)
    return lines[-count:]


def describe_stuck_pods(kubectl: Kubectl, namespace: str, selector: str | None = None) -> list[str]:
    """Lines naming each stuck pod of ``namespace`` with its reason and last events; [] when none
    is stuck (or the cluster cannot be asked: the caller's own wait reports that)."""
    try:
        pods = kubectl.get_json("pods", namespace=namespace, selector=selector)
        stuck = stuck_pods(pods)
        if not stuck:
            return []
        events = kubectl.get_json("events", namespace=namespace)
    except ToolError:
        return []
    lines = []
    for name, reason in sorted(stuck.items()):
        lines.append(f"pod {namespace}/{name}: {reason}")
        lines.extend(f"    event {text}" for text in last_events(events, name))
    return lines


def image_hint(lines: Sequence[str]) -> str | None:
    """What to do about stuck pods: for image pulls, the host-side fixes."""
    text = "\n".join(lines)
    if any(r in text for r in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")):
        return (
            "the cluster cannot pull an image: `sandbox up --pull` pulls it on the host and loads "
            "it into the cluster (or `docker pull IMAGE`, then `sandbox up`); `sandbox images` "
            "lists what the stack needs and where each image is"
        )
    if "CrashLoopBackOff" in text:
        return "`kubectl logs --previous` of the pod shows why it exits"
    if "Unschedulable" in text:
        return (
            "no node can take the pod (a request larger than the node, a taint, a selector): "
            "`kubectl describe node` shows what it has"
        )
    return None
