"""Pure parts of sandbox.infra.tools: checksum parsing, version fitting, asset URLs."""

from __future__ import annotations

import time

import pytest

from sandbox.errors import ChecksumMismatch, ToolError
from sandbox.infra import tools

A = "a" * 64
B = "b" * 64
C = "c" * 64

# Shape of k3d's checksums.txt: `sha256sum _dist/* > _dist/checksums.txt` (k3d Makefile).
CHECKSUMS = f"""{A}  _dist/k3d-linux-arm
{B}  _dist/k3d-linux-arm64
{C}  _dist/k3d-darwin-arm64
"""


def test_checksums_match_the_exact_basename() -> None:
    assert tools.parse_checksums(CHECKSUMS, "k3d-linux-arm64") == B
    assert tools.parse_checksums(CHECKSUMS, "k3d-linux-arm") == A  # not the arm64 line
    assert tools.parse_checksums(CHECKSUMS, "k3d-darwin-arm64") == C


def test_checksums_binary_marker_and_case() -> None:
    assert tools.parse_checksums(f"{A.upper()} *_dist/k3d-linux-amd64\n", "k3d-linux-amd64") == A


def test_checksums_missing_entry_is_refused() -> None:
    with pytest.raises(ChecksumMismatch, match="no entry for k3d-linux-amd64"):
        tools.parse_checksums(CHECKSUMS, "k3d-linux-amd64")
    with pytest.raises(ChecksumMismatch):
        tools.parse_checksums(f"{A}  _dist/k3d-linux-amd64-extra\n", "k3d-linux-amd64")


def test_bare_digest() -> None:
    assert tools.parse_bare_digest(f"{A}\n") == A
    assert tools.parse_bare_digest(f"{A.upper()}  kubectl\n") == A
    with pytest.raises(ChecksumMismatch):
        tools.parse_bare_digest("<html>not found</html>")
    with pytest.raises(ChecksumMismatch):
        tools.parse_bare_digest("")


@pytest.mark.parametrize(
    ("tool", "found", "pinned", "fits"),
    [
        ("k3d", "v5.9.0", "v5.9.0", True),
        ("k3d", "v5.9.2", "v5.9.0", True),
        ("k3d", "v5.8.3", "v5.9.0", False),
        ("k3d", "v5.10.0", "v5.9.0", False),
        ("k3d", "garbage", "v5.9.0", False),
        ("kubectl", "v1.36.1", "v1.36.1", True),
        ("kubectl", "v1.35.0", "v1.36.1", True),
        ("kubectl", "v1.37.2", "v1.36.1", False),  # two minors above the pinned k3s v1.35
        ("kubectl", "v1.34.9", "v1.36.1", False),
        ("kubectl", "v1.32.4-dispatcher", "v1.36.1", False),
        ("kubectl", "v2.36.1", "v1.36.1", False),
    ],
)
def test_version_fits(tool: str, found: str, pinned: str, fits: bool) -> None:
    assert tools.version_fits(tool, found, pinned) is fits


def test_parse_version() -> None:
    assert tools.parse_version("v1.32.4-dispatcher") == (1, 32, 4)
    assert tools.parse_version("k3d version v5.9.0") == (5, 9, 0)
    assert tools.parse_version("none") is None


def test_asset_urls_follow_the_release_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_K3D_URL", raising=False)
    monkeypatch.delenv("SANDBOX_KUBECTL_URL", raising=False)
    k3d = tools.k3d_asset("v5.9.0", "linux", "arm64")
    assert k3d.url == "https://github.com/k3d-io/k3d/releases/download/v5.9.0/k3d-linux-arm64"
    assert (
        k3d.checksum_url == "https://github.com/k3d-io/k3d/releases/download/v5.9.0/checksums.txt"
    )
    assert k3d.checksum_name == "k3d-linux-arm64"
    kubectl = tools.kubectl_asset("v1.36.1", "darwin", "amd64")
    assert kubectl.url == "https://dl.k8s.io/release/v1.36.1/bin/darwin/amd64/kubectl"
    assert kubectl.checksum_url == kubectl.url + ".sha256"
    assert kubectl.checksum_name is None
    monkeypatch.setenv("SANDBOX_K3D_URL", "http://127.0.0.1:9/mirror/")
    assert tools.k3d_asset("v5.9.0", "linux", "amd64").url == (
        "http://127.0.0.1:9/mirror/v5.9.0/k3d-linux-amd64"
    )


def test_run_reports_stderr_and_exit_code() -> None:
    with pytest.raises(tools.ToolFailed) as info:
        tools.run(["sh", "-c", "echo out; echo boom >&2; exit 3"], timeout=10)
    assert info.value.result.exit_code == 3
    assert "boom" in str(info.value)
    assert "exit 3" in str(info.value)
    ok = tools.run(["sh", "-c", "echo $LOG_COLORS"], timeout=10)
    assert ok.stdout.strip() == "false"


def test_run_waits_without_polling_and_gives_no_stdin() -> None:
    # each kubectl call of a run goes through tools.run: waiting on the child in 0.1 s polls
    # (as the `sh` library did) cost ~0.1 s a call; ten calls of `true` take milliseconds
    started = time.monotonic()
    for _ in range(10):
        tools.run(["true"], timeout=10)
    assert time.monotonic() - started < 0.9
    # a tool reading stdin gets end-of-file at once (never the caller's terminal), or the input
    assert tools.run(["cat"], timeout=5).stdout == ""
    assert tools.run(["cat"], input="objects", timeout=5).stdout == "objects"


def test_run_timeout_and_missing_tool() -> None:
    with pytest.raises(ToolError, match=r"did not finish within 0\.5s"):
        tools.run(["sleep", "5"], timeout=0.5)
    with pytest.raises(ToolError, match="not found"):
        tools.run(["/nonexistent/k3d", "version"], timeout=5)
