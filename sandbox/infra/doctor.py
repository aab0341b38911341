"""``sandbox doctor``: what this machine has for the stack (Docker engine, platform, ports, cgroup tweaks, the downloads it would need), each a DoctorCheck with the fix when it fails."""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from sandbox import settings as settings_mod
from sandbox.errors import (
    DockerUnavailable,
    EnvironmentProblem,
)
from sandbox.infra import tools
from sandbox.infra.controllers.envoy_gateway import EnvoyGateway
from sandbox.infra.stack import (
    DOWNLOAD_PROBE_TIMEOUT,
    _foreign,
    _provider_version,
    cluster_from_docker,
    preflight,
    tweaks_for,
    validate_cluster_provider,
)
from sandbox.settings import Settings


@dataclass
class DoctorCheck:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _downloads_check(downloads: list[tuple[str, str]]) -> DoctorCheck:
    """Whether the hosts of what ``up`` would download answer (a HEAD request each, a few
    seconds at most); nothing to download is fine offline."""
    if not downloads:
        return DoctorCheck(
            "downloads", True, "nothing to download (tools and install.yaml at hand)"
        )
    import requests

    failed = []
    for what, url in downloads:
        try:
            requests.head(url, timeout=DOWNLOAD_PROBE_TIMEOUT, allow_redirects=False)
        except requests.RequestException as e:
            reason = "no answer" if isinstance(e, requests.Timeout) else e.__class__.__name__
            failed.append(f"{what} from {url.split('/')[2]} ({reason})")
    if not failed:
        hosts = sorted({url.split("/")[2] for _, url in downloads})
        return DoctorCheck(
            "downloads", True, f"{', '.join(hosts)} answer ({len(downloads)} to fetch)"
        )
    return DoctorCheck(
        "downloads",
        False,
        "cannot reach: " + "; ".join(failed),
        "check the network or proxy (HTTPS_PROXY); or put the pinned tools on PATH and point "
        "SANDBOX_ENVOY_GATEWAY_INSTALL_YAML at a downloaded install.yaml; without a cluster, "
        "`sandbox run SCENARIO --provider local` runs the checks on the reference gateway",
    )


def doctor(settings: Settings | None = None) -> list[DoctorCheck]:
    """Everything ``up`` needs, each with the fix when it is missing. Changes nothing."""
    settings = settings or Settings()
    validate_cluster_provider(settings)
    checks: list[DoctorCheck] = []
    try:
        engine = preflight()
        checks.append(
            DoctorCheck(
                "Docker engine",
                True,
                f"{engine.version} (API {engine.api_version}, {engine.os}) at {engine.host or 'the default socket'}",
            )
        )
    except DockerUnavailable as e:
        checks.append(DoctorCheck("Docker engine", False, e.message, e.hint))
        engine = None
    try:
        os_name, arch = settings_mod.host_platform()
        checks.append(DoctorCheck("platform", True, f"{os_name}/{arch}"))
    except EnvironmentProblem as e:
        checks.append(DoctorCheck("platform", False, e.message, e.hint))
        return checks
    downloads: list[tuple[str, str]] = []  # (what, url) that `up` would fetch
    for tool, pinned in (
        (settings.cluster, _provider_version(settings)),
        ("kubectl", settings.kubectl_version),
    ):
        info = tools.describe_tool(tool, pinned)
        if info["use"]:
            checks.append(DoctorCheck(tool, True, f"{info['use']} (pin {pinned})"))
        else:
            found = f"{info['path']} is {info['path_version']}; " if info["path"] else ""
            checks.append(
                DoctorCheck(
                    tool,
                    True,
                    f"{found}pinned {pinned} will be downloaded and verified on `sandbox up`",
                )
            )
            downloads.append((f"{tool} {pinned}", tools.asset_for(tool, pinned).url))
    controller = EnvoyGateway(settings.envoy_gateway_version, gateway_class=settings.gateway_class)
    if not controller.install_yaml_at_hand():
        downloads.append(
            (f"Envoy Gateway {controller.version} install.yaml", controller.install_url)
        )
    checks.append(_downloads_check(downloads))
    if settings.cluster == "kind":
        # kind drives the engine through the docker CLI (pkg/exec; `docker run`, `docker save`)
        docker_cli = shutil.which("docker")
        checks.append(
            DoctorCheck(
                "docker CLI",
                bool(docker_cli),
                docker_cli or "not on PATH (kind runs the docker command)",
                "install the Docker CLI (Debian: apt-get install docker.io; or docker-ce-cli)",
            )
        )
    if engine is not None:
        for line in tweaks_for(engine).notes():
            checks.append(DoctorCheck("host", True, line))
    cache = settings_mod.cache_dir()
    probe = cache if cache.exists() else next((p for p in cache.parents if p.exists()), Path("/"))
    if os.access(probe, os.W_OK):
        checks.append(DoctorCheck("cache dir", True, str(cache)))
    else:
        checks.append(
            DoctorCheck(
                "cache dir",
                False,
                f"{probe} is not writable",
                "set SANDBOX_CACHE_DIR to a writable folder",
            )
        )
    port = os.environ.get("SANDBOX_API_PORT", "random")
    if port.isdigit():
        free = _port_free(int(port))
        cluster_up = False
        if not free and engine is not None:
            info_c = cluster_from_docker(settings)
            cluster_up = info_c is not None and info_c.api_port == port
        checks.append(
            DoctorCheck(
                f"API port 127.0.0.1:{port}",
                free or cluster_up,
                "free" if free else ("used by the sandbox's cluster" if cluster_up else "in use"),
                None
                if free or cluster_up
                else "free it or choose another SANDBOX_API_PORT (or 'random')",
            )
        )
    else:
        checks.append(
            DoctorCheck(
                "API port", True, f"127.0.0.1:random ({settings.cluster} picks a free port)"
            )
        )
    checks.append(
        DoctorCheck(
            "loopback port for port-forward",
            _port_free(0),
            "127.0.0.1 can bind a free port",
            "check the loopback interface and local firewall",
        )
    )
    if engine is not None:
        info_d = cluster_from_docker(settings)
        if info_d is None:
            checks.append(
                DoctorCheck(
                    f"cluster {settings.cluster_name}", True, "absent (`sandbox up` creates it)"
                )
            )
        elif not info_d.owned:
            err = _foreign(settings)
            checks.append(
                DoctorCheck(f"cluster {settings.cluster_name}", False, err.message, err.hint)
            )
        else:
            state = "running" if info_d.running else "stopped (`sandbox up` starts it)"
            checks.append(
                DoctorCheck(
                    f"cluster {settings.cluster_name}", True, f"created by the sandbox, {state}"
                )
            )
    return checks
