"""The Docker engine: is it there (fast), what kind of host it runs on, which containers belong
to a cluster, and which images it holds.

``ping`` uses the docker SDK (``docker.from_env(timeout=...)``, which reads ``DOCKER_HOST``,
``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``; the SDK asks ``GET /version`` for the API
version and then ``GET /_ping``). The engine is chosen as the Docker CLI chooses it (docker/cli
cli/command/cli.go ``resolveContextName``/``getServerHost``): ``DOCKER_HOST``, else the
context named by ``DOCKER_CONTEXT``, else the ``currentContext`` of ``~/.docker/config.json``
(``DOCKER_CONFIG`` moves it), else the default socket. So Docker Desktop on macOS
(``desktop-linux`` context, ``~/.docker/run/docker.sock``), colima, OrbStack and rootless Docker
work as ``docker info`` does, also when a stale ``/var/run/docker.sock`` is left behind. The
endpoint found is returned so that k3d, which reads ``DOCKER_HOST``, uses the same engine.

Ownership: k3d labels every container of a cluster ``k3d.cluster=NAME`` (k3d pkg/types
``LabelClusterName``) and the sandbox adds its own runtime label ``settings.OWNER_LABEL``
(``k3d cluster create --runtime-label KEY=VALUE@server:*``). :func:`cluster_containers` lists
them through ``GET /containers/json?all=1&filters={"label":["k3d.cluster=NAME"]}``. kind labels
its node containers ``io.x-k8s.kind.cluster=NAME`` and ``io.x-k8s.kind.role`` (kind
pkg/cluster/internal/providers/docker/constants.go); :func:`containers_with_label` lists either.

Host facts (``GET /info``, moby api/swagger.yaml SystemInfo): ``CgroupVersion`` ("1" or "2"),
``SecurityOptions`` (``name=rootless`` for a rootless engine), ``CgroupDriver``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ClusterError, DockerUnavailable

PING_TIMEOUT = 4  # seconds: the whole preflight must answer well within 5 s
DEFAULT_SOCKET = "/var/run/docker.sock"
K3D_CLUSTER_LABEL = "k3d.cluster"  # k3d pkg/types/types.go LabelClusterName


def fix_hint() -> str:
    if sys.platform == "darwin":
        start = "start Docker Desktop (or colima start / orbstack)"
    else:
        start = "start the engine: `sudo systemctl start docker` (or start Docker Desktop)"
    return (
        f"{start}; if it runs elsewhere, point DOCKER_HOST at it "
        "(e.g. DOCKER_HOST=unix:///path/to/docker.sock); check with `docker info`"
    )


def _context_host() -> str | None:
    """The endpoint of ``DOCKER_CONTEXT`` or the CLI's current context, unless it is the
    default one (None: the SDK's default socket)."""
    name = os.environ.get("DOCKER_CONTEXT") or None
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_context(name)
        host = getattr(context, "Host", None) if context is not None else None
    except Exception:
        return None
    if not host or host == f"unix://{DEFAULT_SOCKET}":
        return None
    return str(host)


def engine_host() -> str | None:
    """``DOCKER_HOST``, else a non-default context endpoint (see the module docstring)."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    return _context_host()


def _reason(error: BaseException, timeout: float) -> str:
    """A short reason from the SDK's nested connection errors."""
    text = str(error)
    if "FileNotFoundError" in text or "No such file" in text:
        return "no such socket"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "Permission denied" in text or "PermissionError" in text:
        return "permission denied: add your user to the docker group, then log in again"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"no answer within {timeout:g}s"
    first = text.splitlines()[0] if text else error.__class__.__name__
    return first if len(first) <= 200 else first[:200] + "..."


@dataclass(frozen=True)
class Engine:
    """An engine that answered: its address (None = SDK default), version and host facts."""

    host: str | None
    version: str
    api_version: str
    os: str
    cgroup_version: str = ""  # "1" | "2" ("" when the engine did not say)
    rootless: bool = False

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine (a unix socket), so this machine's kernel
        facts are the engine's."""
        return self.host is None or self.host.startswith("unix://")

    def env(self) -> dict[str, str]:
        """Environment that points k3d at this engine (empty when it is the default)."""
        return {"DOCKER_HOST": self.host} if self.host else {}


def _client(timeout: float) -> Any:
    import docker  # heavy import: only when needed

    host = engine_host()
    if host and not os.environ.get("DOCKER_HOST"):
        return docker.DockerClient(base_url=host, timeout=timeout)
    return docker.from_env(timeout=timeout)


def ping(timeout: float = PING_TIMEOUT) -> Engine:
    """Check that the Docker engine answers; raise :class:`DockerUnavailable` with the fix."""
    where = engine_host() or f"unix://{DEFAULT_SOCKET}"
    try:
        client = _client(timeout)
        try:
            if not client.ping():
                raise DockerUnavailable(
                    f"the Docker engine at {where} did not answer the ping", hint=fix_hint()
                )
            info = client.version()
            system = client.info()
        finally:
            client.close()
    except DockerUnavailable:
        raise
    except Exception as e:
        raise DockerUnavailable(
            f"the Docker engine does not answer at {where} ({_reason(e, timeout)})",
            hint=fix_hint(),
        ) from e
    options = [str(o) for o in system.get("SecurityOptions") or []]
    return Engine(
        host=engine_host(),
        version=str(info.get("Version", "?")),
        api_version=str(info.get("ApiVersion", "?")),
        os=str(info.get("Os", "?")),
        cgroup_version=str(system.get("CgroupVersion") or ""),
        rootless=any("name=rootless" in o for o in options),
    )


@dataclass(frozen=True)
class Mount:
    source: str
    destination: str


@dataclass(frozen=True)
class Container:
    name: str
    state: str
    labels: dict[str, str]
    image: str = ""  # the reference it was created from (``/containers/json`` "Image")
    mounts: tuple[Mount, ...] = ()
    # published ports of a running container: (container port, host port)
    ports: tuple[tuple[int, int], ...] = ()


def containers_with_label(label: str, timeout: float = PING_TIMEOUT) -> list[Container]:
    """All containers (running or not) carrying ``label`` (``KEY=VALUE``)."""
    try:
        client = _client(timeout)
        try:
            raw = client.api.containers(all=True, filters={"label": [label]})
        finally:
            client.close()
    except Exception as e:
        raise DockerUnavailable(
            f"cannot list the containers labelled {label}: {e}", hint=fix_hint()
        ) from e
    containers = []
    for c in raw:
        names = c.get("Names") or ["?"]
        mounts = tuple(
            Mount(str(m.get("Source", "")), str(m.get("Destination", "")))
            for m in c.get("Mounts") or []
            if isinstance(m, dict)
        )
        ports = tuple(
            (int(p["PrivatePort"]), int(p["PublicPort"]))
            for p in c.get("Ports") or []
            if isinstance(p, dict) and p.get("PrivatePort") and p.get("PublicPort")
        )
        containers.append(
            Container(
                name=str(names[0]).lstrip("/"),
                state=str(c.get("State", "")),
                labels={str(k): str(v) for k, v in (c.get("Labels") or {}).items()},
                image=str(c.get("Image", "")),
                mounts=mounts,
                ports=ports,
            )
        )
    return containers


def cluster_containers(cluster: str, timeout: float = PING_TIMEOUT) -> list[Container]:
    """All containers (running or not) that k3d labelled as part of ``cluster``."""
    return containers_with_label(f"{K3D_CLUSTER_LABEL}={cluster}", timeout)


def start_containers(names: list[str], timeout: float = 60) -> None:
    """``docker start`` each container (``POST /containers/NAME/start``; 304 when running)."""
    try:
        client = _client(timeout)
        try:
            for name in names:
                client.api.start(name)
        finally:
            client.close()
    except Exception as e:
        raise DockerUnavailable(f"cannot start {', '.join(names)}: {e}", hint=fix_hint()) from e


# --------------------------------------------------------------------------------------------
# Images


def normalize_image(ref: str) -> str:
    """A reference as containerd names it: ``envoyproxy/gateway:v1.9.0`` ->
    ``docker.io/envoyproxy/gateway:v1.9.0``, ``nginx`` -> ``docker.io/library/nginx:latest``
    (the docker reference rules, distribution/reference ``ParseNormalizedNamed``: the first
    path component is a registry when it has a ``.`` or ``:`` or is ``localhost``). A digest
    is kept; a tag is added only when there is neither tag nor digest."""
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def image_present(ref: str, timeout: float = PING_TIMEOUT) -> bool:
    """Whether the engine holds ``ref`` (``GET /images/REF/json``; a 404 is "no")."""
    import docker.errors

    try:
        client = _client(timeout)
        try:
            client.api.inspect_image(ref)
            return True
        finally:
            client.close()
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.NotFound:
        return False
    except Exception as e:
        raise DockerUnavailable(f"cannot look up image {ref}: {e}", hint=fix_hint()) from e


def pull_image(ref: str, *, timeout: float, progress: Any = None) -> None:
    """``docker pull ref`` through the engine (``POST /images/create``), streaming its status
    lines to ``progress``; raises :class:`ClusterError` with the engine's error."""
    name, _, digest = ref.partition("@")
    repo, tag = name, None
    if not digest and ":" in name.rsplit("/", 1)[-1]:
        repo, tag = name.rsplit(":", 1)
    try:
        client = _client(timeout)
        try:
            last = ""
            for event in client.api.pull(repo, tag=digest or tag, stream=True, decode=True):
                if not isinstance(event, dict):
                    continue
                if event.get("error"):
                    raise ClusterError(f"docker pull {ref} failed: {event['error']}")
                status = str(event.get("status") or "")
                if progress and status and status != last and not event.get("progressDetail"):
                    progress(f"{ref}: {status}")
                last = status
        finally:
            client.close()
    except ClusterError:
        raise
    except Exception as e:
        raise ClusterError(
            f"docker pull {ref} failed: {_reason(e, timeout)}",
            hint="check the network or the registry; `sandbox up --offline` names what is missing",
        ) from e


def exec_in(container: str, argv: list[str], timeout: float = 30) -> tuple[int, str]:
    """Run ``argv`` in a running container (``docker exec``); (exit code, stdout)."""
    try:
        client = _client(timeout)
        try:
            result = client.containers.get(container).exec_run(argv, stdout=True, stderr=False)
        finally:
            client.close()
    except Exception as e:
        raise DockerUnavailable(f"cannot run {argv[0]} in {container}: {e}", hint=fix_hint()) from e
    output = result.output.decode("utf-8", "replace") if result.output else ""
    return int(result.exit_code or 0), output


# --------------------------------------------------------------------------------------------
# Networks


def network_exists(name: str, timeout: float = PING_TIMEOUT) -> bool:
    """Whether a network of exactly that name exists (``GET /networks?filters={"name":[..]}``
    matches substrings, so the names are compared)."""
    try:
        client = _client(timeout)
        try:
            found = client.api.networks(names=[name])
        finally:
            client.close()
    except Exception as e:
        raise DockerUnavailable(f"cannot list networks: {e}", hint=fix_hint()) from e
    return any(isinstance(n, dict) and n.get("Name") == name for n in found)


def remove_network_if_unused(name: str, timeout: float = 30) -> bool:
    """Remove the network when no container is attached to it; True when it was removed."""
    import docker.errors

    try:
        client = _client(timeout)
        try:
            try:
                net = client.api.inspect_network(name)
            except docker.errors.NotFound:
                return False
            if net.get("Containers"):
                return False
            client.api.remove_network(name)
            return True
        finally:
            client.close()
    except docker.errors.APIError as e:
        raise ClusterError(f"cannot remove network {name}: {e.explanation or e}") from e
    except Exception as e:
        raise DockerUnavailable(f"cannot remove network {name}: {e}", hint=fix_hint()) from e
