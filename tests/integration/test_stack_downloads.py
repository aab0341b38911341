"""Pinned tool downloads from a real loopback HTTP server: checksum verified, cached, refused on
mismatch (release layouts: k3d ``checksums.txt`` with ``_dist/`` names; kubectl ``.sha256``)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import FakeWorld
from sandbox import settings
from sandbox.errors import ChecksumMismatch, ToolError
from sandbox.infra import tools

OS, ARCH = settings.host_platform()
K3D_BIN = b'#!/bin/sh\necho \'{"k3d":"v5.9.0","k3s":"v1.35.5-k3s1"}\'\n'
KUBECTL_BIN = (
    b'#!/bin/sh\necho \'{"clientVersion":{"gitVersion":"v1.36.1"},"kustomizeVersion":"v5.7.1"}\'\n'
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Release:
    """Serves release files on 127.0.0.1; binaries go through a 302 like GitHub's."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        release = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                release.hits.append(self.path)
                redirect = self.path.endswith((f"k3d-{OS}-{ARCH}", "/kubectl"))
                if self.path in release.files and redirect:
                    self.send_response(302)
                    self.send_header("Location", "/objects" + self.path)
                    self.end_headers()
                    return
                body = release.files.get(self.path.removeprefix("/objects"))
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish_k3d(self, binary: bytes, checksum_of: bytes | None = None) -> None:
        digest = sha(binary if checksum_of is None else checksum_of)
        self.files[f"/k3d/v5.9.0/k3d-{OS}-{ARCH}"] = binary
        other = "arm" if ARCH == "arm64" else "386"
        self.files["/k3d/v5.9.0/checksums.txt"] = (
            f"{'0' * 64}  _dist/k3d-{OS}-{other}\n{digest}  _dist/k3d-{OS}-{ARCH}\n"
            f"{'1' * 64}  _dist/k3d-windows-amd64.exe\n"
        ).encode()

    def publish_kubectl(self, binary: bytes, checksum_of: bytes | None = None) -> None:
        path = f"/kubectl/v1.36.1/bin/{OS}/{ARCH}/kubectl"
        self.files[path] = binary
        self.files[path + ".sha256"] = sha(binary if checksum_of is None else checksum_of).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Release]:
    r = Release()
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SANDBOX_K3D_URL", r.url + "/k3d")
    monkeypatch.setenv("SANDBOX_KUBECTL_URL", r.url + "/kubectl")
    monkeypatch.setenv("SANDBOX_TOOLS_FROM_PATH", "0")
    yield r
    r.close()


def test_k3d_is_downloaded_verified_and_cached(release: Release, tmp_path: Path) -> None:
    release.publish_k3d(K3D_BIN)
    tool = tools.ensure_tool("k3d", "v5.9.0")
    assert tool.source == "download"
    assert tool.path == tmp_path / "cache" / "bin" / "v5.9.0" / "k3d"
    assert tool.path.read_bytes() == K3D_BIN
    assert tool.path.stat().st_mode & 0o777 == 0o755
    assert f"/objects/k3d/v5.9.0/k3d-{OS}-{ARCH}" in release.hits  # the redirect was followed
    hits = len(release.hits)
    again = tools.ensure_tool("k3d", "v5.9.0")
    assert again.source == "cache"
    assert len(release.hits) == hits  # no network for a verified cache


def test_k3d_checksum_mismatch_is_refused_and_leaves_nothing(
    release: Release, tmp_path: Path
) -> None:
    release.publish_k3d(K3D_BIN, checksum_of=b"another build")
    with pytest.raises(ChecksumMismatch, match="does not match the published"):
        tools.ensure_tool("k3d", "v5.9.0")
    folder = tmp_path / "cache" / "bin" / "v5.9.0"
    assert list(folder.iterdir()) == []  # no binary, no temporary file


def test_corrupted_cache_is_downloaded_again(release: Release) -> None:
    release.publish_k3d(K3D_BIN)
    tool = tools.ensure_tool("k3d", "v5.9.0")
    tool.path.write_bytes(b"#!/bin/sh\necho tampered\n")
    assert tools.ensure_tool("k3d", "v5.9.0").source == "download"
    assert tool.path.read_bytes() == K3D_BIN


def test_kubectl_bare_digest(release: Release) -> None:
    release.publish_kubectl(KUBECTL_BIN)
    tool = tools.ensure_tool("kubectl", "v1.36.1")
    assert tool.source == "download" and tool.path.read_bytes() == KUBECTL_BIN
    (tool.path.parent / "kubectl").unlink()
    release.publish_kubectl(KUBECTL_BIN, checksum_of=b"x")
    with pytest.raises(ChecksumMismatch):
        tools.ensure_tool("kubectl", "v1.36.1")


def test_missing_release_is_a_tool_error(release: Release) -> None:
    with pytest.raises(ToolError, match="HTTP 404"):
        tools.ensure_tool("k3d", "v5.9.0")


def test_path_tool_of_another_version_is_not_used(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeWorld(tmp_path / "world") as world:
        monkeypatch.setenv("PATH", world.env["PATH"])
        monkeypatch.setenv("FAKE_STATE_DIR", world.env["FAKE_STATE_DIR"])
        monkeypatch.setenv("SANDBOX_TOOLS_FROM_PATH", "1")
        monkeypatch.setenv("FAKE_K3D_VERSION", "v5.9.1")
        assert tools.ensure_tool("k3d", "v5.9.0").source == "path"  # a later patch fits
        monkeypatch.setenv("FAKE_K3D_VERSION", "v5.8.3")
        # versions are memoised per (file, size, mtime); the fake changed version, not file
        (tmp_path / "cache" / "tool-versions.json").unlink()
        release.publish_k3d(K3D_BIN)
        assert tools.ensure_tool("k3d", "v5.9.0").source == "download"


def test_cli_up_refuses_a_mismatching_download(tmp_path: Path) -> None:
    release = Release()
    try:
        release.publish_k3d(K3D_BIN, checksum_of=b"tampered")
        with FakeWorld(tmp_path, tools_on_path=False) as world:
            result = world.sandbox("up", SANDBOX_K3D_URL=release.url + "/k3d")
            assert result.returncode == 3
            assert "does not match the published" in result.stderr
            assert "Traceback" not in result.stderr
            cache = world.home / ".cache" / "gateway-sandbox" / "bin" / "v5.9.0"
            assert not cache.exists() or list(cache.iterdir()) == []
            assert world.calls("k3d") == [] and world.state()["clusters"] == {}
    finally:
        release.close()
