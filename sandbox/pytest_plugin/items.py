"""Scenario folders as pytest collectors and their checks as items; the fixtures' classes; failure reports in the domain's words."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr  # the type pytest's repr_failure returns

from sandbox.errors import SandboxError
from sandbox.probe.compare import compare_check
from sandbox.probe.types import CheckResult
from sandbox.pytest_plugin.state import (
    BUNDLE_PROPERTY,
    FEATURES_PROPERTY,
    UNSUPPORTED_PROPERTY,
    _state,
)
from sandbox.reference.model import Model
from sandbox.reference.verify import build_model
from sandbox.report.text import format_diagnostics, format_failure
from sandbox.runner import Runner
from sandbox.scenario import crds as schema
from sandbox.scenario.library import resolve_scenario
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Check, Scenario
from sandbox.settings import CLUSTER_PROVIDERS
from sandbox.targets import DeployedScenario, Target


class ScenarioError(Exception):
    """A scenario that cannot be loaded: reported as a collection error without traceback."""


class ScenarioFile(pytest.File):
    """One scenario folder: loads scenario.yaml, yields one item per check, deploys once."""

    scenario: Scenario | None = None
    items: list[CheckItem]
    _deploy_cm: contextlib.AbstractContextManager[Any] | None = None
    deployment: DeployedScenario | None = None
    model: Model | None = None  # the reference model of the scenario, built on first comparison

    def collect(self) -> Iterator[pytest.Item]:

        state = _state(self.config)
        try:
            scenario = load_scenario(self.path.parent)
            # the Gateway API CRD schemas when at hand (never downloaded here), else the
            # reference model's field check: a manifest a cluster would reject, or a typo the
            # model would ignore, is an error for every provider

            checked = schema.check_scenario_manifests(scenario, download=False)
        except SandboxError as e:
            raise ScenarioError(str(e)) from None
        if checked.problems:
            raise ScenarioError(
                f"{len(checked.problems)} manifest error(s) ({checked.headline}):\n"
                + "\n".join(f"  {p}" for p in checked.problems)
            )
        self.scenario = scenario
        self.items = []
        supported = state.supported
        for check in scenario.checks:
            needed = tuple(dict.fromkeys([*scenario.features, *check.features]))
            item = CheckItem.from_parent(self, name=check.name, check=check, features=needed)
            item.user_properties.append((FEATURES_PROPERTY, ",".join(needed)))
            missing = [f for f in needed if f not in supported]
            if missing:
                item.user_properties.append((UNSUPPORTED_PROPERTY, ",".join(missing)))
                item.add_marker(
                    pytest.mark.skip(
                        reason="gateway does not support "
                        + ", ".join(missing)
                        + " (see --supported-features / --exempt-features)"
                    )
                )
            if state.provider in (*CLUSTER_PROVIDERS, "existing"):
                item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group(name=scenario.name))
            for word in (scenario.name, *needed):
                item.extra_keyword_matches.add(word)
            self.items.append(item)
            yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def setup(self) -> None:
        """Deploy the scenario (only when one of its checks runs and is not skipped)."""
        state = _state(self.config)
        why = state.unavailable()
        if why:
            raise pytest.skip.Exception(why, _use_item_location=True)
        assert self.scenario is not None
        target = state.target()
        bundle = state.cluster_bundle(target)
        if bundle:
            for item in self.items:
                item.user_properties.append((BUNDLE_PROPERTY, bundle))
        cm = target.deploy(self.scenario)
        self.deployment = cm.__enter__()
        self._deploy_cm = cm

    def teardown(self) -> None:
        cm, self._deploy_cm, self.deployment = self._deploy_cm, None, None
        if cm is not None:
            cm.__exit__(None, None, None)


class CheckItem(pytest.Item):
    """One check of a scenario."""

    def __init__(self, *, check: Check, features: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.features = features
        self.result: CheckResult | None = None

    @property
    def scenario_file(self) -> ScenarioFile:
        assert isinstance(self.parent, ScenarioFile)
        return self.parent

    def runtest(self) -> None:
        parent = self.scenario_file
        assert parent.scenario is not None and parent.deployment is not None
        self.result = run_check(
            parent.scenario,
            self.check,
            parent.deployment,
            _state(self.config).target(),
            timeout=self.config.getoption("sandbox_timeout"),
        )
        if self.result.skipped:
            # reported at the check's line in scenario.yaml, not at this line
            raise pytest.skip.Exception(str(self.result.skipped), _use_item_location=True)
        if not self.result.passed:
            raise CheckFailure(self.result)
        state = _state(self.config)
        if state.compare_model:
            self._compare_with_model(parent)

    def _compare_with_model(self, parent: ScenarioFile) -> None:
        """On the real gateway: hold the last response against the reference model's whole
        prediction (:mod:`sandbox.probe.compare`); where the model claims to know and they differ,
        the check fails. The verdict goes to the JUnit report as property ``model``."""

        assert parent.scenario is not None and parent.deployment is not None
        assert self.result is not None
        if parent.model is None:
            parent.model = build_model(parent.scenario)
        comparison = compare_check(
            parent.scenario,
            parent.model,
            self.check,
            self.result.observed,
            parent.deployment.namespace_of,
        )
        if not comparison.known:
            self.user_properties.append(("model", f"not compared: {comparison.why_unknown}"))
            return
        if comparison.agree:
            self.user_properties.append(("model", "agrees"))
            return
        self.user_properties.append(("model", "differs"))
        raise ModelDisagrees(comparison)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        text = _domain_failure(self, excinfo)
        if text is None:
            return super().repr_failure(excinfo, style=style)
        return DomainFailure(text, str(self.path), self.check.line)

    def _repr_failure_py(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> Any:
        # setup (deployment) and teardown (cleanup) errors: the message, not a traceback
        text = _domain_failure(self, excinfo)
        if text is None:
            return super()._repr_failure_py(excinfo, style=style)
        return DomainFailure(text, str(self.path), self.check.line)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        parent = self.scenario_file
        line = self.check.line - 1 if self.check.line else None
        scenario = parent.scenario.name if parent.scenario else parent.path.parent.name
        return self.path, line, f"{scenario}: {self.check.name}"


@dataclass(frozen=True)
class _Crash:
    """Where and what, as pytest's ReprFileLocation: ``message`` is what the ``-r`` summary line
    and JUnit's ``<failure message=...>`` / ``<error message=...>`` show."""

    path: str
    lineno: int
    message: str


class DomainFailure(TerminalRepr):
    """A failure told as text (no traceback), with its first line as the crash message."""

    def __init__(self, text: str, path: str, line: int | None) -> None:
        self.text = text
        self.reprcrash = _Crash(path, line or 0, text.splitlines()[0] if text else "")

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)


class ModelDisagrees(Exception):
    """The check passed on the real gateway, but the reference model predicts another answer."""

    def __init__(self, comparison: Any) -> None:
        super().__init__(comparison.check.name)
        self.comparison = comparison

    def text(self, scenario: Scenario | None) -> str:
        c = self.comparison
        where = scenario.check_location(c.check) if scenario is not None else c.check.name
        lines = [
            f"the reference model and the real gateway disagree on check {c.check.name!r} "
            f"({where}); the check itself passed",
            f"  model: {c.model_route()}: {c.decision.summary or c.decision.reason}",
        ]
        width = max(len(d.field) for d in c.differences)
        lines.append(f"  {'field'.ljust(width)}  model / real")
        lines.extend(f"  {d.field.ljust(width)}  {d.model} / {d.real}" for d in c.differences)
        lines.append(
            "  one of the two is wrong: the model (sandbox/reference), or the scenario "
            "relies on an Envoy Gateway reading; see docs/envoy-gateway-notes.md "
            "(--no-sandbox-compare turns this off)"
        )
        return "\n".join(lines)


class CheckFailure(Exception):
    """A check did not converge; carries the runner's result."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.check)
        self.result = result


def _domain_failure(item: CheckItem, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:

    exc = excinfo.value
    if isinstance(exc, CheckFailure):
        return failure_text(item.scenario_file.scenario, exc.result, item.scenario_file.deployment)
    if isinstance(exc, ModelDisagrees):
        return exc.text(item.scenario_file.scenario)
    if isinstance(exc, SandboxError):
        text = f"{type(exc).__name__}: {exc}"
        if exc.hint:
            text += f"\nhint: {exc.hint}"
        return text
    return None


def run_check(
    scenario: Scenario,
    check: Check,
    deployment: DeployedScenario,
    target: Target | None = None,
    *,
    timeout: float | None = None,
) -> Any:
    """Run one check against a deployed scenario through the Runner; a ``probe.CheckResult``.
    ``timeout`` replaces the check's convergence timeout (``--sandbox-timeout``)."""

    return Runner(target if target is not None else _NoTarget(), timeout=timeout).run_check(
        scenario, check, deployment
    )


class _NoTarget:
    name = "deployed"
    deploys = True
    keep = False
    kubectl = None

    def deploy(self, scenario: Scenario) -> Any:  # pragma: no cover - never called
        raise NotImplementedError

    def finish(self) -> dict[str, Any]:  # pragma: no cover - never called
        return {}


def failure_text(
    scenario: Scenario | None, result: CheckResult, deployment: DeployedScenario | None
) -> str:
    """What a failed check says: the runner's failure report (as ``sandbox run`` prints it:
    location, request as curl, expected vs observed) and the deployment's diagnostics."""

    lines = [headline(result)]  # pytest's -r summary shows the first line
    lines.append(format_failure(scenario, result) if scenario is not None else str(result))
    if deployment is not None:
        try:
            diag = deployment.diagnostics()
        except Exception as e:  # diagnostics must never hide the failure
            diag = f"(diagnostics unavailable: {e})"
        if diag:
            lines.append("diagnostics:")
            lines.append(format_diagnostics(diag))
    return "\n".join(lines)


def headline(result: CheckResult) -> str:
    """One line: what did not match, or why the check could not run."""
    if result.error:
        return str(result.error)
    mismatches = list(result.mismatches)
    if mismatches:
        text = "; ".join(
            f"{m.field}: expected {m.expected}, observed {m.observed}" for m in mismatches[:2]
        )
        return text + (f" (+{len(mismatches) - 2} more)" if len(mismatches) > 2 else "")
    return f"did not converge: {result.matches} consecutive match(es)"


def conformance_test_name(nodeid: str) -> str:
    """``scenarios/quickstart/scenario.yaml::routed by host`` -> ``quickstart/routed by host``."""
    path, _, check = nodeid.partition("::")
    parts = path.split("/")
    scenario = parts[-2] if len(parts) >= 2 else path
    return f"{scenario}/{check}"


@dataclass
class Sandbox:
    """What the ``sandbox`` fixture gives: the provider and the Target to deploy to."""

    provider: str
    target: Target
    supported_features: frozenset[str]
    keep: bool
    timeout: float | None = None  # --sandbox-timeout: every check's convergence timeout


@dataclass
class GatewayFixture:
    """What the ``gateway`` fixture gives: deploy scenarios and run their checks."""

    sandbox: Sandbox

    @contextlib.contextmanager
    def deploy(self, scenario: str | Path | Scenario) -> Iterator[DeployedScenario]:

        sc = (
            scenario
            if isinstance(scenario, Scenario)
            else load_scenario(resolve_scenario(str(scenario)))
        )
        with self.sandbox.target.deploy(sc) as deployment:
            yield deployment

    def run(self, scenario: str | Path | Scenario) -> list[Any]:
        """Deploy a scenario, run every check, clean up; returns the probe CheckResults."""

        sc = (
            scenario
            if isinstance(scenario, Scenario)
            else load_scenario(resolve_scenario(str(scenario)))
        )
        with self.sandbox.target.deploy(sc) as deployment:
            return [
                run_check(sc, check, deployment, self.sandbox.target, timeout=self.sandbox.timeout)
                for check in sc.checks
            ]
