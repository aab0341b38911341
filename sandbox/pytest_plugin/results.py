"""The ConformanceReport of a pytest session (``--conformance-report``): each check's outcome as pytest reports it, written by ``sandbox.report.write`` at the end."""

from __future__ import annotations

import pytest

from sandbox.errors import SandboxError
from sandbox.pytest_plugin.items import conformance_test_name
from sandbox.pytest_plugin.state import (
    _STATE,
    BUNDLE_PROPERTY,
    FEATURES_PROPERTY,
    UNSUPPORTED_PROPERTY,
    SandboxState,
    discover_scenario_files,
)
from sandbox.report.conformance import Outcome, TestResult
from sandbox.report.write import write_reports
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Scenario


class ResultsPlugin:
    """Collects an outcome per check (the worst phase wins: a failed cleanup fails the check)
    and writes the ConformanceReport at the end. Registered only when a report is asked for;
    under xdist it runs on the controller, where the workers' reports arrive."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = path
        self.by_nodeid: dict[str, tuple[str, tuple[str, ...], Outcome]] = {}
        self.bundle: str | None = None  # from the workers: the cluster's CRDs

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if FEATURES_PROPERTY not in props:
            return
        if BUNDLE_PROPERTY in props:
            self.bundle = str(props[BUNDLE_PROPERTY])
        features = tuple(f for f in str(props[FEATURES_PROPERTY]).split(",") if f)
        outcome: Outcome
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
            outcome: Outcome = "not-supported" if UNSUPPORTED_PROPERTY in props else "skipped"
            self.by_nodeid[item.nodeid] = (conformance_test_name(item.nodeid), features, outcome)

    @staticmethod
    def scenarios(state: SandboxState | None) -> list[Scenario] | None:
        """The scenarios collected in this process, so that checks without a result count as
        Skipped (or not supported): those --lf/--ff filter out at collection (never seen as
        deselected). The xdist controller collects nothing: there, the scenario files the
        command line names are looked up the way collection would find them."""

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

        return [
            TestResult(name, feats, outcome) for name, feats, outcome in self.by_nodeid.values()
        ]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:

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
