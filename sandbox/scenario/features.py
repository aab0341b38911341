"""Upstream Gateway API feature names and conformance profiles (Gateway API v1.6.1).

Scenarios declare the upstream features they exercise (``features: [HTTPRoute, ...]``); this
module knows every name upstream defines, whether it is a *core* or *extended* feature of its
API, its release channel, and which conformance profile a set of features belongs to.

Sources (kubernetes-sigs/gateway-api, tag v1.6.1, commit 8bb74df00e56):

- ``pkg/features/{gateway,httproute,grpcroute,referencegrant,backendtlspolicy,tlsroute,tcproute,
  udproute,mesh}.go``: the ``FeatureName`` constants, their ``Channel``, and the
  ``*CoreFeatures`` / ``*ExtendedFeatures`` sets;
- ``conformance/utils/suite/profiles.go``: the profiles' ``CoreFeatures`` / ``ExtendedFeatures``,
  and ``getConformanceProfilesForTest`` (a test belongs to a profile when *every* feature it
  needs is in the profile's core or extended set);
- ``conformance/utils/suite/reports.go`` ``isTestExtended``: a test counts as extended in a
  profile when *any* of its features is outside the profile's core set.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sandbox.errors import InputError
from sandbox.scenario.model import Scenario

Level = Literal["core", "extended"]
Channel = Literal["standard", "experimental"]

STANDARD: Channel = "standard"
EXPERIMENTAL: Channel = "experimental"


@dataclass(frozen=True)
class Feature:
    name: str  # upstream FeatureName, e.g. "HTTPRouteQueryParamMatching"
    api: str  # the upstream features file it comes from: Gateway, HTTPRoute, GRPCRoute, ...
    level: Level  # which set upstream puts it in: *CoreFeatures or *ExtendedFeatures
    channel: Channel  # Feature.Channel upstream


def _group(api: str, level: Level, names: Iterable[str | tuple[str, Channel]]) -> list[Feature]:
    out = []
    for entry in names:
        name, channel = (entry, STANDARD) if isinstance(entry, str) else entry
        out.append(Feature(name, api, level, channel))
    return out


_ALL: list[Feature] = [
    # pkg/features/gateway.go: GatewayCoreFeatures, GatewayExtendedFeatures
    *_group("Gateway", "core", ["Gateway"]),
    *_group(
        "Gateway",
        "extended",
        [
            "GatewayPort8080",
            "GatewayStaticAddresses",
            "GatewayHTTPListenerIsolation",
            "GatewayHTTPSListenerDetectMisdirectedRequests",
            "GatewayInfrastructurePropagation",
            "GatewayAddressEmpty",
            "GatewayBackendClientCertificate",
            "GatewayFrontendClientCertificateValidation",
            "GatewayFrontendClientCertificateValidationInsecureFallback",
            "ListenerSet",
        ],
    ),
    # pkg/features/referencegrant.go: ReferenceGrantCoreFeatures
    *_group("ReferenceGrant", "core", ["ReferenceGrant"]),
    # pkg/features/httproute.go: HTTPRouteCoreFeatures, HTTPRouteExtendedFeatures
    *_group("HTTPRoute", "core", ["HTTPRoute"]),
    *_group(
        "HTTPRoute",
        "extended",
        [
            ("HTTPRouteDestinationPortMatching", EXPERIMENTAL),
            "HTTPRouteBackendRequestHeaderModification",
            "HTTPRouteQueryParamMatching",
            "HTTPRouteMethodMatching",
            "HTTPRouteResponseHeaderModification",
            "HTTPRoutePortRedirect",
            "HTTPRouteSchemeRedirect",
            "HTTPRoutePathRedirect",
            "HTTPRouteHostRewrite",
            "HTTPRoutePathRewrite",
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestMultipleMirrors",
            "HTTPRouteRequestPercentageMirror",
            "HTTPRouteRequestTimeout",
            "HTTPRouteBackendTimeout",
            "HTTPRouteParentRefPort",
            "HTTPRouteBackendProtocolH2C",
            "HTTPRouteBackendProtocolWebSocket",
            "HTTPRouteNamedRouteRule",
            "HTTPRouteCORS",
            "HTTPRoute303RedirectStatusCode",
            "HTTPRoute307RedirectStatusCode",
            "HTTPRoute308RedirectStatusCode",
            ("HTTPRouteRetry", EXPERIMENTAL),
            ("HTTPRouteRetryBackendTimeout", EXPERIMENTAL),
            ("HTTPRouteRetryConnectionError", EXPERIMENTAL),
        ],
    ),
    # pkg/features/grpcroute.go: GRPCRouteCoreFeatures, GRPCRouteExtendedFeatures
    *_group("GRPCRoute", "core", ["GRPCRoute"]),
    *_group("GRPCRoute", "extended", ["GRPCRouteNamedRouteRule"]),
    # pkg/features/backendtlspolicy.go
    *_group("BackendTLSPolicy", "core", ["BackendTLSPolicy"]),
    *_group("BackendTLSPolicy", "extended", ["BackendTLSPolicySANValidation"]),
    # pkg/features/tlsroute.go
    *_group("TLSRoute", "core", ["TLSRoute"]),
    *_group("TLSRoute", "extended", ["TLSRouteModeTerminate", ("TLSRouteModeMixed", EXPERIMENTAL)]),
    # pkg/features/tcproute.go: upstream puts TCPRoute itself in TCPRouteExtendedFeatures
    *_group("TCPRoute", "extended", ["TCPRoute"]),
    # pkg/features/udproute.go: one set, UDPRouteFeatures (used as the profile's extended set)
    *_group("UDPRoute", "extended", ["UDPRoute"]),
    # pkg/features/mesh.go
    *_group("Mesh", "core", ["Mesh"]),
    *_group(
        "Mesh",
        "extended",
        [
            "MeshClusterIPMatching",
            "MeshConsumerRoute",
            "MeshHTTPRouteRewritePath",
            "MeshHTTPRouteSchemeRedirect",
            "MeshHTTPRouteRedirectPort",
            "MeshHTTPRouteRedirectPath",
            "MeshHTTPRouteBackendRequestHeaderModification",
            "MeshHTTPRouteQueryParamMatching",
            "MeshHTTPRouteNamedRouteRule",
        ],
    ),
]

#: every upstream feature by name
FEATURES: dict[str, Feature] = {f.name: f for f in _ALL}


def _names(api: str, level: Level | None = None) -> frozenset[str]:
    return frozenset(f.name for f in _ALL if f.api == api and (level is None or f.level == level))


@dataclass(frozen=True)
class Profile:
    name: str
    core: frozenset[str]
    extended: frozenset[str]

    def covers(self, features: Iterable[str]) -> bool:
        """Upstream getConformanceProfilesForTest: every feature is core or extended here."""
        return all(f in self.core or f in self.extended for f in features)

    def is_extended(self, features: Iterable[str]) -> bool:
        """Upstream isTestExtended: any feature outside the profile's core set."""
        return any(f not in self.core for f in features)


GATEWAY_HTTP = "GATEWAY-HTTP"
GATEWAY_GRPC = "GATEWAY-GRPC"
GATEWAY_TLS = "GATEWAY-TLS"
GATEWAY_TCP = "GATEWAY-TCP"
GATEWAY_UDP = "GATEWAY-UDP"
MESH_HTTP = "MESH-HTTP"
MESH_GRPC = "MESH-GRPC"

_GW_EXT = _names("Gateway", "extended")

#: conformance/utils/suite/profiles.go, v1.6.1
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            GATEWAY_HTTP,
            frozenset({"Gateway", "ReferenceGrant", "HTTPRoute"}),
            _GW_EXT | _names("HTTPRoute", "extended") | _names("BackendTLSPolicy"),
        ),
        Profile(
            GATEWAY_TLS,
            frozenset({"Gateway", "ReferenceGrant", "TLSRoute"}),
            _GW_EXT | _names("TLSRoute", "extended"),
        ),
        Profile(
            GATEWAY_TCP,
            frozenset({"Gateway", "TCPRoute", "ReferenceGrant"}),
            _GW_EXT | _names("TCPRoute"),
        ),
        Profile(
            GATEWAY_UDP,
            frozenset({"Gateway", "UDPRoute", "ReferenceGrant"}),
            _GW_EXT | _names("UDPRoute"),
        ),
        # GATEWAY-GRPC's extended set is the Gateway extended features only: upstream does not
        # list GRPCRouteNamedRouteRule, so a test needing it belongs to no profile.
        Profile(GATEWAY_GRPC, frozenset({"Gateway", "ReferenceGrant", "GRPCRoute"}), _GW_EXT),
        Profile(MESH_HTTP, frozenset({"Mesh", "HTTPRoute"}), _names("Mesh", "extended")),
        Profile(MESH_GRPC, frozenset({"Mesh", "GRPCRoute"}), _names("Mesh", "extended")),
    ]
}

#: the profiles this project reports on by default
DEFAULT_PROFILES: tuple[str, ...] = (GATEWAY_HTTP, GATEWAY_GRPC)


def is_known(name: str) -> bool:
    return name in FEATURES


def suggest(name: str) -> str | None:
    """The closest upstream feature name, for a "did you mean"."""
    match = difflib.get_close_matches(name, list(FEATURES), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_feature_message(name: str) -> str:
    hint = suggest(name)
    return f"unknown Gateway API feature {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")


def check_names(names: Iterable[str], *, field: str, file: str | None = None) -> list[str]:
    """Return the names as given, raising InputError naming the first unknown one."""
    out = []
    for name in names:
        if name not in FEATURES:
            raise InputError(
                unknown_feature_message(name),
                file=file,
                field=field,
                hint="feature names are the upstream FeatureName values (gateway-api pkg/features)",
            )
        out.append(name)
    return out


def parse_feature_list(text: str | None, *, field: str) -> frozenset[str]:
    """Parse a comma-separated list like upstream ``--supported-features`` ("" -> empty).

    Validates every name; raises InputError with the flag name as field.
    """
    if not text:
        return frozenset()
    names = [part.strip() for part in text.split(",") if part.strip()]
    return frozenset(check_names(names, field=field))


def profiles_for(
    features: Iterable[str], names: Iterable[str] = DEFAULT_PROFILES
) -> list[tuple[Profile, bool]]:
    """The profiles (among ``names``) a test needing ``features`` counts in, with is-extended.

    Empty when the features are empty (such a test belongs to no profile).
    """
    feats = list(features)
    if not feats:
        return []
    out = []
    for pname in names:
        profile = PROFILES[pname]
        if profile.covers(feats):
            out.append((profile, profile.is_extended(feats)))
    return out


def effective_supported(
    supported: Iterable[str] | None,
    exempt: Iterable[str] = (),
    profiles: Iterable[str] = DEFAULT_PROFILES,
) -> frozenset[str]:
    """The features a run treats as supported, the way upstream's NewConformanceTestSuite does.

    ``supported`` None means "all features" (upstream ``--all-features``). Exempt features are
    removed, then every enabled profile's core features are added back (a profile implicitly
    enables its core features).
    """
    base = frozenset(FEATURES) if supported is None else frozenset(supported)
    result = base - frozenset(exempt)
    for pname in profiles:
        result |= PROFILES[pname].core
    return result


def missing(needed: Iterable[str], supported: frozenset[str]) -> list[str]:
    """Needed features that are not supported, in the order given (no duplicates)."""
    seen: list[str] = []
    for f in needed:
        if f not in supported and f not in seen:
            seen.append(f)
    return seen


def coverage(scenarios: Iterable[Scenario]) -> list[tuple[str, list[str], int]]:
    """Feature coverage of loaded scenarios: (feature, scenario names, checks needing it),
    sorted by feature name. A check needs its scenario's features plus its own."""
    by_feature: dict[str, tuple[list[str], int]] = {}
    for sc in scenarios:
        name = sc.name
        for check in sc.checks:
            for feat in dict.fromkeys([*sc.features, *check.features]):
                names, count = by_feature.get(feat, ([], 0))
                if name not in names:
                    names.append(name)
                by_feature[feat] = (names, count + 1)
    return [(f, names, count) for f, (names, count) in sorted(by_feature.items())]


def coverage_markdown(scenarios: Iterable[Scenario]) -> str:
    """The coverage as a Markdown table: feature | level | scenarios | checks."""
    lines = ["| feature | level | scenarios | checks |", "| --- | --- | --- | --- |"]
    for feat, names, count in coverage(scenarios):
        level = FEATURES[feat].level if feat in FEATURES else "unknown"
        lines.append(f"| {feat} | {level} | {', '.join(names)} | {count} |")
    return "\n".join(lines)


#: What Envoy Gateway's own conformance run leaves out (envoyproxy/gateway v1.9.0
#: test/conformance/suite.go: ``SkipFeatures`` outside gateway-namespace mode, and
#: ``ExemptFeatures: meshFeatures()``). Envoy Gateway v1.9.0 does not publish
#: GatewayClass ``status.supportedFeatures`` (internal/gatewayapi/status/gatewayclass.go keeps it
#: disabled), so the sandbox uses this list when it runs against Envoy Gateway without flags.
ENVOY_GATEWAY_EXEMPT: frozenset[str] = frozenset(
    {"GatewayHTTPSListenerDetectMisdirectedRequests", "GatewayInfrastructurePropagation"}
    | _names("Mesh")
)


#: What the reference gateway of ``--provider local`` implements (sandbox.reference and
#: sandbox.targets.local.target): the core features of GATEWAY-HTTP and GATEWAY-GRPC and the extended
#: features whose behaviour the model carries out. Everything else (BackendTLSPolicy, CORS,
#: retries, client certificates, ListenerSet, WebSocket/H2C backends, static addresses, ...) is
#: not modelled and is reported as unsupported rather than claimed.
LOCAL_SUPPORTED: frozenset[str] = frozenset(
    {
        "GatewayHTTPListenerIsolation",
        "GatewayPort8080",
        "HTTPRoute303RedirectStatusCode",
        "HTTPRoute307RedirectStatusCode",
        "HTTPRoute308RedirectStatusCode",
        "HTTPRouteBackendRequestHeaderModification",
        "HTTPRouteBackendTimeout",
        "HTTPRouteHostRewrite",
        "HTTPRouteMethodMatching",
        "HTTPRouteParentRefPort",
        "HTTPRoutePathRedirect",
        "HTTPRoutePathRewrite",
        "HTTPRoutePortRedirect",
        "HTTPRouteQueryParamMatching",
        "HTTPRouteRequestMirror",
        "HTTPRouteRequestMultipleMirrors",
        "HTTPRouteRequestPercentageMirror",
        "HTTPRouteRequestTimeout",
        "HTTPRouteResponseHeaderModification",
        "HTTPRouteSchemeRedirect",
    }
)


def default_support(
    target_name: str, gateway_class_is_default: bool = True
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(supported, exempt) for a run whose user named neither: the reference gateway claims only
    what it models; Envoy Gateway under the sandbox's own GatewayClass leaves out what its own
    conformance run skips; anything else is asked for every feature (upstream --all-features)."""
    if target_name == "local":
        return LOCAL_SUPPORTED, frozenset()
    if target_name in ("k3d", "kind", "existing") and gateway_class_is_default:
        return None, ENVOY_GATEWAY_EXEMPT
    return None, frozenset()
