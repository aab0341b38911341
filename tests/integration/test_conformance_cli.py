"""`sandbox check` schema validation, `sandbox run --conformance-report`, and the CRD download
(from a loopback HTTP server standing in for raw.githubusercontent.com)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sandbox import settings
from sandbox.cli.main import main
from sandbox.scenario import crds as schema

ROOT = Path(__file__).resolve().parents[2]
CRDS = os.environ.get(schema.ENV_CRDS) or ""
needs_crds = pytest.mark.skipif(
    not CRDS or not Path(CRDS).is_dir(),
    reason=f"{schema.ENV_CRDS} is not set to a folder of Gateway API CRDs "
    "(CI sets it to shared/upstream/gateway-api/crd/experimental)",
)


@needs_crds
def test_check_reports_schema_errors_with_file_line_object_field(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(ROOT / "scenarios" / "quickstart", folder)
    manifest = folder / "quickstart.yaml"
    text = manifest.read_text().replace("type: PathPrefix", "type: Prefix")
    manifest.write_text(text)
    result = CliRunner().invoke(main, ["check", str(folder), "-o", "json"])
    assert result.exit_code == 2, result.output
    entry = json.loads(result.stdout)[0]
    assert entry["valid"] is False
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "type: Prefix" in t)
    assert entry["problems"] == [
        {
            "file": str(manifest),
            "line": line,
            "field": "spec.rules[0].matches[0].path.type",
            "message": "HTTPRoute/backend: unsupported value 'Prefix': must be one of 'Exact', "
            "'PathPrefix', 'RegularExpression'",
            "text": f"{manifest}:{line}: HTTPRoute/backend: spec.rules[0].matches[0].path.type: "
            "unsupported value 'Prefix': must be one of 'Exact', 'PathPrefix', "
            "'RegularExpression'",
        }
    ]


@needs_crds
def test_check_passes_valid_scenario_with_schema_note() -> None:
    result = CliRunner().invoke(
        main, ["check", str(ROOT / "scenarios" / "quickstart"), "--no-model", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)[0]
    assert entry["valid"] is True
    assert entry["schema_note"].startswith(
        f"schema: Gateway API v1.6.1 experimental CRDs from {CRDS}"
    )
    assert entry["schema"] == "crds"


def test_run_writes_conformance_report(tmp_path: Path) -> None:
    report = tmp_path / "report.yaml"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--provider",
            "local",
            str(ROOT / "scenarios" / "quickstart"),
            "--conformance-report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(report.read_text())
    assert data["kind"] == "ConformanceReport"
    assert data["implementation"]["project"] == "gateway-sandbox"
    assert data["implementation"]["url"] == "UNDEFINED"  # not declared by the package
    http = data["profiles"][0]
    assert http["name"] == "GATEWAY-HTTP"
    assert http["core"]["statistics"] == {"Failed": 0, "Passed": 3, "Skipped": 0}
    assert http["summary"] == "Core tests succeeded."


def test_run_counts_checks_left_out_by_k_as_skipped(tmp_path: Path) -> None:
    report = tmp_path / "report.yaml"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--provider",
            "local",
            str(ROOT / "scenarios" / "quickstart"),
            "-k",
            "another host",
            "--conformance-report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    core = yaml.safe_load(report.read_text())["profiles"][0]["core"]
    assert core["result"] == "partial"
    assert core["statistics"] == {"Failed": 0, "Passed": 1, "Skipped": 2}
    assert len(core["skippedTests"]) == 2


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def crd_server(tmp_path: Path) -> Iterator[str]:
    """config/crd/experimental/ served on 127.0.0.1: kustomization.yaml plus one CRD."""
    root = tmp_path / "www"
    folder = root / "v1.6.1" / "experimental"
    folder.mkdir(parents=True)
    (folder / "kustomization.yaml").write_text("resources:\n- x.yaml\n")
    (folder / "x.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: xs.gateway.networking.k8s.io\n  annotations:\n"
        "    gateway.networking.k8s.io/bundle-version: v1.6.1\n"
        "    gateway.networking.k8s.io/channel: experimental\n"
        "spec:\n  group: gateway.networking.k8s.io\n  names: {kind: X}\n  versions:\n"
        "  - name: v1\n    served: true\n    schema:\n      openAPIV3Schema:\n"
        "        type: object\n        properties:\n          spec:\n            type: object\n"
        "            properties: {size: {type: integer}}\n"
    )
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{version}}/{{channel}}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_download_caches_the_crds(
    crd_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(schema.ENV_CRDS, raising=False)
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", crd_server)
    folder = schema.crds_dir()
    assert folder == tmp_path / "cache" / "gateway-api-crds" / "v1.6.1" / "experimental"
    assert (folder / "x.yaml").is_file() and (folder / ".complete").is_file()
    crds = schema.load_crds(folder)
    assert (crds.bundle_version, crds.channel) == ("v1.6.1", "experimental")
    errors = schema.validate_objects(
        [
            (
                "x.yaml",
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "X",
                    "metadata": {"name": "a"},
                    "spec": {"size": "big"},
                },
            )
        ],
        crds,
    )
    assert errors == ["x.yaml: X/a: spec.size: must be integer, got string 'big'"]
    # the second time comes from the cache, without the server
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", "http://127.0.0.1:9/{version}/")
    assert schema.crds_dir(download=False) == folder


def test_download_failure_is_an_environment_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.errors import EnvironmentProblem

    monkeypatch.delenv(schema.ENV_CRDS, raising=False)
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "cache"))
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", "http://127.0.0.1:9/{version}/")
    with pytest.raises(EnvironmentProblem) as info:
        schema.crds_dir()
    assert "cannot download the Gateway API CRDs" in str(info.value)
    assert schema.ENV_CRDS in (info.value.hint or "")
    assert not (tmp_path / "cache" / "gateway-api-crds" / "v1.6.1" / "experimental").exists()


def test_check_without_crds_says_so_once_and_tries_the_download_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(schema.ENV_CRDS, raising=False)
    monkeypatch.delenv("SANDBOX_ENVOY_GATEWAY_INSTALL_YAML", raising=False)  # realstack's env
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", "http://127.0.0.1:9/{version}/")
    tries: list[str] = []
    real = schema._download

    def download(*a: Any, **kw: Any) -> None:
        tries.append("x")
        real(*a, **kw)

    monkeypatch.setattr(schema, "_download", download)
    names = ["quickstart", "host-matching", "traffic-weights"]
    result = CliRunner().invoke(main, ["check", *(str(ROOT / "scenarios" / n) for n in names)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("schema: CRDs not at hand") == 1
    assert "the download failed: cannot download the Gateway API CRDs" in result.stderr
    assert len(tries) == 1
    assert result.stdout.count("the reference model's field check; the reference model agrees") == 3


def test_run_report_says_which_implementation_fields_are_undefined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "r.yaml"
    args = [
        "run",
        str(ROOT / "scenarios" / "quickstart"),
        "--provider",
        "local",
        "--conformance-report",
        str(report),
    ]
    monkeypatch.delenv("SANDBOX_CONFORMANCE_IMPLEMENTATION", raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "implementation organization, url, contact UNDEFINED" in result.stderr
    assert yaml.safe_load(report.read_text())["implementation"]["url"] == "UNDEFINED"
    monkeypatch.setenv(
        "SANDBOX_CONFORMANCE_IMPLEMENTATION",
        "organization=me,url=https://example.org,contact=me@example.org",
    )
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "UNDEFINED in the report" not in result.stderr
    assert yaml.safe_load(report.read_text())["implementation"]["organization"] == "me"
