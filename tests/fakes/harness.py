"""A sandbox world for integration tests: fake k3d/kind/kubectl on PATH, a fake Docker engine on
loopback, a private HOME, and a helper to run the real ``sandbox`` CLI in a subprocess.

    with FakeWorld(tmp_path) as world:
        result = world.sandbox("up")
        assert result.returncode == 0
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fake_docker_engine import FakeDockerEngine

FAKES = Path(__file__).resolve().parent
INSTALL_YAML = FAKES / "envoy-gateway-install.yaml"
SANDBOX_TIMEOUT = 60.0  # seconds a `sandbox` command may take


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeWorld:
    def __init__(self, root: Path, *, tools_on_path: bool = True) -> None:
        self.root = root
        self.bin = root / "bin"
        self.home = root / "home"
        self.state_dir = root / "fake-state"
        for d in (self.bin, self.home, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        # the fakes run under /usr/bin/env python3: make that this interpreter (it has PyYAML)
        (self.bin / "python3").symlink_to(sys.executable)
        if tools_on_path:
            for tool in ("k3d", "kind", "kubectl"):
                (self.bin / tool).symlink_to(FAKES / tool)
        self.tools_on_path = tools_on_path
        self.engine = FakeDockerEngine(self.state_dir)
        self.env = self._env()

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SANDBOX_", "FAKE_", "XDG_", "DOCKER_", "KUBECONFIG"))
        }
        path = env.get("PATH", "").split(os.pathsep)
        if not self.tools_on_path:
            # no real k3d/kind/kubectl either (a developer's own, or realstack's on PATH): the
            # sandbox must download its pins
            path = [
                d
                for d in path
                if not any(
                    os.access(os.path.join(d, t), os.X_OK) for t in ("k3d", "kind", "kubectl")
                )
            ]
        env.update(
            PATH=os.pathsep.join([str(self.bin), *path]),
            HOME=str(self.home),
            FAKE_STATE_DIR=str(self.state_dir),
            SANDBOX_ENVOY_GATEWAY_INSTALL_YAML=str(INSTALL_YAML),
            NO_COLOR="1",
            COLUMNS="200",
        )
        return env

    def __enter__(self) -> FakeWorld:
        self.engine.__enter__()
        self.env["DOCKER_HOST"] = self.engine.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.__exit__(*exc)

    # -- running things ----------------------------------------------------------------------

    def sandbox_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sandbox", *args]

    def sandbox(
        self, *args: str, timeout: float = SANDBOX_TIMEOUT, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.sandbox_argv(*args),
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def tool(self, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FAKES / name), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    # -- looking at the fake world ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        path = self.state_dir / "state.json"
        return (
            json.loads(path.read_text())
            if path.exists()
            else {"clusters": {}, "objects": {}, "calls": []}
        )

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """argv of every fake-tool invocation (of ``tool`` only, when given), oldest first."""
        return [c[1:] for c in self.state().get("calls", []) if tool is None or c[0] == tool]

    def wait_for_call(self, predicate: Any, timeout: float = 20, *, after: int = 0) -> None:
        """Until a tool call (``[tool, *argv]``, the ``after``-th call or a later one) matches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(c) for c in self.state().get("calls", [])[after:]):
                return
            time.sleep(0.05)
        raise AssertionError("the expected tool call never happened")

    @property
    def sandbox_state(self) -> Path:
        return self.home / ".local" / "state" / "gateway-sandbox"

    def kubeconfig(self, cluster: str = "sandbox") -> Path:
        return self.sandbox_state / "clusters" / cluster / "kubeconfig"
