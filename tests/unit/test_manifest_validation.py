"""Which validation `sandbox check` does on manifests, and with what: the Gateway API CRD
schemas when at hand ($SANDBOX_GATEWAY_API_CRDS, Envoy Gateway's install.yaml, the cache),
else the reference model's field check (sandbox.scenario.fields); a download never hangs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox import settings
from sandbox.cli.main import main
from sandbox.manifests import Problem, load_manifest_file
from sandbox.scenario import crds as schema
from sandbox.scenario import fields
from sandbox.scenario.load import load_scenario
from sandbox.settings import INSTALL_ENV

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart"
CRDS = os.environ.get(schema.ENV_CRDS) or ""
needs_crds = pytest.mark.skipif(
    not CRDS or not Path(CRDS).is_dir(), reason=f"{schema.ENV_CRDS} is not set to a folder of CRDs"
)


@pytest.fixture
def nothing_at_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CRDs anywhere: env unset, an empty cache, a download refused at once."""
    monkeypatch.delenv(schema.ENV_CRDS, raising=False)
    monkeypatch.delenv(INSTALL_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(cache))
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", "http://127.0.0.1:9/{version}/")
    schema._load_crds_cached.cache_clear()
    return cache


def _typo(tmp_path: Path) -> Path:
    folder = tmp_path / "typo"
    shutil.copytree(QUICKSTART, folder)
    manifest = folder / "quickstart.yaml"
    manifest.write_text(manifest.read_text().replace("  hostnames:", "  hostname:"))
    return folder


def _install_yaml(path: Path) -> Path:
    """An install.yaml as Envoy Gateway's: the Gateway API CRDs among other objects."""
    parts = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: envoy-gateway-system\n"]
    parts += [f.read_text() for f in sorted(Path(CRDS).glob("gateway.networking.k8s.io_*.yaml"))]
    parts.append("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: envoy-gateway\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n---\n".join(parts))
    return path


def test_without_crds_the_model_field_check_finds_the_typo(
    tmp_path: Path, nothing_at_hand: Path
) -> None:
    folder = _typo(tmp_path)
    result = CliRunner().invoke(main, ["check", str(folder)])
    assert result.exit_code == 2, result.output
    line = next(
        i
        for i, t in enumerate((folder / "quickstart.yaml").read_text().splitlines(), 1)
        if t == "  hostname:"
    )
    assert (
        f"{folder / 'quickstart.yaml'}:{line}: HTTPRoute/backend: spec.hostname: unknown "
        "field (did you mean 'hostnames'?)"
    ) in result.stderr
    assert "schema: CRDs not at hand (" in result.stderr
    assert "the reference model's field check" in result.stderr
    assert "model says" not in result.stderr  # not found as a wrong answer any more


def test_ok_says_which_validation_was_done(nothing_at_hand: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(QUICKSTART)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "ok quickstart: 3 checks; CRDs not at hand, manifests pass "
        "the reference model's field check; the reference model agrees"
    )
    entry = json.loads(CliRunner().invoke(main, ["check", "-o", "json", str(QUICKSTART)]).stdout)[0]
    assert entry["schema"] == "model"
    assert entry["schema_note"].startswith("schema: CRDs not at hand (")


@needs_crds
def test_with_crds_the_ok_line_and_the_note_name_them() -> None:
    result = CliRunner().invoke(main, ["check", "--no-model", str(QUICKSTART)])
    assert result.exit_code == 0, result.output
    assert f"schema: Gateway API v1.6.1 experimental CRDs from {CRDS}" in result.stderr
    assert result.stdout.startswith(
        "ok quickstart: 3 checks; manifests valid against the CRD "
        "schemas; model not consulted (--no-model)"
    )


@needs_crds
@pytest.mark.parametrize("where", ["env", "cache"])
def test_envoy_gateway_install_yaml_brings_the_crds(
    tmp_path: Path, nothing_at_hand: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "env":
        install = _install_yaml(tmp_path / "install.yaml")
        monkeypatch.setenv(INSTALL_ENV, str(install))
    else:  # where `sandbox up` caches it (controllers/envoy_gateway.py install_yaml)
        version = settings.Settings().envoy_gateway_version
        install = _install_yaml(
            nothing_at_hand / "manifests" / "envoy-gateway" / version / "install.yaml"
        )
    assert schema.crds_at_hand() == install
    start = time.monotonic()
    checked = schema.check_scenario_manifests(load_scenario(_typo(tmp_path)))
    assert time.monotonic() - start < 5
    assert checked.method == schema.CRDS
    assert checked.headline == f"schema: Gateway API v1.6.1 experimental CRDs from {install}"
    assert [(p.field, p.message) for p in checked.problems] == [
        ("spec.hostname", "unknown field (did you mean 'hostnames'?)")
    ]


def test_a_missing_install_yaml_named_by_the_env_is_an_input_error(
    tmp_path: Path, nothing_at_hand: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSTALL_ENV, str(tmp_path / "nope.yaml"))
    result = CliRunner().invoke(main, ["check", str(QUICKSTART)])
    assert result.exit_code == 2
    assert f"{INSTALL_ENV}: {tmp_path / 'nope.yaml'}: no such file" in result.stderr


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers (the kernel's backlog)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/{{version}}/{{channel}}/"
    finally:
        sock.close()


def test_check_never_waits_long_on_a_download(
    silent_server: str, nothing_at_hand: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", silent_server)
    monkeypatch.setattr(schema, "CHECK_DOWNLOAD_TIMEOUT", 1.0)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["check", "--no-model", str(QUICKSTART)])
    assert time.monotonic() - start < 4
    assert result.exit_code == 0, result.output
    assert "the download failed: cannot download the Gateway API CRDs" in result.stderr
    assert "the reference model's field check" in result.stderr


@needs_crds
def test_the_shipped_field_table_is_the_crds() -> None:
    crds = schema.load_crds(CRDS)
    assert (crds.bundle_version, crds.channel) == ("v1.6.1", "experimental")
    assert fields.build_table(crds.schemas, crds.bundle_version, crds.channel) == fields.table()


def _check(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    problems: list[Problem] = []
    found = load_manifest_file(f, problems)
    assert problems == []
    return [
        f"{p.manifest.line_of(p.path)}: {'.'.join(map(str, p.path))}: {p.message}"
        for p in fields.check_manifests(found)
    ]


def test_field_check_flags_misplaced_and_unknown_fields(tmp_path: Path) -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata:\n  name: r\n  lables: {a: b}\n"
        "spec:\n  parentRefs: [{name: eg}]\n  rules:\n  - matches: [{path: {value: /}}]\n"
        "  backendRefs: [{name: b, port: 80}]\n  colour: blue\n"
    )
    assert _check(tmp_path, text) == [
        "5: metadata.lables: unknown field (did you mean 'labels'?)",
        "10: spec.backendRefs: unknown field here: 'backendRefs' belongs in spec.rules[] "
        "(check its indentation)",
        "11: spec.colour: unknown field (fields here: hostnames, parentRefs, rules, "
        "useDefaultGateways)",
    ]


def test_field_check_knows_every_gateway_api_kind_and_leaves_others_alone(tmp_path: Path) -> None:
    text = "".join(
        f"---\napiVersion: gateway.networking.k8s.io/{v}\nkind: {k}\nmetadata: {{name: x}}\n"
        f"spec: {{}}\n"
        for k, v in [
            ("Gateway", "v1"),
            ("GatewayClass", "v1"),
            ("GRPCRoute", "v1"),
            ("ReferenceGrant", "v1beta1"),
            ("TLSRoute", "v1alpha2"),
            ("BackendTLSPolicy", "v1"),
            ("ListenerSet", "v1"),
        ]
    )
    text += (
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {whatever: 1}\n"
        "---\napiVersion: gateway.networking.x-k8s.io/v1alpha1\nkind: XMesh\n"
        "metadata: {name: x}\nspec: {}\n"
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gatway\nmetadata: {name: x}\n"
    )
    line = text.splitlines().index("kind: Gatway") + 1
    assert _check(tmp_path, text) == [
        f"{line}: kind: unknown kind 'Gatway' in gateway.networking.k8s.io v1.6.1 (experimental "
        "channel) (did you mean 'Gateway'?)"
    ]


def test_explain_refuses_a_typo_instead_of_routing_around_it(tmp_path: Path) -> None:
    folder = _typo(tmp_path)
    result = CliRunner().invoke(
        main, ["explain", "-f", str(folder), "-H", "Host: other.example.com", "http://127.0.0.1/"]
    )
    assert result.exit_code == 2
    assert (
        "HTTPRoute/backend: spec.hostname: unknown field (did you mean 'hostnames'?)"
        in result.stderr
    )
