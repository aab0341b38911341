"""A fake Docker Engine API on loopback TCP, for the docker SDK and the fake k3d (tests only).

It answers what the sandbox and the docker SDK (7.x) ask, in the Engine API's shapes
(moby/moby api/swagger.yaml, API v1.47):

- ``GET /version`` (the SDK asks it first when ``version="auto"``): ``{"Version", "ApiVersion",
  "MinAPIVersion", "Os", "Arch", ...}``;
- ``GET|HEAD /_ping`` and ``/v1.47/_ping``: ``200 OK`` with body ``OK`` and headers
  ``Api-Version``, ``Ostype``;
- ``GET /v1.47/info`` (SystemInfo): ``CgroupVersion`` ("2", or ``engine.cgroupVersion`` of the
  state file), ``CgroupDriver``, ``SecurityOptions``, ``OperatingSystem``;
- ``GET /v1.47/images/NAME/json``: the image when ``engine.images`` of the state file lists NAME
  (as given or normalised the way the engine resolves a familiar name), else 404
  ``{"message": "No such image: NAME"}`` (moby daemon/images errors: ErrImageDoesNotExist);
- ``GET /v1.47/containers/json?all=1&filters={"label":["k3d.cluster=NAME"]}``: a list of
  ``{"Id", "Names": ["/k3d-NAME-server-0"], "Image", "State", "Status", "Labels", ...}``
  built from the fake k3d's clusters in ``$FAKE_STATE_DIR/state.json``: one server container and
  one ``serverlb`` per cluster, labelled as k3d labels them (pkg/types/types.go: ``k3d.cluster``,
  ``k3d.role``, ``k3d.server.api.port``) plus the ``--runtime-label`` values on the server.

Use::

    with FakeDockerEngine(state_dir) as engine:
        env["DOCKER_HOST"] = engine.url     # tcp://127.0.0.1:PORT
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API_VERSION = "1.47"


def containers(state: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, cluster in (state.get("clusters") or {}).items():
        running = bool(cluster.get("running"))
        base = {"k3d.cluster": name, "app": "k3d"}
        server_labels = {
            **base,
            "k3d.role": "server",
            "k3d.server.api.port": str(cluster.get("apiPort", "")),
            "k3d.server.api.host": "127.0.0.1",
            **(cluster.get("labels") or {}),
        }
        for cname, image, labels in (
            (f"k3d-{name}-server-0", cluster.get("image", ""), server_labels),
            (f"k3d-{name}-serverlb", "ghcr.io/k3d-io/k3d-proxy:5.9.0", {**base, "k3d.role": "loadbalancer"}),
        ):
            if cname.endswith("-serverlb") and cluster.get("noLb"):
                continue  # k3d cluster create --no-lb makes no load-balancer container
            out.append(
                {
                    "Id": hashlib.sha256(cname.encode()).hexdigest(),
                    "Names": [f"/{cname}"],
                    "Image": image,
                    "Command": "/bin/k3d-entrypoint.sh",
                    "Created": 1764190000,
                    "Ports": [],
                    "Labels": labels,
                    "State": "running" if running else "exited",
                    "Status": "Up 2 minutes" if running else "Exited (0) 1 minute ago",
                    "HostConfig": {"NetworkMode": f"k3d-{name}"},
                    "Mounts": [],
                }
            )
    return out


def _matches(container: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for want in filters.get("label", []):
        key, sep, value = want.partition("=")
        labels = container["Labels"]
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _familiar(name: str) -> str:
    """``docker.io/library/x:latest`` and ``x`` name the same image for the engine."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name if ":" in name.rsplit("/", 1)[-1] or "@" in name else name + ":latest"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _state(self) -> dict[str, Any]:
        state_file = self.server.state_dir / "state.json"
        return json.loads(state_file.read_text()) if state_file.exists() else {}

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Ostype", "linux")
        self.send_header("Docker-Experimental", "false")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        if path == "/_ping":
            self._send(200, b"OK", "text/plain; charset=utf-8")
        elif path == "/version":
            body = {
                "Platform": {"Name": "Docker Engine - Community"},
                "Version": "27.3.1",
                "ApiVersion": API_VERSION,
                "MinAPIVersion": "1.24",
                "Os": "linux",
                "Arch": "amd64",
                "KernelVersion": "6.8.0",
                "GitCommit": "41ca978",
                "GoVersion": "go1.22.7",
            }
            self._send(200, json.dumps(body).encode())
        elif path == "/info":
            engine = self._state().get("engine") or {}
            body = {
                "ID": "fake",
                "OperatingSystem": "Debian GNU/Linux 13 (trixie)",
                "OSType": "linux",
                "CgroupDriver": "systemd" if engine.get("cgroupVersion", "2") == "2" else "cgroupfs",
                "CgroupVersion": engine.get("cgroupVersion", "2"),
                "SecurityOptions": ["name=seccomp,profile=builtin"]
                + (["name=cgroupns"] if engine.get("cgroupVersion", "2") == "2" else []),
                "ServerVersion": "27.3.1",
            }
            self._send(200, json.dumps(body).encode())
        elif path.startswith("/images/") and path.endswith("/json"):
            name = urllib.parse.unquote(path[len("/images/"):-len("/json")])
            have = set((self._state().get("engine") or {}).get("images") or [])
            if name in have or _familiar(name) in {_familiar(i) for i in have}:
                self._send(200, json.dumps({"Id": "sha256:" + hashlib.sha256(name.encode()).hexdigest(),
                                            "RepoTags": [name]}).encode())
            else:
                self._send(404, json.dumps({"message": f"No such image: {name}"}).encode())
        elif path == "/containers/json":
            query = urllib.parse.parse_qs(url.query)
            filters = json.loads(query.get("filters", ["{}"])[0] or "{}")
            state_file = self.server.state_dir / "state.json"
            state = json.loads(state_file.read_text()) if state_file.exists() else {}
            listed = [c for c in containers(state) if _matches(c, filters)]
            if query.get("all", ["0"])[0] in ("0", "false"):
                listed = [c for c in listed if c["State"] == "running"]
            self._send(200, json.dumps(listed).encode())
        else:
            self._send(404, json.dumps({"message": f"page not found: {self.path}"}).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state_dir: Path


class FakeDockerEngine:
    def __init__(self, state_dir: Path) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state_dir = Path(state_dir)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"tcp://{host}:{port}"

    def __enter__(self) -> FakeDockerEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
