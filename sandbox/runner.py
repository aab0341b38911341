"""Run scenarios on a target: deploy, probe every check, collect diagnostics, clean up.

The CLI and the pytest plugin both drive this; nothing here prints except through the
``progress`` callback (stderr in the CLI). Reports are data (``RunReport``); ``sandbox.report.text``
renders them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sandbox.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError, SandboxError, TargetUnreachable
from sandbox.probe.prober import Prober
from sandbox.probe.types import CheckResult
from sandbox.scenario.model import Check, Scenario
from sandbox.targets import DeployedScenario, Target

Progress = Callable[[str], None]
OnResult = Callable[[Scenario, CheckResult], None]


@dataclass
class ScenarioReport:
    scenario: Scenario
    target: str
    checks: list[CheckResult] = field(default_factory=list)
    namespace: str = ""
    duration: float = 0.0
    error: SandboxError | None = None  # deploy failed, or the run was cut short
    cleanup_error: SandboxError | None = None  # cleanup failed: the run fails too
    diagnostics: str | None = None  # from the deployment, when a check failed

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.cleanup_error is None
            and all(r.status != "failed" for r in self.checks)
        )


@dataclass
class RunReport:
    scenarios: list[ScenarioReport]
    target: str
    started: float  # epoch seconds
    duration: float = 0.0
    interrupted: bool = False

    def results(self) -> list[CheckResult]:
        return [r for s in self.scenarios for r in s.checks]

    @property
    def executed(self) -> int:
        return sum(1 for r in self.results() if r.status != "skipped")

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results() if r.status == "passed")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results() if r.status == "failed")

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results() if r.status == "skipped")

    @property
    def errors(self) -> int:
        return sum(1 for s in self.scenarios if s.error or s.cleanup_error)

    @property
    def exit_code(self) -> int:
        """0 all passed; else the exit code of a deploy/cleanup error (3 for the environment);
        else 1 when a check failed."""
        for s in self.scenarios:
            for e in (s.error, s.cleanup_error):
                if e is not None:
                    return e.exit_code
        return EXIT_CHECK_FAILED if self.failed else EXIT_OK


def select(checks: Sequence[Check], scenario: Scenario, pattern: str | None) -> list[Check]:
    """Checks whose ``scenario/check name`` matches ``-k``: a glob (``*?[``) or a
    case-insensitive substring; ``not X`` inverts."""
    if not pattern:
        return list(checks)
    text = pattern.strip()
    negate = text.lower().startswith("not ")
    if negate:
        text = text[4:].strip()

    def hit(check: Check) -> bool:
        full = f"{scenario.name}/{check.name}".lower()
        needle = text.lower()
        if any(c in needle for c in "*?["):
            return fnmatch.fnmatchcase(full, needle) or fnmatch.fnmatchcase(
                check.name.lower(), needle
            )
        return needle in full

    return [c for c in checks if hit(c) != negate]


class Runner:
    """Runs scenarios on one target. ``keep`` is passed to the target as ``target.keep`` when
    it deploys anything (the address target has nothing to keep). ``timeout``
    (seconds) replaces every check's own convergence timeout (``sandbox run --timeout``)."""

    def __init__(
        self,
        target: Target,
        *,
        prober: Prober | None = None,
        progress: Progress | None = None,
        on_result: OnResult | None = None,
        timeout: float | None = None,
    ) -> None:
        self.target = target
        self.prober = prober or Prober()
        self.progress = progress or (lambda _msg: None)
        self.on_result = on_result or (lambda _scenario, _result: None)
        self.timeout = timeout

    def run(
        self,
        scenarios: Sequence[Scenario],
        *,
        keep: bool = False,
        fail_fast: bool = False,
        pattern: str | None = None,
    ) -> RunReport:
        if keep and self.target.deploys:
            self.target.keep = True
        selected = [(s, select(s.checks, s, pattern)) for s in scenarios]
        if pattern and not any(checks for _, checks in selected):
            raise InputError(
                f"-k {pattern!r} matches no check",
                field="-k",
                hint="patterns match 'scenario/check name', e.g. -k quickstart/",
            )
        report = RunReport([], self.target.name, time.time())
        start = time.monotonic()
        stop = False
        try:
            for scenario, checks in selected:
                if not checks:
                    continue
                if stop:
                    sr = ScenarioReport(scenario, self.target.name)
                    sr.checks = [
                        _skipped(c, "not run: --fail-fast after a failure") for c in checks
                    ]
                    report.scenarios.append(sr)
                    continue
                sr = ScenarioReport(scenario, self.target.name)
                report.scenarios.append(sr)
                self._run_scenario(sr, checks, fail_fast)
                if fail_fast and not sr.passed:
                    stop = True
        except KeyboardInterrupt:
            report.interrupted = True
            report.duration = time.monotonic() - start
            with contextlib.suppress(SandboxError):  # a second Ctrl-C stops this wait too
                self.target.finish()
            raise
        failures = self.target.finish()  # deferred cleanups: a failed one fails its scenario
        for sr in report.scenarios:
            if sr.namespace in failures and sr.cleanup_error is None:
                sr.cleanup_error = failures[sr.namespace]
                self.progress(f"{sr.scenario.name}: cleanup failed: {sr.cleanup_error}")
        report.duration = time.monotonic() - start
        return report

    def _run_scenario(self, sr: ScenarioReport, checks: list[Check], fail_fast: bool) -> None:
        scenario = sr.scenario
        start = time.monotonic()
        body_done = False
        interrupted: KeyboardInterrupt | None = None
        deploys = self.target.deploys  # the address target deploys nothing
        if deploys:
            self.progress(f"{scenario.name}: deploying on {self.target.name}")
        try:
            with self.target.deploy(scenario) as deployment:
                sr.namespace = deployment.namespace
                if deployment.namespace:
                    self.progress(f"{scenario.name}: ready in namespace {deployment.namespace}")
                try:
                    failed = self._run_checks(sr, checks, fail_fast, deployment)
                except KeyboardInterrupt as e:
                    interrupted = e
                    if deploys and not self._keep():
                        self.progress(
                            f"{scenario.name}: interrupted; cleaning up (Ctrl-C "
                            "again leaves it behind)"
                        )
                    raise
                if failed:
                    sr.diagnostics = _diagnostics(deployment)
                body_done = True
                if deploys and not self._keep():
                    self.progress(f"{scenario.name}: cleaning up")
        except KeyboardInterrupt as e:
            if interrupted is not None and deploys and not self._keep():
                if e is interrupted:  # the first Ctrl-C came through: the cleanup finished
                    self.progress(f"{scenario.name}: cleaned up")
                else:
                    where = f" (namespace {sr.namespace})" if sr.namespace else ""
                    self.progress(f"{scenario.name}: cleanup interrupted; left behind{where}")
            raise
        except SandboxError as e:
            self._deploy_failed(
                sr, checks, e, interrupted=interrupted is not None, body_done=body_done
            )
        sr.duration = time.monotonic() - start

    def _run_checks(
        self,
        sr: ScenarioReport,
        checks: list[Check],
        fail_fast: bool,
        deployment: DeployedScenario,
    ) -> bool:
        """Run the scenario's checks on its deployment, results into ``sr``; True when one
        failed (or nothing listened where the checks go)."""
        scenario = sr.scenario
        failed = False
        for check in checks:
            if failed and fail_fast:
                sr.checks.append(_skipped(check, "not run: --fail-fast after a failure"))
                continue
            try:
                result = self.run_check(scenario, check, deployment)
            except TargetUnreachable as e:
                # nothing listens where the checks go: the rest would only wait
                # for the same refusals; the run exits 3 (sr.error)
                sr.error = e
                self.progress(f"{scenario.name}: {e}")
                unreached = e.check_result
                if not isinstance(unreached, CheckResult):
                    unreached = _errored(check, str(e))
                sr.checks.append(unreached)
                self.on_result(scenario, unreached)
                done = {r.check.name for r in sr.checks}
                sr.checks.extend(_skipped(c, f"not run: {e}") for c in checks if c.name not in done)
                failed = True
                break
            sr.checks.append(result)
            self.on_result(scenario, result)
            failed = failed or result.status == "failed"
        return failed

    def _deploy_failed(
        self,
        sr: ScenarioReport,
        checks: list[Check],
        e: SandboxError,
        *,
        interrupted: bool,
        body_done: bool,
    ) -> None:
        """The deploy or the cleanup of a scenario failed: which one, into ``sr``."""
        scenario = sr.scenario
        if interrupted:  # the cleanup after Ctrl-C failed: say so, and stop all the same
            sr.cleanup_error = e
            self.progress(f"{scenario.name}: cleanup failed: {e}")
            raise KeyboardInterrupt from e
        if body_done:
            sr.cleanup_error = e
            self.progress(f"{scenario.name}: cleanup failed: {e}")
        else:
            sr.error = e
            self.progress(f"{scenario.name}: {e}")
            done = {r.check.name for r in sr.checks}
            sr.checks.extend(_errored(c, f"not run: {e}") for c in checks if c.name not in done)

    def _keep(self) -> bool:
        return self.target.keep

    def run_check(
        self, scenario: Scenario, check: Check, deployment: DeployedScenario
    ) -> CheckResult:
        """One check against a deployed scenario (the pytest plugin's per-item path).

        Raises :class:`~sandbox.errors.TargetUnreachable` when the deployment's optional
        ``unreachable(refusals)`` hook (see ``probe.Unreachable``) says nothing will listen
        where the requests were refused. A deployment whose
        ``settled`` is true (its answers never change) has each check decided by its first
        full round of requests."""
        if self.timeout is not None:
            check = dataclasses.replace(check, timeout=self.timeout)
        dep = deployment
        gateway = check.request.gateway or scenario.gateway
        port = check.request.port or (443 if check.request.scheme == "https" else 80)
        start = time.monotonic()
        try:
            address = dep.address(gateway, port)
        except SandboxError as e:
            return CheckResult(
                check,
                False,
                0,
                time.monotonic() - start,
                None,
                [],
                error=f"no address for Gateway {gateway!r} port {port}: {e}",
            )
        try:
            return self.prober.run(
                check,
                address,
                namespace_of=dep.namespace_of,
                unreachable=dep.unreachable,
                settled=dep.settled,
            )
        except TargetUnreachable:
            raise  # not this check's failure: nothing listens there (the caller decides)
        except SandboxError as e:
            return CheckResult(check, False, 0, time.monotonic() - start, None, [], error=str(e))


def _skipped(check: Check, why: str) -> CheckResult:
    return CheckResult(check, False, 0, 0.0, None, [], skipped=why)


def _errored(check: Check, why: str) -> CheckResult:
    return CheckResult(check, False, 0, 0.0, None, [], error=why)


def _diagnostics(deployment: DeployedScenario) -> str:
    """The deployment's diagnostics for a failed check, or why there are none."""
    try:
        return deployment.diagnostics()
    except SandboxError as e:
        return f"(diagnostics unavailable: {e})"
    except Exception as e:  # diagnostics must never hide the failure itself
        return f"(diagnostics unavailable: {type(e).__name__}: {e})"


__all__ = ["RunReport", "Runner", "ScenarioReport", "select"]
