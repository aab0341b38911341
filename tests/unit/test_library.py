"""The scenario library (scenarios/*): every folder loads, documents itself, declares upstream
feature names, brings well-formed, self-contained manifests, commits no key material, and agrees
with the reference model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.reference import matching as mt
from sandbox.reference.verify import build_model, verify_scenario
from sandbox.scenario import features
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Scenario

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
FOLDERS = sorted(p for p in LIBRARY.iterdir() if p.is_dir()) if LIBRARY.is_dir() else []
ECHO_IMAGE = "registry.k8s.io/gateway-api/echo-basic:v1.5.1"
GATEWAY_CLASS = "eg"
MIN_SCENARIOS = 30
# features every scenario of a kind must list (upstream: every test needs Gateway)
ROUTE_FEATURES = {"HTTPRoute": "HTTPRoute", "GRPCRoute": "GRPCRoute"}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


_cache: dict[Path, Scenario] = {}


def _load(folder: Path) -> Scenario:
    if folder not in _cache:
        _cache[folder] = load_scenario(folder)
    return _cache[folder]


def _objects(s: Scenario, kind: str) -> list[dict[str, Any]]:
    return [o for o in s.objects if o.get("kind") == kind]


def test_library_size() -> None:
    assert len(FOLDERS) >= MIN_SCENARIOS, [p.name for p in FOLDERS]


def test_every_folder_is_a_scenario() -> None:
    assert all((p / "scenario.yaml").is_file() for p in FOLDERS), [
        p.name for p in FOLDERS if not (p / "scenario.yaml").is_file()
    ]


def test_no_private_key_material_committed() -> None:
    offenders = []
    for path in LIBRARY.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            if "PRIVATE KEY" in text or re.search(r"^\s*tls\.key\s*:", text, re.MULTILINE):
                offenders.append(str(path.relative_to(LIBRARY)))
    assert not offenders


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_loads_with_description_features_and_checks(folder: Path) -> None:
    s = _load(folder)
    assert s.name == folder.name
    words = s.description.split()
    assert 8 <= len(words) <= 80, "description: one or two sentences"
    assert len(re.findall(r"[.!?](\s|$)", s.description.strip())) <= 2
    assert s.features, "features: the upstream feature names it exercises"
    unknown = [f for f in s.features if not features.is_known(f)]
    assert not unknown
    assert "Gateway" in s.features
    kinds = {o.get("kind") for o in s.objects}
    for kind, feature in ROUTE_FEATURES.items():
        if kind in kinds:
            assert feature in s.features, f"has {kind}s but does not list {feature}"
    if "ReferenceGrant" in kinds:
        assert "ReferenceGrant" in s.features
    for check in s.checks:
        assert all(features.is_known(f) for f in check.features), check.name
    assert s.checks


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_manifests_are_well_formed_and_self_contained(folder: Path) -> None:
    s = _load(folder)
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.suffix in (".yaml", ".yml") and p.name != "scenario.yaml"
    ]
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        assert docs, f"{f.name} is empty"
        for d in docs:
            assert isinstance(d, dict) and d.get("apiVersion") and d.get("kind"), f.name
            assert d.get("metadata", {}).get("name"), f"{f.name}: {d.get('kind')} without a name"

    # Gateways use the sandbox's class
    for gw in _objects(s, "Gateway"):
        assert gw["spec"]["gatewayClassName"] == GATEWAY_CLASS

    # every namespace used is declared (logical namespaces, docs/scenario-format.md)
    declared = {o["metadata"]["name"] for o in _objects(s, "Namespace")} | {"default"}
    used = {
        o["metadata"].get("namespace", "default") for o in s.objects if o.get("kind") != "Namespace"
    }
    assert used <= declared, f"undeclared namespaces: {sorted(used - declared)}"

    # no Secrets: HTTPS certificates are generated at run time from `tls:`
    assert not _objects(s, "Secret")
    for gw in _objects(s, "Gateway"):
        for listener in gw["spec"]["listeners"]:
            for ref in (listener.get("tls") or {}).get("certificateRefs", []):
                assert ref["name"] in {t.secret for t in s.tls}, ref["name"]

    # echo backends as upstream: pinned image, identity from the downward API, port 3000
    deployments = _objects(s, "Deployment")
    assert deployments
    for dep in deployments:
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["image"] == ECHO_IMAGE
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        assert [p["containerPort"] for p in container.get("ports", [])] == [3000]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for svc in _objects(s, "Service"):
        ns = svc["metadata"].get("namespace", "default")
        selector = svc["spec"]["selector"]
        assert any(
            d["metadata"].get("namespace", "default") == ns
            and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in deployments
        ), f"Service {svc['metadata']['name']} selects no Deployment"
        assert all(p.get("targetPort") == 3000 for p in svc["spec"]["ports"])


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_expected_backends_exist(folder: Path) -> None:
    s = _load(folder)
    deployments = {d["metadata"]["name"]: d for d in _objects(s, "Deployment")}
    names = sorted(deployments)
    for check in s.checks:
        wanted = [check.expect.backend] if check.expect.backend else []
        wanted += list((check.expect.backends or {}).keys())
        for backend in wanted:
            matches = [n for n in names if n.startswith(backend)]
            # a pod-name prefix must name exactly one Deployment, or the check proves nothing
            assert matches == [backend], f"{check.name}: backend {backend!r} vs {names}"
            env = {
                e["name"]: e.get("value")
                for e in deployments[backend]["spec"]["template"]["spec"]["containers"][0].get(
                    "env", []
                )
            }
            is_grpc = bool(env.get("GRPC_ECHO_SERVER"))
            assert is_grpc == (check.request.grpc is not None), (
                f"{check.name}: gRPC checks need GRPC_ECHO_SERVER backends and HTTP checks not"
            )
        if check.expect.namespace is not None:
            declared = {o["metadata"]["name"] for o in _objects(s, "Namespace")} | {"default"}
            assert check.expect.namespace in declared


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_reference_model_agrees(folder: Path) -> None:
    s = _load(folder)
    assert verify_scenario(s) == []


def test_weighted_checks_sample_enough() -> None:
    # upstream samples 500 requests with +-0.05; fewer samples make a check flaky
    for folder in FOLDERS:
        for check in _load(folder).checks:
            if check.expect.backends is not None:
                assert check.samples >= 500, f"{folder.name}/{check.name}"
                assert abs(sum(check.expect.backends.values()) - 1.0) < 1e-9


# Headers Envoy (through Envoy Gateway v1.9.0) owns on the way back: `server` is passed through
# from the backend (HCM server_header_transformation PASS_THROUGH, internal/xds/translator/
# listener.go) and absent on Envoy's own replies, `date`/`content-length`/`x-envoy-*` are set
# by Envoy. Expectations on them would test Envoy, not Gateway API.
ENVOY_RESPONSE_HEADERS = {
    "server",
    "date",
    "content-length",
    "transfer-encoding",
    "connection",
    "via",
    "x-request-id",
}
# Added or rewritten on the way to the backend (use_remote_address, request ids, Envoy headers)
ENVOY_REQUEST_HEADERS = {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-internal",
    "x-envoy-external-address",
    "connection",
    "via",
    "content-length",
}


def _envoy_owned(name: str, owned: set[str]) -> bool:
    return name.lower() in owned or name.lower().startswith("x-envoy-")


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_checks_hold_on_envoy_gateway_through_port_forward(folder: Path) -> None:
    """What a real Envoy Gateway reached through `kubectl port-forward` does differently from the
    spec's wording (docs/envoy-gateway-notes.md)."""
    s = _load(folder)
    for check in s.checks:
        req, exp = check.request, check.expect
        # Without a Host header the request carries the port-forward's 127.0.0.1:<local port>,
        # and a redirect keeping the host would point there: redirects name their host.
        if exp.redirect is not None:
            assert req.host, f"{check.name}: a redirect check sends an explicit host"
        # HTTPS listeners with a hostname match the filter chain on SNI: send one.
        if req.scheme == "https":
            assert req.host, f"{check.name}: an https check sends a host (SNI)"
        for name in [*exp.headers, *exp.absent_headers]:
            assert not _envoy_owned(name, ENVOY_RESPONSE_HEADERS), f"{check.name}: {name}"
        if exp.request is not None:
            for name in [*exp.request.headers, *exp.request.absent_headers]:
                assert not _envoy_owned(name, ENVOY_REQUEST_HEADERS), f"{check.name}: {name}"
        for name in req.headers:
            assert not _envoy_owned(name, ENVOY_REQUEST_HEADERS | {"host"}), f"{check.name}: {name}"
        # echo-basic's ?delay= must stay below the per-request timeout, or a 504 is the client's
        m = re.search(r"[?&]delay=(\d+)(ms|s)\b", req.path)
        if m:
            delay = int(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
            assert delay < check.request_timeout / 2, check.name


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_no_http_and_grpc_routes_share_a_hostname(folder: Path) -> None:
    """The spec makes the newer of an HTTPRoute and a GRPCRoute with overlapping hostnames on one
    listener unaccepted (the model does so); Envoy Gateway v1.9.0 serves both in one virtual host.
    The library avoids the case so that both agree."""
    model = build_model(_load(folder))
    assert not [n for n in model.notes if "overlap a route of the other kind" in n]


def _http_matches(s: Scenario) -> list[tuple[str, str, str, bool, int]]:
    """(route, path type, path value, has a method, header count) of every HTTPRoute match."""
    out = []
    for route in _objects(s, "HTTPRoute"):
        for rule in (route.get("spec") or {}).get("rules") or []:
            for m in rule.get("matches") or [{}]:
                path = m.get("path") or {}
                value = str(path.get("value", "/"))
                value = value.rstrip("/") or "/"  # EG trims a PathPrefix's trailing slash
                out.append(
                    (
                        route["metadata"]["name"],
                        str(path.get("type", "PathPrefix")),
                        value,
                        bool(m.get("method")),
                        len(m.get("headers") or []),
                    )
                )
    return out


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_no_method_against_header_count_precedence(folder: Path) -> None:
    """The spec ranks a method match above more header matches; Envoy Gateway v1.9.0 turns the
    method into a `:method` header match (internal/gatewayapi/route.go) and sorts by header
    count (internal/gatewayapi/sort.go), so a method match only ties with one more header. The
    library never puts the two in competition on the same path."""
    matches = _http_matches(_load(folder))
    for a in matches:
        for b in matches:
            if a[1:3] == b[1:3] and a[3] and not b[3]:
                assert b[4] < a[4] + 1, (
                    f"{a[0]} (method, {a[4]} headers) vs {b[0]} ({b[4]} headers)"
                )


@pytest.mark.parametrize("folder", FOLDERS, ids=_ids(FOLDERS))
def test_listener_isolation_agrees_with_envoy_gateway(folder: Path) -> None:
    """The model sends a request to the most specific listener (listener isolation). Envoy
    Gateway v1.9.0 shares one route table among the HTTP listeners of a port
    (internal/xds/translator/translator.go) and only drops route hostnames equal to another
    listener's (internal/gatewayapi/helpers.go computeHosts). The two differ when a route
    serves a hostname that a more specific listener of the same port also covers: the library
    has no such route."""
    model = build_model(_load(folder))
    for gw_key, gw in model._gateways.items():
        for ls in gw.listeners:
            if ls.protocol != "HTTP":
                continue
            others = [
                o
                for o in gw.listeners
                if o is not ls and o.protocol == "HTTP" and o.port == ls.port and o.hostname
            ]
            for att in model._attached.get((gw_key, ls.name), []):
                for h in att.hostnames:
                    probe = f"x.{h[2:]}" if h.startswith("*.") else h  # a host it serves
                    for o in others:
                        if (
                            o.hostname is None
                            or o.hostname == h
                            or not mt.host_matches(o.hostname, probe)
                        ):
                            continue
                        rank_other = mt.listener_host_rank(o.hostname, probe) or (0, 0)
                        rank_own = mt.listener_host_rank(ls.hostname, probe) or (0, 0)
                        more_specific = rank_other > rank_own
                        assert not more_specific, (
                            f"{att.route.meta.key} serves {h} on {ls.name}, listener {o.name} "
                            f"({o.hostname}) is more specific"
                        )
