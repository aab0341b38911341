"""pytest plugin (entry point ``pytest11``): scenario folders as test items.

Every ``scenario.yaml`` that pytest collects becomes one collector (the scenario: deployed once,
when its first selected check runs, and cleaned up after its last) holding one item per check.
So ``-k`` selects by scenario or check name (and by upstream feature name), ``--junitxml``
records one test case per check, and pytest-xdist distributes scenarios (each deployment has its
own namespace; ``--dist loadfile`` or ``loadgroup`` keeps a scenario's checks on one worker).

The plugin is loaded by every pytest run (including this project's own tests): it collects
every ``scenario.yaml`` under ``--sandbox-scenarios DIR`` and under the paths pytest collects
(``pytest .`` in a folder of one's own scenarios runs them), except that inside the
gateway-sandbox project itself naming its root or ``tests`` never collects its scenario library
or the broken scenarios kept as test data (see ``_is_wanted``); it imports nothing heavy until
a scenario is collected.

A check whose features (the scenario's plus its own) are not supported is skipped with the
reason and counts nowhere in the ConformanceReport (upstream ``NOT_SUPPORTED``). Supported
features follow upstream's flags: all by default (against Envoy Gateway, all but what its own
conformance run skips, ``features.ENVOY_GATEWAY_EXEMPT``), ``--supported-features`` restricts,
``--exempt-features`` removes, and the profiles' core features are always supported.

ConformanceReport (``--conformance-report``): a test is one check, named
``<scenario folder>/<check name>`` (upstream names tests by ShortName); checks left out by
``-k``/``-m``/``--lf`` count as Skipped, as upstream counts tests left out by ``--run-test``
(under xdist too: the controller looks the scenarios up itself). JUnit's
failure message and pytest's ``-r`` line are the failure's first line (``DomainFailure``).
Ctrl-C tears the deployed scenario down (pytest runs the collectors' teardown on interrupt).

Options: ``--sandbox-provider`` (k3d | local | existing), ``--sandbox-keep``,
``--sandbox-scenarios DIR``, ``--sandbox-context``, ``--sandbox-gateway-class``,
``--sandbox-timeout SECONDS`` (every check's convergence timeout, as ``sandbox run --timeout``),
``--supported-features``, ``--exempt-features``, ``--conformance-report FILE``,
``--conformance-implementation``.
Fixtures: ``sandbox`` (the stack, brought up or reused, session scope) and ``gateway`` (deploys
scenarios and runs checks against the sandbox's GatewayClass).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import TerminalRepr  # the type pytest's repr_failure returns

if TYPE_CHECKING:
    from sandbox.report.conformance import TestResult
    from sandbox.scenario.model import Check, Scenario
    from sandbox.targets import Deployment, Target

SCENARIO_FILE = "scenario.yaml"
PROVIDERS = ("k3d", "kind", "local", "existing")
CLUSTER_PROVIDERS = ("k3d", "kind", "existing")
DEFAULT_GATEWAY_CLASS = "eg"  # settings.DEFAULT_GATEWAY_CLASS: Envoy Gateway's, in the sandbox
FEATURES_PROPERTY = "gateway_api_features"  # item.user_properties: features the check needs
UNSUPPORTED_PROPERTY = "gateway_api_unsupported"  # features it needs that are not supported
BUNDLE_PROPERTY = "gateway_api_bundle"  # "<bundle-version>/<channel>" of the cluster's CRDs

_STATE = pytest.StashKey["SandboxState"]()


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    """A timeout in seconds (> 0), for --sandbox-timeout / SANDBOX_CHECK_TIMEOUT."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds > 0 (--sandbox-timeout, or env "
            "SANDBOX_CHECK_TIMEOUT)"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gateway-sandbox", "Gateway API scenarios (gateway-sandbox)")
    group.addoption(
        "--sandbox-provider",
        choices=PROVIDERS,
        default=os.environ.get("SANDBOX_PROVIDER") or None,
        help="where scenarios run: k3d (default; a sandbox k3d cluster with Envoy Gateway, "
        "brought up or reused), kind (the same on a sandbox kind cluster), local (the "
        "reference gateway on loopback, no Docker), existing (the kubeconfig context of "
        "--sandbox-context) [env SANDBOX_PROVIDER]",
    )
    group.addoption(
        "--sandbox-cluster",
        "--cluster",
        dest="sandbox_cluster",
        choices=("k3d", "kind"),
        default=os.environ.get("SANDBOX_CLUSTER") or None,
        help="which tool makes the sandbox's cluster: k3d (default) or kind; alone it means "
        "--sandbox-provider of that name [env SANDBOX_CLUSTER]",
    )
    group.addoption(
        "--sandbox-compare",
        dest="sandbox_compare",
        action="store_true",
        default=False,
        help="after each check passes on a cluster, hold the real response against the "
        "reference model's prediction and fail the check where they differ (the default "
        "on the sandbox's own cluster, k3d or kind, with its GatewayClass)",
    )
    group.addoption(
        "--no-sandbox-compare",
        dest="no_sandbox_compare",
        action="store_true",
        default=False,
        help="do not compare with the reference model",
    )
    group.addoption(
        "--sandbox-keep",
        action="store_true",
        default=False,
        help="leave scenario namespaces in place for inspection (the stack always stays up)",
    )
    group.addoption(
        "--sandbox-scenarios",
        action="append",
        default=[],
        metavar="DIR",
        help="collect every scenario folder (scenario.yaml) under DIR (repeatable)",
    )
    group.addoption(
        "--sandbox-context",
        default=os.environ.get("SANDBOX_CONTEXT"),
        metavar="CONTEXT",
        help="kubeconfig context for --sandbox-provider existing [env SANDBOX_CONTEXT]",
    )
    group.addoption(
        "--sandbox-gateway-class",
        default=os.environ.get("SANDBOX_GATEWAY_CLASS"),
        metavar="NAME",
        help="GatewayClass given to every Gateway (cluster providers; default: the "
        "sandbox's, eg) [env SANDBOX_GATEWAY_CLASS]",
    )
    group.addoption(
        "--sandbox-timeout",
        type=_seconds,
        metavar="SECONDS",
        default=os.environ.get("SANDBOX_CHECK_TIMEOUT") or None,
        help="seconds every check may take to converge, instead of its own timeout "
        "(scenario.yaml; default 30) [env SANDBOX_CHECK_TIMEOUT]",
    )
    group.addoption(
        "--supported-features",
        default=None,
        metavar="F1,F2",
        help="upstream Gateway API features the gateway supports (default: all; for "
        "Envoy Gateway all but those its own conformance run skips); checks "
        "needing others are skipped",
    )
    group.addoption(
        "--exempt-features",
        default=None,
        metavar="F1,F2",
        help="features to treat as unsupported (as upstream's --exempt-features)",
    )
    group.addoption(
        "--conformance-report",
        default=None,
        metavar="FILE",
        help="write the upstream ConformanceReport YAML (gateway.networking.k8s.io/v1); "
        "its tests are named <scenario folder>/<check name>",
    )
    group.addoption(
        "--conformance-implementation",
        default=None,
        metavar="organization=O,project=P,url=U,version=V,contact=C1;C2",
        help="implementation fields of the ConformanceReport; defaults: k3d: Envoy "
        "Gateway at the version installed; existing: Envoy Gateway, version "
        "UNDEFINED; local: project and version of this package, organization, "
        "url and contact UNDEFINED (give them here) "
        "[env SANDBOX_CONFORMANCE_IMPLEMENTATION]",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: needs a real Docker engine and builds a real k3d or kind cluster "
        "(skipped when none answers)",
    )
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup group")
    scenario_dirs = [Path(d) for d in config.getoption("sandbox_scenarios") or []]
    for d in scenario_dirs:
        if not d.exists():
            raise pytest.UsageError(f"--sandbox-scenarios: {d} does not exist")
    # the paths pytest collects: named on the command line, else testpaths, else the
    # invocation folder (see _is_wanted for which scenario.yaml under them are collected)
    explicit = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    # --sandbox-scenarios DIR adds DIR to what pytest collects
    if scenario_dirs:
        config.args.extend(str(d) for d in scenario_dirs)
    state = SandboxState(
        config=config, scenario_roots=[d.resolve() for d in scenario_dirs], explicit=explicit
    )
    config.stash[_STATE] = state
    if config.getoption("supported_features") or config.getoption("exempt_features"):
        state.supported  # noqa: B018 - validates the feature names now: a usage error
    report = config.getoption("conformance_report")
    if report and not hasattr(config, "workerinput"):  # xdist workers: the controller writes it
        config.pluginmanager.register(ResultsPlugin(config, report), "gateway_sandbox_results")


PROJECT_NAME = re.compile(r"""^name\s*=\s*["']gateway-sandbox["']\s*$""", re.MULTILINE)


@functools.lru_cache(maxsize=64)
def sandbox_project(folder: Path) -> Path | None:
    """The gateway-sandbox project (its clone) holding ``folder``: the nearest folder upwards
    with a pyproject.toml, when that one names the project ``gateway-sandbox``."""
    for candidate in (folder, *folder.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            try:
                text = pyproject.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
            return candidate if PROJECT_NAME.search(text) else None
    return None


def _is_wanted(state: SandboxState, path: Path) -> bool:
    """A scenario.yaml is collected when it lies under a --sandbox-scenarios DIR, or under a
    path pytest collects (named on the command line, else testpaths, else the invocation
    folder), at any depth: ``pytest .`` in a folder of one's own scenarios runs them.

    Inside the gateway-sandbox project itself (its clone), today's narrower rule holds, so that
    ``pytest``, ``pytest .`` and ``pytest tests`` run the project's tests and never the
    scenario library or the broken scenarios kept as test data: there a path collects a
    scenario.yaml only when it is that file, its scenario folder or the folder holding that
    scenario folder (``pytest scenarios``), and never when it is the project root or above."""
    resolved = path.resolve()
    if any(root in resolved.parents for root in state.scenario_roots):
        return True
    project = sandbox_project(resolved.parent)
    for root in state.explicit:
        if root != resolved and root not in resolved.parents:
            continue
        if project is None:
            return True
        if root == project or root in project.parents:
            state.passed_over.append(resolved)
            continue
        if root in (resolved, resolved.parent, resolved.parent.parent):
            return True
        state.passed_over.append(resolved)
    return False


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """When nothing ran, say which scenario.yaml files were passed over, and why."""
    state = config.stash.get(_STATE, None)
    if state is None or exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED or not state.passed_over:
        return
    found = sorted(set(state.passed_over))
    terminalreporter.write_line(
        f"gateway-sandbox: {len(found)} scenario.yaml under the gateway-sandbox project not "
        f"collected (e.g. {found[0]}): naming the project root or its tests never collects its "
        "scenarios; name a scenario folder or the folder of scenarios (pytest scenarios), or use "
        "--sandbox-scenarios DIR",
        yellow=True,
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name != SCENARIO_FILE:
        return None
    state = parent.config.stash.get(_STATE, None)
    if state is None or not _is_wanted(state, file_path):
        return None
    state.scenario_files.append(file_path)
    return ScenarioFile.from_parent(parent, path=file_path)


# --------------------------------------------------------------------------------------------
# session state: the provider, the stack, feature support, results
# --------------------------------------------------------------------------------------------


@dataclass
class SandboxState:
    config: pytest.Config
    scenario_roots: list[Path]
    explicit: list[Path]
    # every scenario.yaml given a collector, including those --lf then leaves uncollected
    scenario_files: list[Path] = field(default_factory=list)
    # scenario.yaml files under a collected path that the project rule left out (_is_wanted)
    passed_over: list[Path] = field(default_factory=list)
    _supported: frozenset[str] | None = None
    _unavailable: str | None = None  # why the provider cannot run, once known
    _probed: bool = False
    _target: Any = None
    _target_error: Exception | None = None
    _bundle: str | None = None

    @property
    def provider(self) -> str:
        from sandbox.cli.scenarios import choose_provider
        from sandbox.errors import InputError

        try:
            return choose_provider(
                self.config.getoption("sandbox_provider"), self.config.getoption("sandbox_cluster")
            )
        except InputError as e:
            raise pytest.UsageError(str(e)) from None

    @property
    def keep(self) -> bool:
        return bool(self.config.getoption("sandbox_keep"))

    @property
    def compare_model(self) -> bool:
        """Whether passed checks are also held against the reference model (see CheckItem)."""
        if self.config.getoption("no_sandbox_compare"):
            return False
        if self.config.getoption("sandbox_compare"):
            return self.provider not in ("local", "address")
        default_class = self.config.getoption("sandbox_gateway_class") in (
            None,
            "",
            DEFAULT_GATEWAY_CLASS,
        )
        return self.provider in ("k3d", "kind") and default_class

    @property
    def supported(self) -> frozenset[str]:
        """Supported features after --supported-features / --exempt-features (upstream rules)."""
        if self._supported is None:
            from sandbox.errors import InputError
            from sandbox.scenario import features as F

            try:
                sup_text = self.config.getoption("supported_features")
                exempt_text = self.config.getoption("exempt_features")
                supported = (
                    F.parse_feature_list(sup_text, field="--supported-features")
                    if sup_text
                    else None
                )
                exempt = F.parse_feature_list(exempt_text, field="--exempt-features")
            except InputError as e:
                raise pytest.UsageError(str(e)) from None
            gateway_class = self.config.getoption("sandbox_gateway_class")
            if not sup_text and not exempt_text:
                # the reference gateway claims what it models; Envoy Gateway leaves out what its
                # own conformance run skips (sandbox.scenario.features.default_support)
                supported, exempt = F.default_support(
                    self.provider, gateway_class in (None, "", DEFAULT_GATEWAY_CLASS)
                )
            self._supported = F.effective_supported(supported, exempt)
        return self._supported

    def unavailable(self) -> str | None:
        """Why the provider cannot run here (None when it can). Asked once per process."""
        if self._probed:
            return self._unavailable
        self._probed = True
        from sandbox.errors import SandboxError

        try:
            if self.provider in ("k3d", "kind"):
                from sandbox.infra import docker_engine

                docker_engine.ping()
            elif self.provider == "existing" and not self.config.getoption("sandbox_context"):
                self._unavailable = (
                    "--sandbox-provider existing needs --sandbox-context (a kubeconfig context)"
                )
        except SandboxError as e:
            self._unavailable = f"{self.provider} provider unavailable: {e}"
        return self._unavailable

    def cluster_bundle(self, target: Any) -> str | None:
        """``<bundle-version>/<channel>`` of the Gateway API CRDs installed where the target
        deploys (asked once per process; None without a cluster)."""
        if self._bundle is None:
            self._bundle = ""
            kubectl = getattr(target, "kubectl", None)
            if kubectl is not None:
                from sandbox.report.conformance import cluster_version_and_channel

                found = cluster_version_and_channel(kubectl)
                if found is not None:
                    self._bundle = "/".join(found)
        return self._bundle or None

    def target(self) -> Target:
        """The Target scenarios deploy to; for k3d/kind brings the stack up (or reuses it).

        Built once per process; when that fails, every later scenario gets the same error at
        once instead of trying to bring the stack up again."""
        if self._target_error is not None:
            raise self._target_error
        if self._target is None:
            try:
                self._target = make_target(self)
            except Exception as e:
                self._target_error = e
                raise
        return self._target  # type: ignore[no-any-return]


def make_target(state: SandboxState) -> Target:
    """The provider's Target, built exactly as ``sandbox run --provider ...`` builds it."""
    from sandbox.cli.scenarios import make_target as cli_make_target
    from sandbox.errors import InputError
    from sandbox.scenario.load import load_scenario

    scenarios = []  # their images are loaded into the sandbox's cluster with the stack's
    for path in state.scenario_files:
        try:
            scenarios.append(load_scenario(path.parent))
        except InputError:
            continue  # reported by its own items
    target = cli_make_target(
        address=None,
        provider=state.provider,
        gateway_class=state.config.getoption("sandbox_gateway_class"),
        context=state.config.getoption("sandbox_context") if state.provider == "existing" else None,
        keep=state.keep,
        quiet=False,
        scenarios=scenarios,
    )
    return target  # type: ignore[no-any-return]


def _state(config: pytest.Config) -> SandboxState:
    return config.stash[_STATE]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """See the deferred cleanups of the session's cluster target through; one that fails
    fails the session (a failed cleanup never exits 0)."""
    state = session.config.stash.get(_STATE, None)
    if state is None or state._target is None:
        return
    failures = state._target.finish()
    if not failures:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    for run, error in failures.items():
        if tr is not None:
            tr.write_line(f"gateway-sandbox: cleanup of {run} failed: {error}", red=True)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------------------------
# collection
# --------------------------------------------------------------------------------------------


class ScenarioError(Exception):
    """A scenario that cannot be loaded: reported as a collection error without traceback."""


class ScenarioFile(pytest.File):
    """One scenario folder: loads scenario.yaml, yields one item per check, deploys once."""

    scenario: Scenario | None = None
    items: list[CheckItem]
    _deploy_cm: contextlib.AbstractContextManager[Any] | None = None
    deployment: Deployment | None = None
    model: Any = None  # the reference model of the scenario, built on first comparison

    def collect(self) -> Iterator[pytest.Item]:
        from sandbox.errors import SandboxError
        from sandbox.scenario.load import load_scenario

        state = _state(self.config)
        try:
            scenario = load_scenario(self.path.parent)
            # the Gateway API CRD schemas when at hand (never downloaded here), else the
            # reference model's field check: a manifest a cluster would reject, or a typo the
            # model would ignore, is an error for every provider
            from sandbox.scenario import crds as schema

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
            if state.provider in CLUSTER_PROVIDERS:
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
        self.result: Any = None

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
        if getattr(self.result, "skipped", None):
            # reported at the check's line in scenario.yaml, not at this line
            raise pytest.skip.Exception(str(self.result.skipped), _use_item_location=True)
        if not getattr(self.result, "passed", False):
            raise CheckFailure(self.result)
        state = _state(self.config)
        if state.compare_model:
            self._compare_with_model(parent)

    def _compare_with_model(self, parent: ScenarioFile) -> None:
        """On the real gateway: hold the last response against the reference model's whole
        prediction (:mod:`sandbox.probe.compare`); where the model claims to know and they differ,
        the check fails. The verdict goes to the JUnit report as property ``model``."""
        from sandbox.probe.compare import compare_check
        from sandbox.reference.verify import build_model

        assert parent.scenario is not None and parent.deployment is not None
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

    def __init__(self, result: Any) -> None:
        super().__init__(getattr(result, "check", None))
        self.result = result


def _domain_failure(item: CheckItem, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    from sandbox.errors import SandboxError

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


# --------------------------------------------------------------------------------------------
# running one check (the Runner's per-check path)
# --------------------------------------------------------------------------------------------


def run_check(
    scenario: Scenario,
    check: Check,
    deployment: Deployment,
    target: Target | None = None,
    *,
    timeout: float | None = None,
) -> Any:
    """Run one check against a deployed scenario through the Runner; a ``probe.CheckResult``.
    ``timeout`` replaces the check's convergence timeout (``--sandbox-timeout``)."""
    from sandbox.runner import Runner

    return Runner(target if target is not None else _NoTarget(), timeout=timeout).run_check(
        scenario, check, deployment
    )


class _NoTarget:
    name = "deployed"

    def deploy(self, scenario: Scenario) -> Any:  # pragma: no cover - never called
        raise NotImplementedError

    def finish(self) -> dict[str, Any]:  # pragma: no cover - never called
        return {}


def failure_text(scenario: Scenario | None, result: Any, deployment: Deployment | None) -> str:
    """What a failed check says: the runner's failure report (as ``sandbox run`` prints it:
    location, request as curl, expected vs observed) and the deployment's diagnostics."""
    from sandbox.report.text import format_diagnostics, format_failure

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


def headline(result: Any) -> str:
    """One line: what did not match, or why the check could not run."""
    if getattr(result, "error", None):
        return str(result.error)
    mismatches = list(getattr(result, "mismatches", None) or [])
    if mismatches:
        text = "; ".join(
            f"{m.field}: expected {m.expected}, observed {m.observed}" for m in mismatches[:2]
        )
        return text + (f" (+{len(mismatches) - 2} more)" if len(mismatches) > 2 else "")
    return f"did not converge: {getattr(result, 'matches', 0)} consecutive match(es)"


# --------------------------------------------------------------------------------------------
# results for the ConformanceReport (on the xdist controller, reports arrive from the workers)
# --------------------------------------------------------------------------------------------


class ResultsPlugin:
    """Collects an outcome per check (the worst phase wins: a failed cleanup fails the check)
    and writes the ConformanceReport at the end. Registered only when a report is asked for;
    under xdist it runs on the controller, where the workers' reports arrive."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = path
        self.by_nodeid: dict[str, tuple[str, tuple[str, ...], str]] = {}
        self.bundle: str | None = None  # from the workers: the cluster's CRDs

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if FEATURES_PROPERTY not in props:
            return
        if BUNDLE_PROPERTY in props:
            self.bundle = str(props[BUNDLE_PROPERTY])
        features = tuple(f for f in str(props[FEATURES_PROPERTY]).split(",") if f)
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "not-supported" if UNSUPPORTED_PROPERTY in props else "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        previous = self.by_nodeid.get(report.nodeid)
        if previous is not None and previous[2] == "failed":
            return
        self.by_nodeid[report.nodeid] = (conformance_test_name(report.nodeid), features, outcome)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Checks left out by -k/-m count as Skipped, as upstream counts tests left out by
        --run-test (so a partial run never reports "success"). Under xdist, deselection happens
        in the workers and is not seen here."""
        for item in items:
            props = dict(item.user_properties)
            if FEATURES_PROPERTY not in props or item.nodeid in self.by_nodeid:
                continue
            features = tuple(f for f in str(props[FEATURES_PROPERTY]).split(",") if f)
            outcome = "not-supported" if UNSUPPORTED_PROPERTY in props else "skipped"
            self.by_nodeid[item.nodeid] = (conformance_test_name(item.nodeid), features, outcome)

    @staticmethod
    def scenarios(state: SandboxState | None) -> list[Scenario] | None:
        """The scenarios collected in this process, so that checks without a result count as
        Skipped (or not supported): those --lf/--ff filter out at collection (never seen as
        deselected). The xdist controller collects nothing: there, the scenario files the
        command line names are looked up the way collection would find them."""
        from sandbox.errors import SandboxError
        from sandbox.scenario.load import load_scenario

        if state is None:
            return None
        files = state.scenario_files or discover_scenario_files(state)
        if not files:
            return None
        out: list[Scenario] = []
        for path in dict.fromkeys(files):
            try:
                out.append(load_scenario(path.parent))
            except SandboxError:
                continue  # already a collection error; it has no checks to count
        return out

    def results(self) -> list[TestResult]:
        from sandbox.report.conformance import TestResult

        return [
            TestResult(name, feats, outcome)  # type: ignore[arg-type]
            for name, feats, outcome in self.by_nodeid.values()
        ]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from sandbox.errors import SandboxError
        from sandbox.report.write import write_reports

        config = self.config
        state = config.stash.get(_STATE, None)
        provider = (
            state.provider if state is not None else str(config.getoption("sandbox_provider"))
        )
        tr = config.pluginmanager.get_plugin("terminalreporter")
        try:
            supported = state.supported if state is not None else None
            version, _, channel = (self.bundle or "").partition("/")
            notes = write_reports(
                self.results(),
                provider=provider,
                conformance_report=self.path,
                implementation=config.getoption("conformance_implementation"),
                implementation_hint="--conformance-implementation",
                supported_features=supported,
                gateway_api_version=version or None,
                gateway_api_channel=channel or None,
                scenarios=self.scenarios(state),
            )
        except SandboxError as e:
            if tr is not None:
                tr.write_line(
                    f"gateway-sandbox: cannot write the conformance report: {e}", red=True
                )
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if tr is not None:
            for note in notes:
                tr.write_line(f"gateway-sandbox: {note}", yellow="UNDEFINED" in note)


def discover_scenario_files(state: SandboxState) -> list[Path]:
    """The scenario.yaml files this session's paths would collect (``_is_wanted``), found
    without collecting: for the xdist controller, where -k/-m/--lf act in the workers."""
    found: list[Path] = []
    for root in [*state.explicit, *state.scenario_roots]:
        if root.is_file():
            candidates = [root] if root.name == SCENARIO_FILE else []
        elif root.is_dir() and sandbox_project(root) != root:  # its root collects nothing
            candidates = [
                c
                for c in sorted(root.rglob(SCENARIO_FILE))
                if not _skipped_dir(c.relative_to(root))
            ]
        else:
            candidates = []
        found.extend(c for c in candidates if _is_wanted(state, c))
    return found


def _skipped_dir(relative: Path) -> bool:
    """Folders pytest does not collect by default (norecursedirs, virtualenvs)."""
    return any(
        part.startswith(".") or part in ("venv", "node_modules", "site-packages", "build", "dist")
        for part in relative.parts[:-1]
    )


def conformance_test_name(nodeid: str) -> str:
    """``scenarios/quickstart/scenario.yaml::routed by host`` -> ``quickstart/routed by host``."""
    path, _, check = nodeid.partition("::")
    parts = path.split("/")
    scenario = parts[-2] if len(parts) >= 2 else path
    return f"{scenario}/{check}"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """What the ``sandbox`` fixture gives: the provider and the Target to deploy to."""

    provider: str
    target: Target
    supported_features: frozenset[str]
    keep: bool
    timeout: float | None = None  # --sandbox-timeout: every check's convergence timeout


@dataclass
class Gateway:
    """What the ``gateway`` fixture gives: deploy scenarios and run their checks."""

    sandbox: Sandbox

    @contextlib.contextmanager
    def deploy(self, scenario: str | Path | Scenario) -> Iterator[Deployment]:
        from sandbox.scenario.library import resolve_scenario
        from sandbox.scenario.load import load_scenario
        from sandbox.scenario.model import Scenario

        sc = (
            scenario
            if isinstance(scenario, Scenario)
            else load_scenario(resolve_scenario(str(scenario)))
        )
        with self.sandbox.target.deploy(sc) as deployment:
            yield deployment

    def run(self, scenario: str | Path | Scenario) -> list[Any]:
        """Deploy a scenario, run every check, clean up; returns the probe CheckResults."""
        from sandbox.scenario.library import resolve_scenario
        from sandbox.scenario.load import load_scenario
        from sandbox.scenario.model import Scenario

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


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """The stack for this session: brought up or reused (k3d), or the local/existing target.

    Skips (with the reason) when the provider cannot run here, e.g. no Docker engine for k3d.
    """
    state = _state(request.config)
    why = state.unavailable()
    if why:
        pytest.skip(why)
    return Sandbox(
        state.provider,
        state.target(),
        state.supported,
        state.keep,
        request.config.getoption("sandbox_timeout"),
    )


@pytest.fixture(scope="session")
def gateway(sandbox: Sandbox) -> Gateway:
    return Gateway(sandbox)
