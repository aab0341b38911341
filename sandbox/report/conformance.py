"""The upstream ``ConformanceReport`` (gateway.networking.k8s.io/v1), written from our results.

Shape and semantics follow kubernetes-sigs/gateway-api v1.6.1:

- ``conformance/apis/v1/conformancereport.go``: top level ``apiVersion``, ``kind``,
  ``implementation{organization, project, url, version, contact[]}`` (all required),
  ``date`` (RFC 3339), ``gatewayAPIVersion``, ``mode`` (default ``default``),
  ``gatewayAPIChannel``, ``profiles``, ``succeededProvisionalTests`` (omitempty);
- ``profilereport.go``: ``name``, ``summary``, ``core{result, statistics, skippedTests,
  failedTests}``, ``extended`` (omitempty) adding ``supportedFeatures`` / ``unsupportedFeatures``;
  the lists are omitempty;
- ``statistics.go``: ``Passed``, ``Skipped``, ``Failed``: no JSON tags, so capitalised keys;
- ``conformance/utils/suite/reports.go``: a test is counted in every profile whose core+extended
  features hold all its features, as *extended* when any feature is outside the profile's core
  set; a test whose features are not supported is NOT counted (upstream ``NOT_SUPPORTED``); only
  explicitly skipped tests count as Skipped; ``result`` is ``failure`` if Failed > 0, else
  ``partial`` if Skipped > 0, else ``success``; the summary reads "Core tests succeeded.
  Extended tests partially succeeded with N test skips." (``buildSummary``); the extended section
  exists only once an extended test passed, failed or was skipped;
- ``conformance/utils/suite/suite.go``: per profile, supported extended features are the
  profile's extended set ∩ the supported features, unsupported the difference; version and
  channel come from the CRDs' ``bundle-version`` / ``channel`` annotations, ``UNDEFINED`` when
  they cannot be determined.

Our *test* is one scenario check, named ``<scenario folder>/<check name>`` in
``skippedTests``/``failedTests`` (upstream lists a test's ``ShortName``, e.g.
``HTTPRouteQueryParamMatching``; scenario checks have no such name); its features are the
scenario's features plus the check's own. Scenarios carry no provisional flag, so the runners
never fill ``succeededProvisionalTests`` (``TestResult.provisional`` exists for callers that do).
The file is written with sorted keys, as upstream's writer does (``render``). Implementation
fields the run cannot know are ``UNDEFINED`` (``implementation_for``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from sandbox import __version__, settings
from sandbox.errors import InputError, SandboxError
from sandbox.runner import RunReport, ScenarioReport
from sandbox.scenario import crds as schema
from sandbox.scenario import features as F
from sandbox.scenario.model import Scenario

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "ConformanceReport"
DEFAULT_MODE = "default"

Outcome = Literal["passed", "failed", "skipped", "not-supported"]


class CrdReader(Protocol):
    """What reading a cluster's CRDs needs: ``sandbox.infra.kube.Kubectl.get_json``."""

    def get_json(self, kind: str) -> Any: ...


OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "skipped", "not-supported")


@dataclass(frozen=True)
class TestResult:
    """One conformance test (a scenario check) and how it ended."""

    __test__ = False  # not a pytest class

    name: str  # "<scenario>/<check>"
    features: tuple[str, ...]  # every feature it needs
    outcome: Outcome
    provisional: bool = False


@dataclass(frozen=True)
class Implementation:
    organization: str
    project: str
    url: str
    version: str
    contact: tuple[str, ...]

    def validate(self) -> None:
        """Upstream Implementation.Validate: every field is required."""
        required = {
            "organization": self.organization,
            "project": self.project,
            "url": self.url,
            "version": self.version,
        }
        for name, value in required.items():
            if not value:
                raise InputError(f"implementation's {name} cannot be empty", field="implementation")
        if not self.contact:
            raise InputError("implementation's contact cannot be empty", field="implementation")

    def as_dict(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "project": self.project,
            "url": self.url,
            "version": self.version,
            "contact": list(self.contact),
        }


def envoy_gateway_implementation(version: str | None = None) -> Implementation:
    """Envoy Gateway as it names itself in its upstream reports
    (gateway-api conformance/reports/v1.4.1/envoy-gateway/*-report.yaml)."""

    return Implementation(
        organization="envoyproxy",
        project="envoy-gateway",
        url="https://github.com/envoyproxy/gateway",
        version=version or settings.Settings().envoy_gateway_version,
        contact=("https://github.com/envoyproxy/gateway/blob/main/GOVERNANCE.md",),
    )


UNDEFINED = "UNDEFINED"  # upstream's word for what a run cannot determine (suite.go)


def reference_implementation() -> Implementation:
    """The sandbox's own reference gateway (``--sandbox-provider local``).

    Only what the installed package says about itself is filled in: project and version from
    its metadata (``importlib.metadata``), the URL from a ``Project-URL``/``Home-page`` and the
    contact from ``Author-email``/``Author`` when the package declares them. Anything it does not
    declare is ``UNDEFINED`` (never an invented address): give it with
    ``--conformance-implementation`` or env SANDBOX_CONFORMANCE_IMPLEMENTATION.
    """
    from importlib import metadata

    project, version, url, contact = "gateway-sandbox", __version__, "", ""
    try:
        md = metadata.metadata("gateway-sandbox")
    except metadata.PackageNotFoundError:
        pass
    else:

        def meta(key: str) -> str:
            try:
                return str(md[key] or "")
            except KeyError:  # newer importlib.metadata raises for a missing key
                return ""

        project = meta("Name") or project
        version = meta("Version") or version
        urls = [u.partition(",")[2].strip() for u in md.get_all("Project-URL") or []]
        url = next((u for u in urls if u), "") or meta("Home-page")
        contact = meta("Author-email") or meta("Author")
    return Implementation(
        organization=UNDEFINED,
        project=project,
        url=url or UNDEFINED,
        version=version if version.startswith("v") else f"v{version}",
        contact=(contact or UNDEFINED,),
    )


def undefined_fields(implementation: Implementation) -> list[str]:
    """The implementation fields left ``UNDEFINED`` (to be given by the user)."""
    return [
        name
        for name, value in implementation.as_dict().items()
        if value == UNDEFINED or value == [UNDEFINED]
    ]


ENV_IMPLEMENTATION = "SANDBOX_CONFORMANCE_IMPLEMENTATION"


def implementation_for(target_name: str, override: str | None = None) -> Implementation:
    """The implementation a run reports, from what the run knows about the gateway:

    - ``local``: the sandbox reference gateway (``reference_implementation``);
    - ``k3d``, ``kind``: Envoy Gateway at the version the sandbox installs (``settings``);
    - ``existing``: Envoy Gateway (the cluster target refuses a GatewayClass of another
      controller), version ``UNDEFINED``: the sandbox did not install it;
    - anything else (``--address``): every field ``UNDEFINED``.

    ``override`` (or env SANDBOX_CONFORMANCE_IMPLEMENTATION) in the form
    ``organization=O,project=P,url=U,version=V,contact=C1;C2`` replaces any of the fields.
    """
    import os

    if target_name == "local":
        base = reference_implementation()
    elif target_name in ("k3d", "kind"):
        base = envoy_gateway_implementation()
    elif target_name == "existing":
        base = envoy_gateway_implementation(UNDEFINED)
    else:
        base = Implementation(UNDEFINED, UNDEFINED, UNDEFINED, UNDEFINED, (UNDEFINED,))
    text = override if override is not None else os.environ.get(ENV_IMPLEMENTATION)
    return parse_implementation(text, base) if text else base


def parse_implementation(text: str, base: Implementation) -> Implementation:
    """``organization=o,project=p,url=u,version=v,contact=a;b`` over ``base`` (any subset)."""
    values = base.as_dict()
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in values:
            raise InputError(
                f"expected KEY=VALUE with KEY one of {', '.join(values)}, got {part!r}",
                field="--conformance-implementation",
            )
        values[key] = [c for c in value.split(";") if c] if key == "contact" else value.strip()
    return Implementation(
        values["organization"],
        values["project"],
        values["url"],
        values["version"],
        tuple(values["contact"]),
    )


@dataclass
class _Status:
    passed: int = 0
    skipped: int = 0
    failed: int = 0
    skipped_tests: list[str] = field(default_factory=list)
    failed_tests: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        if self.failed > 0:
            return "failure"
        if self.skipped > 0:
            return "partial"
        return "success"

    def summary(self) -> str:
        # reports.go buildReportSummary
        if self.result == "success":
            return "succeeded"
        if self.result == "partial":
            return f"partially succeeded with {self.skipped} test skips"
        return f"failed with {self.failed} test failures"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "result": self.result,
            "statistics": {"Failed": self.failed, "Passed": self.passed, "Skipped": self.skipped},
        }
        if self.skipped_tests:
            out["skippedTests"] = list(self.skipped_tests)
        if self.failed_tests:
            out["failedTests"] = list(self.failed_tests)
        return out


def _tally(
    results: Iterable[TestResult], profiles: Sequence[str]
) -> tuple[dict[str, _Status], dict[str, _Status], set[str]]:
    """The core and extended statistics per profile (every profile a test belongs to has
    core statistics), and the provisional tests that passed."""
    core: dict[str, _Status] = {}
    extended: dict[str, _Status] = {}
    succeeded_provisional: set[str] = set()
    for r in sorted(results, key=lambda r: r.name):
        if r.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {r.outcome!r}")
        if r.outcome == "passed" and r.provisional:
            succeeded_provisional.add(r.name)
        for profile, is_ext in F.profiles_for(r.features, profiles):
            core.setdefault(profile.name, _Status())
            if r.outcome == "not-supported":
                continue  # reports.go addTestResults: NOT_SUPPORTED counts nowhere
            status = extended.setdefault(profile.name, _Status()) if is_ext else core[profile.name]
            if r.outcome == "passed":
                status.passed += 1
            elif r.outcome == "failed":
                status.failed += 1
                status.failed_tests.append(r.name)
            else:
                status.skipped += 1
                status.skipped_tests.append(r.name)
    return core, extended, succeeded_provisional


def _profile_reports(
    core: dict[str, _Status],
    extended: dict[str, _Status],
    profiles: Sequence[str],
    supported: frozenset[str],
) -> list[dict[str, Any]]:
    """One profile report per profile with results, in the order of ``profiles``."""
    profile_reports: list[dict[str, Any]] = []
    for pname in profiles:
        if pname not in core:
            continue
        profile = F.PROFILES[pname]
        summary = f"Core tests {core[pname].summary()}"
        entry: dict[str, Any] = {"name": pname, "core": core[pname].as_dict()}
        if pname in extended:
            ext = extended[pname]
            summary += f". Extended tests {ext.summary()}"
            ext_d = ext.as_dict()
            sup = sorted(profile.extended & supported)
            unsup = sorted(profile.extended - supported)
            if sup:
                ext_d["supportedFeatures"] = sup
            if unsup:
                ext_d["unsupportedFeatures"] = unsup
            entry["extended"] = ext_d
        entry["summary"] = summary + "."
        profile_reports.append(entry)
    return profile_reports


def build_report(
    results: Iterable[TestResult],
    *,
    implementation: Implementation,
    supported_features: Iterable[str],
    profiles: Sequence[str] = F.DEFAULT_PROFILES,
    gateway_api_version: str | None = None,
    gateway_api_channel: str | None = None,
    mode: str = DEFAULT_MODE,
    date: str | None = None,
) -> dict[str, Any]:
    """The ConformanceReport as a plain mapping, keys in the Go types' field order (``render``
    sorts them, as upstream's writer does).

    ``supported_features``: what the run treated as supported (``features.effective_supported``).
    Version and channel default to the CRDs' annotations (``UNDEFINED`` when unavailable).
    """
    implementation.validate()
    for p in profiles:
        if p not in F.PROFILES:
            raise InputError(f"{p} is not a valid conformance profile", field="profiles")
    supported = frozenset(supported_features)
    if gateway_api_version is None or gateway_api_channel is None:
        version, channel = crd_version_and_channel()
        gateway_api_version = gateway_api_version or version
        gateway_api_channel = gateway_api_channel or channel

    core, extended, succeeded_provisional = _tally(results, profiles)
    profile_reports = _profile_reports(core, extended, profiles, supported)

    report: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "implementation": implementation.as_dict(),
        "date": date or _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "gatewayAPIVersion": gateway_api_version,
        "gatewayAPIChannel": gateway_api_channel,
        "mode": mode,
        "profiles": profile_reports,
    }
    if succeeded_provisional:
        report["succeededProvisionalTests"] = sorted(succeeded_provisional)
    return report


def crd_version_and_channel() -> tuple[str, str]:
    """(bundle-version, channel) from the Gateway API CRDs this project validates against.

    ``UNDEFINED`` for both when the CRDs are not available offline (env SANDBOX_GATEWAY_API_CRDS
    or the cache: writing a report never downloads) or disagree (as upstream does with
    ``--allow-crds-mismatch``).
    """
    try:
        crds = schema.load_crds(download=False)
    except SandboxError:
        return schema.UNDEFINED, schema.UNDEFINED
    return crds.bundle_version, crds.channel


def cluster_version_and_channel(kubectl: CrdReader) -> tuple[str, str] | None:
    """(bundle-version, channel) from the Gateway API CRDs installed in a cluster, the way the
    upstream suite reads them (conformance/utils/suite/suite.go ``getAPIVersionAndChannel``):
    CRDs without either annotation are ignored; partial annotations or several versions or
    channels give ``UNDEFINED`` (upstream's ``--allow-crds-mismatch`` outcome). None when the
    cluster cannot be asked or has no annotated Gateway API CRD."""
    try:
        listing = kubectl.get_json("customresourcedefinitions")
    except SandboxError:
        return None
    versions: set[str] = set()
    channels: set[str] = set()
    for crd in (listing or {}).get("items") or []:
        if (crd.get("spec") or {}).get("group") not in schema.GATEWAY_API_GROUPS:
            continue
        annotations = (crd.get("metadata") or {}).get("annotations") or {}
        v = annotations.get(schema.BUNDLE_VERSION_ANNOTATION)
        c = annotations.get(schema.CHANNEL_ANNOTATION)
        if v is None and c is None:
            continue
        if v is None or c is None:
            return schema.UNDEFINED, schema.UNDEFINED
        versions.add(str(v))
        channels.add(str(c))
    if not versions:
        return None
    if len(versions) > 1 or len(channels) > 1:
        return schema.UNDEFINED, schema.UNDEFINED
    return versions.pop(), channels.pop()


def render(report: Mapping[str, Any]) -> str:
    """The report as upstream writes it: ``sigs.k8s.io/yaml`` marshals through JSON objects, so
    every mapping's keys come out sorted (e.g. gateway-api
    conformance/reports/v1.6/envoy-gateway/experimental-v1.9.0-default-report.yaml starts
    ``apiVersion, date, gatewayAPIChannel, gatewayAPIVersion, implementation, kind``)."""
    return yaml.safe_dump(dict(report), sort_keys=True, default_flow_style=False)


def write_conformance_report(
    results: Iterable[TestResult | RunReport | ScenarioReport],
    path: str | Path,
    *,
    implementation: Implementation,
    supported_features: Iterable[str] | None = None,
    exempt_features: Iterable[str] = (),
    profiles: Sequence[str] = F.DEFAULT_PROFILES,
    gateway_api_version: str | None = None,
    gateway_api_channel: str | None = None,
    mode: str = DEFAULT_MODE,
    date: str | None = None,
    kubectl: CrdReader | None = None,
    scenarios: Iterable[Scenario] | None = None,
) -> dict[str, Any]:
    """Write the ConformanceReport YAML to ``path`` and return it.

    ``results``: TestResult items, or runner reports (anything ``results_from_run`` accepts).
    ``supported_features`` None means every feature (minus ``exempt_features``).
    ``scenarios``: every scenario the run was given; their checks without a result (not
    selected, e.g. by ``-k``) count as Skipped, as upstream counts tests left out by
    ``--run-test`` (or as not supported when they need unsupported features).
    ``kubectl``: the cluster the run reached, if any: version and channel are read from the CRDs
    installed there, as upstream does; otherwise from the project's CRDs.
    """
    if (gateway_api_version is None or gateway_api_channel is None) and kubectl is not None:
        found = cluster_version_and_channel(kubectl)
        if found is not None:
            gateway_api_version = gateway_api_version or found[0]
            gateway_api_channel = gateway_api_channel or found[1]
    tests: list[TestResult] = []
    for r in results:
        if isinstance(r, TestResult):
            tests.append(r)
        else:
            tests.extend(results_from_run(r))
    supported = F.effective_supported(supported_features, exempt_features, profiles)
    if scenarios is not None:
        tests.extend(not_run(scenarios, tests, supported))
    report = build_report(
        tests,
        implementation=implementation,
        supported_features=supported,
        profiles=profiles,
        gateway_api_version=gateway_api_version,
        gateway_api_channel=gateway_api_channel,
        mode=mode,
        date=date,
    )
    p = Path(path)
    try:
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render(report), encoding="utf-8")
    except OSError as e:
        raise InputError(
            f"cannot write the conformance report: {e.strerror or e}", file=str(p)
        ) from None
    return report


def not_run(
    scenarios: Iterable[Scenario], results: Iterable[TestResult], supported: frozenset[str]
) -> list[TestResult]:
    """TestResults for the checks of ``scenarios`` that have no result: Skipped (upstream
    ``--run-test``/``--skip-tests``), or not supported when they need unsupported features."""
    seen = {r.name for r in results}
    out: list[TestResult] = []
    for sc in scenarios:
        for check in sc.checks:
            name = f"{sc.name}/{check.name}"
            if name in seen:
                continue
            feats = tuple(dict.fromkeys([*sc.features, *check.features]))
            outcome: Outcome = "skipped" if set(feats) <= supported else "not-supported"
            out.append(TestResult(name, feats, outcome))
    return out


def results_from_run(run: RunReport | ScenarioReport) -> list[TestResult]:
    """TestResults from a ``sandbox.runner`` report: a whole run, or one scenario's. A scenario
    whose cleanup failed fails all its checks (upstream: a test fails when its cleanup fails).
    """
    if isinstance(run, RunReport):
        return [t for sr in run.scenarios for t in results_from_run(sr)]
    scenario = run.scenario
    out: list[TestResult] = []
    for result in run.checks:
        check = result.check
        feats = tuple(dict.fromkeys([*scenario.features, *check.features]))
        outcome: Outcome = "failed" if run.cleanup_error is not None else result.status
        out.append(TestResult(f"{scenario.name}/{check.name}", feats, outcome))
    return out
