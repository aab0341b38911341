"""Find, download, verify and run the pinned tools (k3d, kind, kubectl).

A tool on ``PATH`` is used when its version fits the pin (see :func:`version_fits`); otherwise
the pinned release binary is downloaded into ``settings.cache_dir()/bin/<version>/<tool>``,
checked against the checksum the release publishes, and written atomically (temporary file,
``chmod 0755``, ``os.replace``). A mismatch raises :class:`ChecksumMismatch` and leaves nothing
behind.

Checksum formats (verified in source):

- k3d: one ``checksums.txt`` per release, GNU ``sha256sum`` text whose names carry the ``_dist/``
  prefix: ``<sha256>  _dist/k3d-linux-amd64`` (k3d-io/k3d Makefile target ``gen-checksum``:
  ``sha256sum _dist/* > _dist/checksums.txt``; assets built by ``gox -output="_dist/k3d-{{.OS}}-
  {{.Arch}}"``). The line is chosen by an EXACT basename match: the official install.sh greps a
  substring, so ``k3d-linux-arm`` would also match ``k3d-linux-arm64``.
- kind: one ``<asset>.sha256sum`` beside each bare binary ``kind-<os>-<arch>``, made by
  ``shasum -a 256 "$f" > "$f".sha256sum`` (kubernetes-sigs/kind hack/release/build/cross.sh), so
  one GNU-style line ``<sha256>  kind-linux-amd64``; the same exact-basename lookup applies.
- kubectl: ``<binary url>.sha256`` holds the bare hex digest and nothing else (kubernetes
  release docs, "Install and Set Up kubectl on Linux": ``echo "$(cat kubectl.sha256)  kubectl" |
  sha256sum --check``).

Base URLs can be overridden for tests and mirrors: ``SANDBOX_K3D_URL`` (default
``https://github.com/k3d-io/k3d/releases/download``; files at ``<base>/<version>/k3d-<os>-<arch>``
and ``<base>/<version>/checksums.txt``), ``SANDBOX_KIND_URL`` (default
``https://github.com/kubernetes-sigs/kind/releases/download``; ``<base>/<version>/kind-<os>-<arch>``
and ``.sha256sum`` beside it) and ``SANDBOX_KUBECTL_URL`` (default
``https://dl.k8s.io/release``; file at ``<base>/<version>/bin/<os>/<arch>/kubectl``).
``SANDBOX_TOOLS_FROM_PATH=0`` skips the ``PATH`` lookup.

Every tool run goes through :func:`run`: argv lists (no shell), a timeout, ``LOG_COLORS=false``
(k3d's logrus formatter forces colours otherwise: cmd/root.go ``ForceColors: true``), no pty, and
failures turned into :class:`ToolError` carrying the tool's stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from sandbox import settings as settings_mod
from sandbox.errors import ChecksumMismatch, ToolError

log = logging.getLogger(__name__)

DEFAULT_K3D_BASE_URL = "https://github.com/k3d-io/k3d/releases/download"
DEFAULT_KUBECTL_BASE_URL = "https://dl.k8s.io/release"
DEFAULT_KIND_BASE_URL = "https://github.com/kubernetes-sigs/kind/releases/download"
DOWNLOAD_TIMEOUT = 30.0  # seconds per HTTP request (connect + each read)
DOWNLOAD_ATTEMPTS = 3
VERSION_TIMEOUT = 15.0

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


# --------------------------------------------------------------------------------------------
# Running tools


@dataclass(frozen=True)
class ToolResult:
    """What a finished tool run printed and returned."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


class ToolFailed(ToolError):
    """A tool ran and exited non-zero. ``result`` has its stdout, stderr and exit code."""

    def __init__(self, message: str, result: ToolResult, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment plus ``LOG_COLORS=false`` (never replaces PATH or HOME)."""
    env = {**os.environ, "LOG_COLORS": "false"}
    if extra:
        env.update(extra)
    return env


def _tail(text: str, lines: int = 15) -> str:
    parts = text.strip().splitlines()
    return "\n".join(parts[-lines:])


def describe_argv(argv: Sequence[str]) -> str:
    """The command as a person would type it (for messages)."""
    return " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    hint: str | None = None,
) -> ToolResult:
    """Run ``argv`` (``argv[0]`` a path to the binary) with a timeout; never through a shell.

    Returns the result when the exit code is 0 or ``check`` is false. Raises :class:`ToolFailed`
    (a :class:`ToolError`) with the tool's stderr otherwise, and :class:`ToolError` when the tool
    is missing or does not finish within ``timeout`` seconds.
    """
    args = [os.fspath(a) for a in argv]
    what = describe_argv(args)
    log.debug("run: %s", " ".join(args))
    try:
        # subprocess.run waits on the child itself: no polling, so a call costs what the tool
        # takes (the `sh` library this replaced slept in 0.1 s steps while waiting, ~0.1 s
        # more per call)
        proc = subprocess.run(
            args,
            input=None if input is None else input.encode("utf-8"),
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            env=tool_env(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:  # the child is killed by subprocess.run
        raise ToolError(f"`{what}` did not finish within {timeout:g}s", hint=hint) from e
    except (FileNotFoundError, PermissionError) as e:
        raise ToolError(f"{args[0]} not found", hint=hint) from e
    except OSError as e:
        raise ToolError(f"cannot run {args[0]}: {e}", hint=hint) from e
    if proc.returncode < 0:  # killed by a signal
        name = signal.Signals(-proc.returncode).name
        raise ToolError(f"`{what}` was killed: {name}", hint=hint)
    result = ToolResult(
        argv=tuple(args),
        exit_code=int(proc.returncode),
        stdout=proc.stdout.decode("utf-8", "replace"),
        stderr=proc.stderr.decode("utf-8", "replace"),
    )
    if check and result.exit_code != 0:
        detail = _tail(result.stderr) or _tail(result.stdout) or "(no output)"
        raise ToolFailed(f"`{what}` failed (exit {result.exit_code}):\n{detail}", result, hint=hint)
    return result


# --------------------------------------------------------------------------------------------
# Versions


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``v1.32.4-dispatcher`` -> (1, 32, 4); None when no version is in the text."""
    m = _VERSION_RE.search(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def version_fits(tool: str, found: str, pinned: str) -> bool:
    """Whether a tool found on PATH can stand in for the pinned one.

    - k3d: same major and minor as the pin, patch >= the pin (the flags used here are checked
      against v5.9.0's cmd/cluster/clusterCreate.go).
    - kind: the same rule (flags and config fields checked against v0.33.0; a node image is
      released for one kind version, so a different minor is not taken).
    - kubectl: the pin's minor or the one before it. kubectl's version-skew policy is +-1 minor
      against the API server; the pinned k3s is v1.35 and the pinned kubectl v1.36, so v1.35 and
      v1.36 are within the skew of both, and a v1.37 on PATH (two minors above k3s) is not.
    """
    f, p = parse_version(found), parse_version(pinned)
    if f is None or p is None:
        return False
    if tool in ("k3d", "kind"):
        return f[0] == p[0] and f[1] == p[1] and f[2] >= p[2]
    if tool == "kubectl":
        return f[0] == p[0] and p[1] - 1 <= f[1] <= p[1]
    return f == p


def k3d_version(binary: Path) -> str:
    """``k3d version -o json`` prints ``{"k3d":"v5.9.0","k3s":"v1.xx.x-k3s1"}`` (cmd/root.go
    ``printVersion``); returns the k3d field."""
    result = run([binary, "version", "-o", "json"], timeout=VERSION_TIMEOUT)
    try:
        return str(json.loads(result.stdout)["k3d"])
    except (ValueError, KeyError, TypeError) as e:
        raise ToolError(f"cannot read the version of {binary}: {result.stdout.strip()!r}") from e


def kubectl_version(binary: Path) -> str:
    """``kubectl version --client -o json`` -> ``clientVersion.gitVersion`` (e.g. v1.36.1)."""
    result = run([binary, "version", "--client", "-o", "json"], timeout=VERSION_TIMEOUT)
    try:
        return str(json.loads(result.stdout)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError) as e:
        raise ToolError(f"cannot read the version of {binary}: {result.stdout.strip()!r}") from e


def kind_version(binary: Path) -> str:
    """``kind version`` prints ``kind v0.33.0 go1.26.8 linux/amd64`` (pkg/cmd/kind/version
    ``DisplayVersion``: "kind v" + Version() + " " + runtime.Version() + ...); returns v0.33.0."""
    result = run([binary, "version"], timeout=VERSION_TIMEOUT)
    fields = result.stdout.split()
    if len(fields) >= 2 and fields[0] == "kind" and parse_version(fields[1]):
        return fields[1]
    raise ToolError(f"cannot read the version of {binary}: {result.stdout.strip()!r}")


VERSION_READERS: dict[str, Callable[[Path], str]] = {
    "k3d": k3d_version,
    "kind": kind_version,
    "kubectl": kubectl_version,
}


# --------------------------------------------------------------------------------------------
# Downloads


@dataclass(frozen=True)
class Asset:
    """One downloadable pinned binary and where its published checksum is."""

    tool: str
    version: str
    url: str
    checksum_url: str
    checksum_name: str | None  # the name to look up in a checksums.txt; None: bare digest file


def k3d_asset(version: str, os_name: str, arch: str) -> Asset:
    base = os.environ.get("SANDBOX_K3D_URL", DEFAULT_K3D_BASE_URL).rstrip("/")
    name = f"k3d-{os_name}-{arch}"
    return Asset(
        "k3d", version, f"{base}/{version}/{name}", f"{base}/{version}/checksums.txt", name
    )


def kind_asset(version: str, os_name: str, arch: str) -> Asset:
    base = os.environ.get("SANDBOX_KIND_URL", DEFAULT_KIND_BASE_URL).rstrip("/")
    name = f"kind-{os_name}-{arch}"
    url = f"{base}/{version}/{name}"
    return Asset("kind", version, url, url + ".sha256sum", name)


def kubectl_asset(version: str, os_name: str, arch: str) -> Asset:
    base = os.environ.get("SANDBOX_KUBECTL_URL", DEFAULT_KUBECTL_BASE_URL).rstrip("/")
    url = f"{base}/{version}/bin/{os_name}/{arch}/kubectl"
    return Asset("kubectl", version, url, url + ".sha256", None)


def asset_for(tool: str, version: str) -> Asset:
    os_name, arch = settings_mod.host_platform()
    if tool == "k3d":
        return k3d_asset(version, os_name, arch)
    if tool == "kind":
        return kind_asset(version, os_name, arch)
    if tool == "kubectl":
        return kubectl_asset(version, os_name, arch)
    raise ToolError(f"unknown tool {tool!r}")


def parse_checksums(text: str, name: str) -> str:
    """The sha256 for ``name`` in GNU sha256sum text (``<hex>  [*]<path>``), matching the
    basename of the path exactly (``_dist/k3d-linux-arm`` is not ``k3d-linux-arm64``)."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        digest, path = fields
        path = path.lstrip("*")  # binary-mode marker of sha256sum
        if path.rsplit("/", 1)[-1] == name and re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            return digest.lower()
    raise ChecksumMismatch(f"checksums.txt has no entry for {name}")


def parse_bare_digest(text: str) -> str:
    """A ``.sha256`` file holding only the hex digest (kubectl); tolerate a trailing name."""
    fields = text.split()
    if not fields or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
        raise ChecksumMismatch(f"not a sha256 digest: {text.strip()[:80]!r}")
    return fields[0].lower()


def _get(url: str, *, stream: bool = False) -> requests.Response:
    """GET with redirects followed and retries on connection errors, 408, 429 and 5xx."""
    last: str = ""
    for attempt in range(DOWNLOAD_ATTEMPTS):
        if attempt:
            time.sleep(min(2.0**attempt * 0.5, 4.0))
        try:
            response = requests.get(
                url, stream=stream, timeout=DOWNLOAD_TIMEOUT, allow_redirects=True
            )
        except requests.RequestException as e:
            last = str(e)
            continue
        if response.status_code == 200:
            return response
        last = f"HTTP {response.status_code}"
        response.close()
        if response.status_code not in (408, 429) and response.status_code < 500:
            break
    raise ToolError(
        f"cannot download {url}: {last}",
        hint="check the network (or a proxy: HTTPS_PROXY), or put the tool on PATH",
    )


def expected_digest(asset: Asset) -> str:
    response = _get(asset.checksum_url)
    text = response.text
    if asset.checksum_name is not None:
        try:
            return parse_checksums(text, asset.checksum_name)
        except ChecksumMismatch as e:
            raise ChecksumMismatch(f"{asset.checksum_url}: {e}") from e
    return parse_bare_digest(text)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(tool: str, version: str) -> Path:
    return settings_mod.cache_dir() / "bin" / version / tool


def download(asset: Asset, dest: Path) -> Path:
    """Download ``asset`` to ``dest`` verifying its published sha256; atomic; 0755.

    The digest is recorded beside the binary (``<dest>.sha256``) so a later run can notice a
    corrupted cache without the network.
    """
    want = expected_digest(asset)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with _get(asset.url, stream=True) as response, os.fdopen(fd, "wb") as f:
            for chunk in response.iter_content(chunk_size=1 << 16):
                digest.update(chunk)
                f.write(chunk)
        got = digest.hexdigest()
        if got != want:
            raise ChecksumMismatch(
                f"{asset.url}: sha256 {got} does not match the published {want} "
                f"({asset.checksum_url}); the download was discarded",
                hint="retry later; if it persists the release or a proxy serves a different file",
            )
        tmp.chmod(0o755)
        os.replace(tmp, dest)
        Path(str(dest) + ".sha256").write_text(want + "\n")
    except requests.RequestException as e:
        raise ToolError(f"cannot download {asset.url}: {e}") from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _cache_intact(path: Path) -> bool:
    record = Path(str(path) + ".sha256")
    if not (path.is_file() and record.is_file()):
        return False
    return _sha256(path) == record.read_text().strip()


@dataclass(frozen=True)
class Tool:
    """A resolved tool: where it is, its version, and whether it came from PATH or the cache."""

    name: str
    path: Path
    version: str
    source: str  # "path" | "cache" | "download"


def _memo_path() -> Path:
    return settings_mod.cache_dir() / "tool-versions.json"


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def read_version(tool: str, path: Path, *, remember: bool = False) -> str:
    """The tool's version, memoised by (real path, size, mtime) in the cache dir so a ready
    stack is confirmed without running every binary again. Only ``remember`` writes the memo
    (``up``/``down`` do; ``doctor`` and ``status`` write nothing)."""
    memo: dict[str, str] = {}
    key = None
    try:
        key = _file_key(path)
        memo = json.loads(_memo_path().read_text())
        if isinstance(memo, dict) and isinstance(memo.get(key), str):
            return memo[key]
    except (OSError, ValueError):
        memo = {}
    version = VERSION_READERS[tool](path)
    if remember and key is not None:
        memo = {k: v for k, v in memo.items() if not k.startswith(f"{path.resolve()}:")}
        memo[key] = version
        with contextlib.suppress(OSError):
            _memo_path().parent.mkdir(parents=True, exist_ok=True)
            tmp = _memo_path().with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(memo, indent=1))
            os.replace(tmp, _memo_path())
    return version


def find_on_path(tool: str, pinned: str, *, remember: bool = False) -> Tool | None:
    """The tool on PATH when its version fits the pin, else None."""
    if os.environ.get("SANDBOX_TOOLS_FROM_PATH", "1").lower() in ("0", "false", "no"):
        return None
    found = shutil.which(tool)
    if not found:
        return None
    try:
        version = read_version(tool, Path(found), remember=remember)
    except ToolError as e:
        log.info("ignoring %s on PATH: %s", found, e)
        return None
    if not version_fits(tool, version, pinned):
        log.info("ignoring %s %s on PATH: the pin is %s", found, version, pinned)
        return None
    return Tool(tool, Path(found), version, "path")


def ensure_tool(
    tool: str, version: str, *, on_download: Callable[[str], None] | None = None
) -> Tool:
    """The tool from PATH if it fits, else the verified cached or freshly downloaded pin."""
    found = find_on_path(tool, version, remember=True)
    if found:
        return found
    path = cached_path(tool, version)
    if _cache_intact(path):
        return Tool(tool, path, version, "cache")
    asset = asset_for(tool, version)
    if on_download:
        on_download(f"downloading {tool} {version} from {asset.url}")
    download(asset, path)
    try:
        got = VERSION_READERS[tool](path)
    except ToolError as e:
        path.unlink(missing_ok=True)
        raise ToolError(f"the downloaded {tool} {version} does not run: {e}") from e
    if parse_version(got) != parse_version(version):
        log.warning("%s reports version %s, pinned %s", path, got, version)
    return Tool(tool, path, version, "download")


def describe_tool(tool: str, pinned: str) -> dict[str, str | None]:
    """For ``doctor``/``status``: what would be used, without downloading anything."""
    found = shutil.which(tool)
    info: dict[str, str | None] = {
        "pinned": pinned,
        "path": found,
        "path_version": None,
        "use": None,
    }
    if found:
        try:
            info["path_version"] = read_version(tool, Path(found))
        except ToolError as e:
            info["path_version"] = f"unreadable ({e.message.splitlines()[0]})"
    on_path = find_on_path(tool, pinned)
    cached = cached_path(tool, pinned)
    if on_path:
        info["use"] = str(on_path.path)
    elif _cache_intact(cached):
        info["use"] = str(cached)
    return info
