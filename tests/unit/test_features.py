"""Upstream feature names and conformance profiles (sandbox.scenario.features, gateway-api v1.6.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import InputError
from sandbox.scenario import features as F
from sandbox.scenario.model import Check, Expect, Request, Scenario


def test_counts_match_upstream_sets() -> None:
    # pkg/features/*.go v1.6.1: GatewayExtendedFeatures has 10, HTTPRouteExtendedFeatures 26
    def by(api: str, level: str) -> set[str]:
        return {f.name for f in F.FEATURES.values() if f.api == api and f.level == level}

    assert by("Gateway", "core") == {"Gateway"}
    assert len(by("Gateway", "extended")) == 10
    assert len(by("HTTPRoute", "extended")) == 26
    assert by("GRPCRoute", "extended") == {"GRPCRouteNamedRouteRule"}
    assert len(F.FEATURES) == 1 + 10 + 1 + 1 + 26 + 1 + 1 + 2 + 3 + 1 + 1 + 10


def test_channels() -> None:
    assert F.FEATURES["HTTPRouteRetry"].channel == "experimental"
    assert F.FEATURES["HTTPRouteDestinationPortMatching"].channel == "experimental"
    assert F.FEATURES["TLSRouteModeMixed"].channel == "experimental"
    assert F.FEATURES["HTTPRouteQueryParamMatching"].channel == "standard"


def test_profiles_membership() -> None:
    http, grpc = F.PROFILES[F.GATEWAY_HTTP], F.PROFILES[F.GATEWAY_GRPC]
    assert http.core == {"Gateway", "ReferenceGrant", "HTTPRoute"}
    assert "BackendTLSPolicy" in http.extended and "GatewayPort8080" in http.extended
    assert grpc.core == {"Gateway", "ReferenceGrant", "GRPCRoute"}
    assert "GRPCRouteNamedRouteRule" not in grpc.extended  # upstream does not list it
    assert "GatewayPort8080" in grpc.extended


@pytest.mark.parametrize(
    ("needed", "expected"),
    [
        (["Gateway", "HTTPRoute"], [("GATEWAY-HTTP", False)]),
        (["Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"], [("GATEWAY-HTTP", True)]),
        (["Gateway", "ReferenceGrant"], [("GATEWAY-HTTP", False), ("GATEWAY-GRPC", False)]),
        (["Gateway", "GatewayPort8080"], [("GATEWAY-HTTP", True), ("GATEWAY-GRPC", True)]),
        (["Gateway", "GRPCRoute"], [("GATEWAY-GRPC", False)]),
        (["GRPCRoute", "GRPCRouteNamedRouteRule"], []),  # in no profile, like upstream
        (["HTTPRoute", "TLSRoute"], []),  # HTTPRouteDisallowedKind: no profile
        ([], []),
    ],
)
def test_profiles_for(needed: list[str], expected: list[tuple[str, bool]]) -> None:
    assert [(p.name, ext) for p, ext in F.profiles_for(needed)] == expected


def test_parse_feature_list_and_did_you_mean() -> None:
    assert F.parse_feature_list("HTTPRoute, GRPCRoute,", field="--x") == {"HTTPRoute", "GRPCRoute"}
    assert F.parse_feature_list("", field="--x") == frozenset()
    with pytest.raises(InputError) as info:
        F.parse_feature_list("HTTPRoute,HTTPRouteQueryParamMatch", field="--supported-features")
    assert str(info.value) == (
        "--supported-features: unknown Gateway API feature "
        "'HTTPRouteQueryParamMatch' (did you mean "
        "'HTTPRouteQueryParamMatching'?)"
    )


def test_effective_supported_like_upstream() -> None:
    # None = all features; exempt removed; profile core features always added back
    all_but = F.effective_supported(None, exempt=["HTTPRouteRequestMirror", "HTTPRoute"])
    assert "HTTPRouteRequestMirror" not in all_but
    assert "HTTPRoute" in all_but
    only = F.effective_supported(["HTTPRouteMethodMatching"])
    assert only == {
        "HTTPRouteMethodMatching",
        "Gateway",
        "ReferenceGrant",
        "HTTPRoute",
        "GRPCRoute",
    }
    assert F.missing(["HTTPRoute", "HTTPRouteCORS", "HTTPRouteCORS"], only) == ["HTTPRouteCORS"]


def _scenario(name: str, features: list[str], check_features: list[list[str]]) -> Scenario:
    """A scenario with one check per entry of ``check_features`` (the check's own features)."""
    checks = [
        Check(name=f"check {i}", request=Request(), expect=Expect(), features=f)
        for i, f in enumerate(check_features)
    ]
    return Scenario(
        name=name,
        path=Path(name),
        file=Path(name) / "scenario.yaml",
        description="",
        gateway="eg",
        manifests=[],
        objects=[],
        checks=checks,
        features=features,
    )


def test_coverage_counts_scenarios_and_checks() -> None:
    scenarios = [
        _scenario("a", ["Gateway", "HTTPRoute"], [[], ["HTTPRouteQueryParamMatching"]]),
        _scenario("b", ["Gateway", "GRPCRoute"], [["Gateway"]]),
    ]
    assert F.coverage(scenarios) == [
        ("GRPCRoute", ["b"], 1),
        ("Gateway", ["a", "b"], 3),
        ("HTTPRoute", ["a"], 2),
        ("HTTPRouteQueryParamMatching", ["a"], 1),
    ]
    table = F.coverage_markdown(scenarios).splitlines()
    assert table[0] == "| feature | level | scenarios | checks |"
    assert "| HTTPRouteQueryParamMatching | extended | a | 1 |" in table


def test_envoy_gateway_exemptions() -> None:
    assert "GatewayInfrastructurePropagation" in F.ENVOY_GATEWAY_EXEMPT
    assert "Mesh" in F.ENVOY_GATEWAY_EXEMPT and "HTTPRoute" not in F.ENVOY_GATEWAY_EXEMPT
    assert set(F.FEATURES) >= F.ENVOY_GATEWAY_EXEMPT


def test_default_support_by_target() -> None:
    from sandbox.scenario import features as F

    supported, exempt = F.default_support("local")
    assert supported == F.LOCAL_SUPPORTED and not exempt
    assert F.default_support("k3d") == (None, F.ENVOY_GATEWAY_EXEMPT)
    assert F.default_support("k3d", gateway_class_is_default=False) == (None, frozenset())
    assert F.default_support("address") == (None, frozenset())
    assert set(F.FEATURES) >= F.LOCAL_SUPPORTED


def test_every_library_feature_runs_on_the_local_provider() -> None:
    """CI runs the library on the local provider: no scenario may be skipped there unseen."""
    from pathlib import Path

    from sandbox.scenario import features as F
    from sandbox.scenario.load import load_scenario

    supported = F.effective_supported(*F.default_support("local"))
    root = Path(__file__).resolve().parents[2] / "scenarios"
    for folder in sorted(p.parent for p in root.glob("*/scenario.yaml")):
        scenario = load_scenario(folder)
        for check in scenario.checks:
            needed = [*scenario.features, *check.features]
            assert F.missing(needed, supported) == [], f"{scenario.name} / {check.name}"
