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
  ``k3d.role``, ``k3d.server.api.port``) plus the ``--runtime-label`` values on the server; for
  the fake kind's clusters (``"provider": "kind"``) one ``NAME-control-plane`` container labelled
  ``io.x-k8s.kind.cluster``/``io.x-k8s.kind.role`` (kind providers/docker/constants.go), its API
  server published as ``127.0.0.1:PORT->6443/tcp`` and its config's extraMounts as bind mounts;
- ``GET /v1.47/networks?filters={"name":[..]}`` (substring match, as moby's), ``GET
  /networks/NAME`` (``Containers``: the kind nodes on it) and ``DELETE /networks/NAME`` (403
  ``has active endpoints`` while one is attached): the ``networks`` list of the state file, which
  the fake kind adds ``kind`` to (kind providers/docker/network.go);
- ``POST /v1.47/containers/NAME/start``: 204, or 304 when running, 404 ``No such container``;
- ``GET /v1.47/containers/NAME/json``, ``POST .../exec``, ``POST /exec/ID/start`` (a raw,
  multiplexed stream: 8-byte frame headers, stdout = 1; moby api/types stdcopy) and
  ``GET /exec/ID/json``: ``crictl images -o json`` in a kind node answers with the images the
  fake kind loaded into it (cri-tools cmd/crictl/image.go output); any other command exits 127.

Use::

    with FakeDockerEngine(state_dir) as engine:
        env["DOCKER_HOST"] = engine.url     # tcp://127.0.0.1:PORT
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fakestate

API_VERSION = "1.47"


def kind_container(name: str, cluster: dict[str, Any]) -> dict[str, Any]:
    running = bool(cluster.get("running"))
    cname = f"{name}-control-plane"
    return {
        "Id": hashlib.sha256(cname.encode()).hexdigest(),
        "Names": [f"/{cname}"],
        "Image": cluster.get("image", ""),
        "Command": "/usr/local/bin/entrypoint /sbin/init",
        "Created": 1764190000,
        "Ports": [
            {
                "IP": cluster.get("apiAddress", "127.0.0.1"),
                "PrivatePort": 6443,
                "PublicPort": int(cluster.get("apiPort") or 0),
                "Type": "tcp",
            }
        ]
        if running
        else [],
        "Labels": {"io.x-k8s.kind.cluster": name, "io.x-k8s.kind.role": "control-plane"},
        "State": "running" if running else "exited",
        "Status": "Up 2 minutes" if running else "Exited (137) 1 minute ago",
        "HostConfig": {"NetworkMode": "kind"},
        "Mounts": cluster.get("mounts") or [],
    }


def containers(state: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, cluster in (state.get("clusters") or {}).items():
        if cluster.get("provider") == "kind":
            out.append(kind_container(name, cluster))
            continue
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
            (
                f"k3d-{name}-serverlb",
                "ghcr.io/k3d-io/k3d-proxy:5.9.0",
                {**base, "k3d.role": "loadbalancer"},
            ),
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
            name = name[len(prefix) :]
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
            self._get_version()
        elif path == "/info":
            self._get_info()
        elif path.startswith("/images/") and path.endswith("/json"):
            self._get_image(path)
        elif (
            path.startswith("/containers/")
            and path.endswith("/json")
            and path != "/containers/json"
        ):
            self._get_container(path)
        elif path.startswith("/exec/") and path.endswith("/json"):
            self._get_exec(path)
        elif path == "/networks":
            self._get_networks(url.query)
        elif path.startswith("/networks/"):
            self._get_network(path)
        elif path == "/containers/json":
            self._get_containers(url.query)
        else:
            self._send(404, json.dumps({"message": f"page not found: {self.path}"}).encode())

    def _get_version(self) -> None:
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

    def _get_info(self) -> None:
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

    def _get_image(self, path: str) -> None:
        name = urllib.parse.unquote(path[len("/images/") : -len("/json")])
        have = set((self._state().get("engine") or {}).get("images") or [])
        if name in have or _familiar(name) in {_familiar(i) for i in have}:
            self._send(
                200,
                json.dumps(
                    {
                        "Id": "sha256:" + hashlib.sha256(name.encode()).hexdigest(),
                        "RepoTags": [name],
                    }
                ).encode(),
            )
        else:
            self._send(404, json.dumps({"message": f"No such image: {name}"}).encode())

    def _get_container(self, path: str) -> None:
        found = self._container(path[len("/containers/") : -len("/json")])
        if found is None:
            return self._no_such(path.split("/")[2])
        c, _ = found
        body = {
            "Id": c["Id"],
            "Name": c["Names"][0],
            "Image": c["Image"],
            "State": {"Status": c["State"], "Running": c["State"] == "running"},
            "Config": {"Labels": c["Labels"], "Image": c["Image"]},
            "Mounts": c["Mounts"],
        }
        self._send(200, json.dumps(body).encode())

    def _get_exec(self, path: str) -> None:
        ex = self.server.execs.get(path.split("/")[2])
        if ex is None:
            return self._send(404, json.dumps({"message": "No such exec instance"}).encode())
        self._send(
            200,
            json.dumps(
                {"ID": path.split("/")[2], "Running": False, "ExitCode": ex["exit"]}
            ).encode(),
        )

    def _get_networks(self, query_text: str) -> None:
        query = urllib.parse.parse_qs(query_text)
        filters = json.loads(query.get("filters", ["{}"])[0] or "{}")
        names = filters.get("name") or []
        if isinstance(names, dict):  # the older map form {"name": {"kind": true}}
            names = list(names)
        listed = [
            self._network(n)
            for n in self._state().get("networks") or []
            if not names or any(want in n for want in names)
        ]
        self._send(200, json.dumps(listed).encode())

    def _get_network(self, path: str) -> None:
        name = urllib.parse.unquote(path[len("/networks/") :])
        if name not in (self._state().get("networks") or []):
            return self._send(404, json.dumps({"message": f"network {name} not found"}).encode())
        self._send(200, json.dumps(self._network(name)).encode())

    def _get_containers(self, query_text: str) -> None:
        query = urllib.parse.parse_qs(query_text)
        filters = json.loads(query.get("filters", ["{}"])[0] or "{}")
        state_file = self.server.state_dir / "state.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        listed = [c for c in containers(state) if _matches(c, filters)]
        if query.get("all", ["0"])[0] in ("0", "false"):
            listed = [c for c in listed if c["State"] == "running"]
        self._send(200, json.dumps(listed).encode())

    def _container(self, ref: str) -> tuple[dict[str, Any], str] | None:
        state = self._state()
        for c in containers(state):
            if ref in (c["Id"], c["Names"][0].lstrip("/")):
                cluster = c["Labels"].get("io.x-k8s.kind.cluster") or c["Labels"].get(
                    "k3d.cluster", ""
                )
                return c, cluster
        return None

    def _network(self, name: str) -> dict[str, Any]:
        attached = {
            c["Id"]: {"Name": c["Names"][0].lstrip("/")}
            for c in containers(self._state())
            if c["HostConfig"]["NetworkMode"] == name
        }
        return {
            "Name": name,
            "Id": hashlib.sha256(name.encode()).hexdigest(),
            "Driver": "bridge",
            "Scope": "local",
            "Containers": attached,
        }

    def do_DELETE(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        if not path.startswith("/networks/"):
            return self._send(404, json.dumps({"message": f"page not found: {self.path}"}).encode())
        name = urllib.parse.unquote(path[len("/networks/") :])
        with fakestate.locked(self.server.state_dir) as st:
            if name not in (st.get("networks") or []):
                return self._send(
                    404, json.dumps({"message": f"network {name} not found"}).encode()
                )
            net = self._network(name)
            if net["Containers"]:
                return self._send(
                    403,
                    json.dumps(
                        {
                            "message": f"error while removing network: network "
                            f"{name} id {net['Id']} has active endpoints"
                        }
                    ).encode(),
                )
            st["networks"].remove(name)
        self.send_response(204)
        self.send_header("Api-Version", API_VERSION)
        self.end_headers()

    def _no_such(self, ref: str) -> None:
        self._send(404, json.dumps({"message": f"No such container: {ref}"}).encode())

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "containers" and parts[2] == "start":
            found = self._container(parts[1])
            if found is None:
                return self._no_such(parts[1])
            c, cluster = found
            if c["State"] == "running":
                return self._send(304, b"")
            with fakestate.locked(self.server.state_dir) as st:  # the fake tools' lock
                st["clusters"][cluster]["running"] = True
            self.send_response(204)
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
        elif len(parts) == 3 and parts[0] == "containers" and parts[2] == "exec":
            found = self._container(parts[1])
            body = self._body()
            if found is None:
                return self._no_such(parts[1])
            c, cluster = found
            if c["State"] != "running":
                return self._send(
                    409, json.dumps({"message": f"container {c['Id']} is not running"}).encode()
                )
            exec_id = hashlib.sha256(f"{c['Id']}{len(self.server.execs)}".encode()).hexdigest()
            self.server.execs[exec_id] = {
                "cmd": body.get("Cmd") or [],
                "cluster": cluster,
                "exit": 0,
            }
            self._send(201, json.dumps({"Id": exec_id}).encode())
        elif len(parts) == 3 and parts[0] == "exec" and parts[2] == "start":
            self._body()
            ex = self.server.execs.get(parts[1])
            if ex is None:
                return self._send(404, json.dumps({"message": "No such exec instance"}).encode())
            out = b""
            if ex["cmd"][:3] == ["crictl", "images", "-o"]:
                cluster_state = (self._state().get("clusters") or {}).get(ex["cluster"]) or {}
                out = json.dumps(
                    {
                        "images": [
                            {
                                "id": "sha256:" + hashlib.sha256(ref.encode()).hexdigest(),
                                "repoTags": [_qualified(ref)],
                                "repoDigests": [],
                                "size": "1000",
                                "uid": None,
                                "username": "",
                                "spec": None,
                                "pinned": False,
                            }
                            for ref in cluster_state.get("images") or []
                        ]
                    },
                    indent=2,
                ).encode()
            else:
                ex["exit"] = 127
            # a raw stream (Content-Type application/vnd.docker.raw-stream), frames of
            # [stream, 0, 0, 0, size (big-endian uint32)] + payload; the connection then closes
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            self.wfile.flush()
            # the docker SDK reads the stream from the raw socket under http.client's buffered
            # reader (docker/api/client.py _get_raw_response_socket): bytes that arrive together
            # with the headers are lost in that buffer. The real engine's output comes after
            # the command has started; so here, a moment after the headers
            time.sleep(0.2)
            if out:
                self.wfile.write(bytes([1, 0, 0, 0]) + len(out).to_bytes(4, "big") + out)
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(404, json.dumps({"message": f"page not found: {self.path}"}).encode())


def _qualified(ref: str) -> str:
    """How containerd names an image: ``docker.io/library/x:latest`` for ``x``."""
    name = _familiar(ref)
    first = name.split("/", 1)[0]
    if "/" not in name:
        return "docker.io/library/" + name
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + name
    return name


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state_dir: Path
    execs: dict[str, dict[str, Any]]


class FakeDockerEngine:
    def __init__(self, state_dir: Path) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state_dir = Path(state_dir)
        self.server.execs = {}
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address: (host, port)
        return f"tcp://{host}:{port}"

    def __enter__(self) -> FakeDockerEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
