"""The Docker engine: is it there (fast), and which containers belong to a k3d cluster.

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
them through ``GET /containers/json?all=1&filters={"label":["k3d.cluster=NAME"]}``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from sandbox.errors import DockerUnavailable

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
    """An engine that answered: its address (None = SDK default) and version."""

    host: str | None
    version: str
    api_version: str
    os: str

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
        finally:
            client.close()
    except DockerUnavailable:
        raise
    except Exception as e:
        raise DockerUnavailable(
            f"the Docker engine does not answer at {where} ({_reason(e, timeout)})",
            hint=fix_hint(),
        ) from e
    return Engine(
        host=engine_host(),
        version=str(info.get("Version", "?")),
        api_version=str(info.get("ApiVersion", "?")),
        os=str(info.get("Os", "?")),
    )


@dataclass(frozen=True)
class Container:
    name: str
    state: str
    labels: dict[str, str]
    image: str = ""  # the reference it was created from (``/containers/json`` "Image")


def cluster_containers(cluster: str, timeout: float = PING_TIMEOUT) -> list[Container]:
    """All containers (running or not) that k3d labelled as part of ``cluster``."""
    try:
        client = _client(timeout)
        try:
            raw = client.api.containers(all=True, filters={"label": [f"{K3D_CLUSTER_LABEL}={cluster}"]})
        finally:
            client.close()
    except Exception as e:
        raise DockerUnavailable(
            f"cannot list the containers of cluster {cluster!r}: {e}", hint=fix_hint()
        ) from e
    containers = []
    for c in raw:
        names = c.get("Names") or ["?"]
        containers.append(
            Container(
                name=str(names[0]).lstrip("/"),
                state=str(c.get("State", "")),
                labels={str(k): str(v) for k, v in (c.get("Labels") or {}).items()},
                image=str(c.get("Image", "")),
            )
        )
    return containers
