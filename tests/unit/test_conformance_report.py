"""The upstream ConformanceReport shape (sandbox.report.conformance; gateway-api v1.6.1 apis/v1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.errors import ClusterError, InputError
from sandbox.probe.types import CheckResult
from sandbox.report import conformance as C
from sandbox.runner import RunReport, ScenarioReport
from sandbox.scenario import features as F
from sandbox.scenario.model import Check, Expect, Request, Scenario

IMPL = C.envoy_gateway_implementation("v1.9.0")
HTTP = ("Gateway", "HTTPRoute")
QUERY = ("Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching")
GRPC = ("Gateway", "GRPCRoute")


def _report(results: list[C.TestResult], supported: frozenset[str] | None = None) -> dict[str, Any]:
    sup = supported if supported is not None else F.effective_supported(None)
    return C.build_report(
        results,
        implementation=IMPL,
        supported_features=sup,
        gateway_api_version="v1.6.1",
        gateway_api_channel="experimental",
        date="2026-11-26T22:00:00+00:00",
    )


def test_top_level_shape_and_key_order() -> None:
    report = _report([C.TestResult("quickstart/routed", HTTP, "passed")])
    assert list(report) == [
        "apiVersion",
        "kind",
        "implementation",
        "date",
        "gatewayAPIVersion",
        "gatewayAPIChannel",
        "mode",
        "profiles",
    ]
    assert report["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert report["kind"] == "ConformanceReport"
    assert report["mode"] == "default"
    assert report["implementation"] == {
        "organization": "envoyproxy",
        "project": "envoy-gateway",
        "url": "https://github.com/envoyproxy/gateway",
        "version": "v1.9.0",
        "contact": ["https://github.com/envoyproxy/gateway/blob/main/GOVERNANCE.md"],
    }
    assert report["profiles"] == [
        {
            "name": "GATEWAY-HTTP",
            "core": {"result": "success", "statistics": {"Failed": 0, "Passed": 1, "Skipped": 0}},
            "summary": "Core tests succeeded.",
        }
    ]


def test_core_and_extended_counts_lists_and_summary() -> None:
    supported = F.effective_supported(None, exempt=["HTTPRouteRequestMirror"])
    report = _report(
        [
            C.TestResult("a/one", HTTP, "passed"),
            C.TestResult("a/two", HTTP, "failed"),
            C.TestResult("b/query", QUERY, "passed"),
            C.TestResult("b/skipped", QUERY, "skipped"),
            C.TestResult(
                "c/mirror", ("Gateway", "HTTPRoute", "HTTPRouteRequestMirror"), "not-supported"
            ),
            C.TestResult("d/grpc", GRPC, "passed"),
        ],
        supported,
    )
    profiles = {p["name"]: p for p in report["profiles"]}
    http = profiles["GATEWAY-HTTP"]
    assert http["core"] == {
        "result": "failure",
        "statistics": {"Failed": 1, "Passed": 1, "Skipped": 0},
        "failedTests": ["a/two"],
    }
    ext = http["extended"]
    assert ext["result"] == "partial"
    assert ext["statistics"] == {"Failed": 0, "Passed": 1, "Skipped": 1}
    assert ext["skippedTests"] == ["b/skipped"]
    assert "failedTests" not in ext  # omitempty
    assert ext["unsupportedFeatures"] == ["HTTPRouteRequestMirror"]
    assert "HTTPRouteQueryParamMatching" in ext["supportedFeatures"]
    assert ext["supportedFeatures"] == sorted(ext["supportedFeatures"])
    assert http["summary"] == (
        "Core tests failed with 1 test failures. Extended tests partially "
        "succeeded with 1 test skips."
    )
    grpc = profiles["GATEWAY-GRPC"]
    assert grpc["core"]["statistics"] == {"Failed": 0, "Passed": 1, "Skipped": 0}
    assert "extended" not in grpc
    assert list(profiles) == ["GATEWAY-HTTP", "GATEWAY-GRPC"]


def test_not_supported_counts_nowhere_but_opens_the_profile() -> None:
    report = _report([C.TestResult("x/y", QUERY, "not-supported")], F.effective_supported([]))
    assert report["profiles"] == [
        {
            "name": "GATEWAY-HTTP",
            "core": {"result": "success", "statistics": {"Failed": 0, "Passed": 0, "Skipped": 0}},
            "summary": "Core tests succeeded.",
        }
    ]


def test_tests_in_no_profile_are_left_out_and_provisional() -> None:
    report = _report(
        [
            C.TestResult(
                "n/named", ("GRPCRoute", "GRPCRouteNamedRouteRule"), "passed", provisional=True
            )
        ]
    )
    assert report["profiles"] == []
    assert report["succeededProvisionalTests"] == ["n/named"]


def test_implementation_is_required_and_parsed() -> None:
    with pytest.raises(InputError, match="implementation's contact cannot be empty"):
        C.Implementation("o", "p", "u", "v", ()).validate()
    impl = C.parse_implementation(
        "organization=acme,version=v2,contact=@a;@b", C.reference_implementation()
    )
    assert (impl.organization, impl.version, impl.contact) == ("acme", "v2", ("@a", "@b"))
    with pytest.raises(InputError, match="--conformance-implementation"):
        C.parse_implementation("colour=blue", impl)


def test_write_reads_back_as_yaml_with_capitalised_statistics(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.yaml"
    C.write_conformance_report(
        [C.TestResult("q/c", QUERY, "passed")],
        path,
        implementation=IMPL,
        gateway_api_version="v1.6.1",
        gateway_api_channel="experimental",
    )
    data = yaml.safe_load(path.read_text())
    assert data["kind"] == "ConformanceReport"
    assert data["profiles"][0]["extended"]["statistics"] == {"Failed": 0, "Passed": 1, "Skipped": 0}
    assert data["date"][:4].isdigit() and "T" in data["date"]


def test_version_and_channel_from_crds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: x.gateway.networking.k8s.io\n  annotations:\n"
        "    gateway.networking.k8s.io/bundle-version: v9.9.9\n"
        "    gateway.networking.k8s.io/channel: standard\n"
        "spec:\n  group: gateway.networking.k8s.io\n  names: {kind: X}\n"
        "  versions: [{name: v1, served: true, schema: {openAPIV3Schema: {type: object}}}]\n"
    )
    monkeypatch.setenv("SANDBOX_GATEWAY_API_CRDS", str(tmp_path))
    report = C.build_report([], implementation=IMPL, supported_features=set())
    assert (report["gatewayAPIVersion"], report["gatewayAPIChannel"]) == ("v9.9.9", "standard")
    monkeypatch.setenv("SANDBOX_GATEWAY_API_CRDS", str(tmp_path / "missing"))
    report = C.build_report([], implementation=IMPL, supported_features=set())
    assert report["gatewayAPIVersion"] == "UNDEFINED"


def test_results_from_a_runner_report() -> None:
    check = Check(
        name="by query",
        request=Request(),
        expect=Expect(),
        features=["HTTPRouteQueryParamMatching"],
    )
    scenario = Scenario(
        name="query",
        path=Path("query"),
        file=Path("query/scenario.yaml"),
        description="",
        gateway="eg",
        manifests=[],
        objects=[],
        checks=[check],
        features=["Gateway", "HTTPRoute"],
    )
    result = CheckResult(check, True, 1, 0.1, None, [])
    sr = ScenarioReport(scenario, "local", checks=[result])
    run = RunReport([sr], "local", 0.0)
    assert C.results_from_run(run) == [
        C.TestResult(
            "query/by query", ("Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"), "passed"
        )
    ]
    sr.cleanup_error = ClusterError("namespace stuck")
    assert C.results_from_run(sr)[0].outcome == "failed"


class _FakeKubectl:
    """Answers ``get_json("customresourcedefinitions")`` like ``kubectl get crd -o json``."""

    def __init__(self, annotations: list[dict[str, str]], error: Exception | None = None) -> None:
        self.items = [
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"x{i}.gateway.networking.k8s.io", "annotations": a},
                "spec": {"group": "gateway.networking.k8s.io"},
            }
            for i, a in enumerate(annotations)
        ]
        self.items.append({"metadata": {"name": "other"}, "spec": {"group": "example.com"}})
        self.error = error

    def get_json(self, kind: str) -> dict[str, object]:
        assert kind == "customresourcedefinitions"
        if self.error:
            raise self.error
        return {"apiVersion": "v1", "kind": "List", "items": self.items}


V, CH = "gateway.networking.k8s.io/bundle-version", "gateway.networking.k8s.io/channel"


def test_cluster_version_and_channel_like_upstream() -> None:
    from sandbox.errors import ToolError

    same = [{V: "v1.6.1", CH: "experimental"}, {V: "v1.6.1", CH: "experimental"}, {}]
    assert C.cluster_version_and_channel(_FakeKubectl(same)) == ("v1.6.1", "experimental")
    mixed = [{V: "v1.6.1", CH: "experimental"}, {V: "v1.5.0", CH: "experimental"}]
    assert C.cluster_version_and_channel(_FakeKubectl(mixed)) == ("UNDEFINED", "UNDEFINED")
    partial = [{V: "v1.6.1"}]
    assert C.cluster_version_and_channel(_FakeKubectl(partial)) == ("UNDEFINED", "UNDEFINED")
    assert C.cluster_version_and_channel(_FakeKubectl([{}])) is None
    assert C.cluster_version_and_channel(_FakeKubectl(same, ToolError("refused"))) is None


def test_write_reads_the_targets_cluster(tmp_path: Path) -> None:
    kubectl = _FakeKubectl([{V: "v1.5.1", CH: "standard"}])
    report = C.write_conformance_report(
        [], tmp_path / "r.yaml", implementation=IMPL, kubectl=kubectl
    )
    assert (report["gatewayAPIVersion"], report["gatewayAPIChannel"]) == ("v1.5.1", "standard")


def test_checks_without_a_result_are_skipped_or_not_supported(tmp_path: Path) -> None:
    scenario = Scenario(
        name="s",
        path=Path("s"),
        file=Path("s/scenario.yaml"),
        description="",
        gateway="eg",
        manifests=[],
        objects=[],
        features=["Gateway", "HTTPRoute"],
        checks=[
            Check(name="ran", request=Request(), expect=Expect()),
            Check(name="left out", request=Request(), expect=Expect()),
            Check(
                name="mirror",
                request=Request(),
                expect=Expect(),
                features=["HTTPRouteRequestMirror"],
            ),
        ],
    )
    report = C.write_conformance_report(
        [C.TestResult("s/ran", HTTP, "passed")],
        tmp_path / "r.yaml",
        implementation=IMPL,
        exempt_features=["HTTPRouteRequestMirror"],
        scenarios=[scenario],
        gateway_api_version="v1.6.1",
        gateway_api_channel="experimental",
    )
    http = report["profiles"][0]
    assert http["core"]["skippedTests"] == ["s/left out"]
    assert "extended" not in http  # the mirror check is not supported: counted nowhere


def test_written_keys_are_sorted_like_upstreams_writer(tmp_path: Path) -> None:
    # upstream marshals with sigs.k8s.io/yaml (through JSON objects): keys sorted at every level,
    # e.g. gateway-api conformance/reports/v1.6/envoy-gateway/experimental-v1.9.0-default-report.yaml
    path = tmp_path / "r.yaml"
    C.write_conformance_report(
        [C.TestResult("q/c", QUERY, "failed")],
        path,
        implementation=IMPL,
        exempt_features=["HTTPRouteRequestMirror"],
        gateway_api_version="v1.6.1",
        gateway_api_channel="experimental",
    )
    text = path.read_text()
    top = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
    assert top == [
        "apiVersion",
        "date",
        "gatewayAPIChannel",
        "gatewayAPIVersion",
        "implementation",
        "kind",
        "mode",
        "profiles",
    ]
    data = yaml.safe_load(text)
    assert list(data["profiles"][0]) == ["core", "extended", "name", "summary"]
    assert list(data["profiles"][0]["extended"]) == [
        "failedTests",
        "result",
        "statistics",
        "supportedFeatures",
        "unsupportedFeatures",
    ]
    assert list(data["implementation"]) == ["contact", "organization", "project", "url", "version"]


def test_implementation_fields_are_known_or_undefined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(C.ENV_IMPLEMENTATION, raising=False)
    from sandbox import __version__, settings

    local = C.implementation_for("local")
    # only what the installed package declares; this project declares no URL, author or org
    assert (local.project, local.version) == ("gateway-sandbox", f"v{__version__}")
    assert C.undefined_fields(local) == ["organization", "url", "contact"]
    k3d = C.implementation_for("k3d")
    assert k3d.version == settings.Settings().envoy_gateway_version
    assert C.undefined_fields(k3d) == []
    assert C.undefined_fields(C.implementation_for("existing")) == ["version"]
    assert C.undefined_fields(C.implementation_for("address")) == [
        "organization",
        "project",
        "url",
        "version",
        "contact",
    ]
    monkeypatch.setenv(C.ENV_IMPLEMENTATION, "organization=acme,url=https://x,contact=@a")
    assert C.undefined_fields(C.implementation_for("local")) == []


def test_writing_a_report_never_downloads_the_crds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sandbox.scenario import crds as schema

    monkeypatch.delenv("SANDBOX_GATEWAY_API_CRDS", raising=False)
    monkeypatch.delenv("SANDBOX_ENVOY_GATEWAY_INSTALL_YAML", raising=False)  # realstack's env
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "empty-cache"))
    schema._load_crds_cached.cache_clear()

    def no_download(*args: object) -> None:
        raise AssertionError("the report writer downloaded the CRDs")

    monkeypatch.setattr(schema, "_download", no_download)
    report = C.write_conformance_report([], tmp_path / "r.yaml", implementation=IMPL)
    assert (report["gatewayAPIVersion"], report["gatewayAPIChannel"]) == ("UNDEFINED", "UNDEFINED")
