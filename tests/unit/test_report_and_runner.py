"""The Runner with a fake target (fail-fast, -k, deploy and cleanup errors, Ctrl-C) and the
three report renderers (text, JSON, JUnit)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox.errors import ClusterError, InputError, SandboxError, TargetUnreachable
from sandbox.probe.prober import Prober
from sandbox.probe.types import Address, Observed, ProbeRequest, Refusals, SeenRequest
from sandbox.report import json as report_json
from sandbox.report import junit as report_junit
from sandbox.report import text as report
from sandbox.runner import Runner, select
from sandbox.scenario.model import Check, Expect, Request, Scenario


def make_scenario(name: str, *checks: tuple[str, int]) -> Scenario:
    return Scenario(
        name=name,
        path=Path(f"scenarios/{name}"),
        file=Path(f"scenarios/{name}/scenario.yaml"),
        description="d",
        gateway="eg",
        manifests=[],
        objects=[],
        checks=[
            Check(
                name=n,
                request=Request(host=f"{n}.example.com"),
                expect=Expect(status=[s], backend="backend" if s == 200 else None),
                line=10 + i,
                timeout=0.05,
                consecutive=1,
            )
            for i, (n, s) in enumerate(checks)
        ],
    )


class FakeDeployment:
    namespace = "sbx-test-abcde"
    settled = False

    def __init__(self, target: FakeTarget) -> None:
        self.target = target

    def address(self, gateway: str, port: int) -> Address:
        if self.target.no_address:
            raise ClusterError("port-forward to the Gateway's Service died")
        return Address("127.0.0.1", 8080)

    def namespace_of(self, logical: str) -> str:
        return self.namespace if logical == "default" else f"{self.namespace}-{logical}"

    def diagnostics(self) -> str:
        return "Gateway eg: Programmed=True\nHTTPRoute backend: Accepted=True"

    def unreachable(self, refusals: Refusals) -> TargetUnreachable | None:
        return None


class FakeTarget:
    name = "fake"
    deploys = True
    kubectl = None  # no cluster

    def __init__(
        self, *, fail_deploy: bool = False, fail_cleanup: bool = False, no_address: bool = False
    ) -> None:
        self.keep = False
        self.fail_deploy = fail_deploy
        self.fail_cleanup = fail_cleanup
        self.no_address = no_address
        self.cleaned: list[str] = []
        self.deferred_failures: dict[str, SandboxError] = {}
        self.finished = 0
        self.deployment_class = FakeDeployment

    def finish(self) -> dict[str, SandboxError]:
        self.finished += 1
        return self.deferred_failures

    @contextmanager
    def deploy(self, scenario: Scenario) -> Iterator[FakeDeployment]:
        if self.fail_deploy:
            raise ClusterError("Gateway eg not Programmed", hint="see the controller log")
        try:
            yield self.deployment_class(self)
        finally:
            self.cleaned.append(scenario.name)
        if self.fail_cleanup:
            raise ClusterError("namespace sbx-test-abcde still Terminating after 60s")


def always_200(req: ProbeRequest) -> Observed:
    return Observed(
        status=200,
        pod="backend-5d9-abcde",
        namespace="sbx-test-abcde",
        request=SeenRequest(req.path, req.host or "", req.method, {}),
    )


def prober() -> Prober:
    return Prober(send=always_200, sleep=lambda s: None, backoff=0.0)


def test_run_reports_pass_and_fail_with_diagnostics() -> None:
    target = FakeTarget()
    s = make_scenario("demo", ("routed", 200), ("not-routed", 404))
    rr = Runner(target, prober=prober()).run([s])
    assert (rr.executed, rr.passed, rr.failed, rr.skipped) == (2, 1, 1, 0)
    assert rr.exit_code == 1
    assert target.cleaned == ["demo"]
    sr = rr.scenarios[0]
    assert sr.namespace == "sbx-test-abcde" and sr.diagnostics is not None

    text = report.render_text(rr)
    assert "PASS demo / routed" in text and "FAIL demo / not-routed" in text
    assert "FAILED demo / not-routed\n  at      scenarios/demo/scenario.yaml:11\n" in text
    assert "request curl -sS -i -H 'Host: not-routed.example.com' http://127.0.0.1:8080/" in text
    assert "status  404       200" in text
    assert "last response: 200; from pod backend-5d9-abcde in namespace sbx-test-abcde" in text
    assert "diagnostics for demo (namespace sbx-test-abcde):\n  Gateway eg: Programmed" in text
    assert text.rstrip().endswith(
        f"2 executed, 1 passed, 1 failed, 0 skipped in {rr.duration:.1f}s"
    )


def test_collapse_repeats() -> None:
    assert report.collapse_repeats(["a", "b", "b", "b", "c", "b"]) == ["a", "b  (x3)", "c", "b"]
    assert report.collapse_repeats([]) == []


class RepeatingDeployment(FakeDeployment):
    def diagnostics(self) -> str:
        return "last requests (newest last):\n" + "  GET /get -> 404 no route\n" * 30


def test_repeated_diagnostic_lines_are_folded_in_text_and_junit(tmp_path: Path) -> None:
    # the CLI printed the same request line 30 times; the pytest plugin folded it (xN): now
    # both go through report.format_diagnostics
    target = FakeTarget()
    target.deployment_class = RepeatingDeployment
    rr = Runner(target, prober=prober()).run([make_scenario("demo", ("not-routed", 404))])
    text = report.render_text(rr)
    assert "    GET /get -> 404 no route  (x30)\n" in text
    assert text.count("GET /get -> 404") == 1
    report_junit.write_junit(rr, tmp_path / "j.xml")
    failure = next(ET.parse(tmp_path / "j.xml").iter("failure"))
    assert "  GET /get -> 404 no route  (x30)" in (failure.text or "")
    assert (failure.text or "").count("GET /get -> 404") == 1
    assert (rr.scenarios[0].diagnostics or "").count("GET /get") == 30  # -o json keeps the raw text


def test_fail_fast_skips_the_rest_and_keep_reaches_the_target() -> None:
    target = FakeTarget()
    a = make_scenario("a", ("one", 404), ("two", 200))
    b = make_scenario("b", ("three", 200))
    rr = Runner(target, prober=prober()).run([a, b], fail_fast=True, keep=True)
    assert [r.status for r in rr.results()] == ["failed", "skipped", "skipped"]
    assert target.keep is True
    assert target.cleaned == ["a"]  # b never deployed


def test_pattern_selects_checks_and_no_match_is_input_error() -> None:
    s = make_scenario("demo", ("routed by host", 200), ("other", 200))
    assert [c.name for c in select(s.checks, s, "host")] == ["routed by host"]
    assert [c.name for c in select(s.checks, s, "not host")] == ["other"]
    assert [c.name for c in select(s.checks, s, "demo/o*")] == ["other"]
    # the scenario's name counts too, as in `sandbox run scenarios/* -k redirect`
    assert [c.name for c in select(s.checks, s, "dem")] == ["routed by host", "other"]
    assert select(s.checks, s, "not demo") == []
    assert [c.name for c in select(s.checks, s, "demo/*host")] == ["routed by host"]
    rr = Runner(FakeTarget(), prober=prober()).run([s], pattern="ROUTED")
    assert [r.check.name for r in rr.results()] == ["routed by host"]
    with pytest.raises(InputError, match="matches no check"):
        Runner(FakeTarget(), prober=prober()).run([s], pattern="nothing")


def test_deploy_error_marks_checks_and_exits_3() -> None:
    rr = Runner(FakeTarget(fail_deploy=True), prober=prober()).run(
        [make_scenario("demo", ("a", 200))]
    )
    assert rr.exit_code == 3
    assert rr.results()[0].status == "failed"
    assert "not run: Gateway eg not Programmed" in (rr.results()[0].error or "")
    text = report.render_text(rr)
    assert "ERROR demo: Gateway eg not Programmed\n  hint: see the controller log" in text


def test_cleanup_failure_fails_the_run_even_when_checks_pass() -> None:
    rr = Runner(FakeTarget(fail_cleanup=True), prober=prober()).run(
        [make_scenario("demo", ("a", 200))]
    )
    assert rr.failed == 0 and rr.passed == 1
    assert rr.exit_code == 3
    assert "CLEANUP FAILED demo: namespace sbx-test-abcde still Terminating" in report.render_text(
        rr
    )
    assert report_json.to_json(rr)["scenarios"][0]["cleanup_error"].startswith("namespace")


def test_a_deferred_cleanup_that_fails_at_finish_fails_its_scenario() -> None:
    target = FakeTarget()
    target.deferred_failures = {"sbx-test-abcde": ClusterError("namespace still Terminating")}
    lines: list[str] = []
    rr = Runner(target, prober=prober(), progress=lines.append).run(
        [make_scenario("demo", ("a", 200))]
    )
    assert target.finished == 1
    assert rr.scenarios[0].cleanup_error is target.deferred_failures["sbx-test-abcde"]
    assert rr.exit_code == 3
    assert lines[-1] == "demo: cleanup failed: namespace still Terminating"
    ok = FakeTarget()
    assert Runner(ok, prober=prober()).run([make_scenario("demo", ("a", 200))]).exit_code == 0
    assert ok.finished == 1


def test_lost_address_fails_that_check_only() -> None:
    rr = Runner(FakeTarget(no_address=True), prober=prober()).run(
        [make_scenario("demo", ("a", 200))]
    )
    result = rr.results()[0]
    assert result.status == "failed" and "port-forward" in (result.error or "")


def test_ctrl_c_cleans_up_and_propagates() -> None:
    target = FakeTarget()

    def interrupted(req: ProbeRequest) -> Observed:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(target, prober=Prober(send=interrupted)).run([make_scenario("demo", ("a", 200))])
    assert target.cleaned == ["demo"]


def test_ctrl_c_says_it_cleans_up_and_stops_even_when_cleanup_fails() -> None:
    def interrupted(req: ProbeRequest) -> Observed:
        raise KeyboardInterrupt

    class CleanupFailsEvenOnError(FakeTarget):
        @contextmanager
        def deploy(self, scenario: Scenario) -> Iterator[FakeDeployment]:
            try:
                yield self.deployment_class(self)
            finally:
                self.cleaned.append(scenario.name)
                if self.fail_cleanup:
                    raise ClusterError("namespace sbx-test-abcde still Terminating after 60s")

    for fail_cleanup, last in (
        (False, "demo: cleaned up"),
        (True, "demo: cleanup failed: namespace sbx-test-abcde still"),
    ):
        target = CleanupFailsEvenOnError(fail_cleanup=fail_cleanup)
        lines: list[str] = []
        with pytest.raises(KeyboardInterrupt):  # never the next scenario after Ctrl-C
            Runner(target, prober=Prober(send=interrupted), progress=lines.append).run(
                [make_scenario("demo", ("a", 200)), make_scenario("next", ("b", 200))]
            )
        assert target.cleaned == ["demo"]
        assert lines[-2] == "demo: interrupted; cleaning up (Ctrl-C again leaves it behind)"
        assert lines[-1].startswith(last)


def test_json_shape_is_stable() -> None:
    rr = Runner(FakeTarget(), prober=prober()).run(
        [make_scenario("demo", ("routed", 200), ("not-routed", 404))]
    )
    doc = json.loads(json.dumps(report_json.to_json(rr)))
    assert list(doc) == [
        "version",
        "target",
        "started",
        "duration",
        "exit_code",
        "summary",
        "scenarios",
    ]
    assert doc["version"] == 1 and doc["target"] == "fake" and doc["exit_code"] == 1
    assert doc["summary"] == {"executed": 2, "passed": 1, "failed": 1, "skipped": 0, "errors": 0}
    sc = doc["scenarios"][0]
    assert list(sc) == [
        "name",
        "file",
        "description",
        "features",
        "namespace",
        "duration",
        "passed",
        "error",
        "cleanup_error",
        "diagnostics",
        "checks",
    ]
    failed = sc["checks"][1]
    assert list(failed) == [
        "name",
        "location",
        "line",
        "status",
        "attempts",
        "elapsed",
        "consecutive_matches",
        "needed",
        "timeout",
        "features",
        "curl",
        "mismatches",
        "observed",
        "shares",
        "skipped",
        "error",
    ]
    assert failed["location"] == "scenarios/demo/scenario.yaml:11"
    assert failed["mismatches"] == [{"field": "status", "expected": "404", "observed": "200"}]
    assert failed["observed"]["status"] == 200
    assert failed["observed"]["pod"] == "backend-5d9-abcde"


def test_junit(tmp_path: Path) -> None:
    target = FakeTarget()
    a = make_scenario("a", ("routed", 200), ("not-routed", 404))
    b = make_scenario("b", ("x", 200))
    rr = Runner(target, prober=prober()).run([a, b], fail_fast=True)
    path = tmp_path / "out" / "junit.xml"
    report_junit.write_junit(rr, path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a", "b"]
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == ["routed", "not-routed"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "status: expected 404, observed 200"
    assert "curl -sS -i -H 'Host: not-routed.example.com'" in (failure.text or "")
    assert "diagnostics:" in (failure.text or "")
    skipped = suites[1].find("testcase/skipped")
    assert skipped is not None and "fail-fast" in (skipped.get("message") or "")


def test_junit_unwritable_is_input_error(tmp_path: Path) -> None:
    rr = Runner(FakeTarget(), prober=prober()).run([make_scenario("a", ("x", 200))])
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot write the JUnit report"):
        report_junit.write_junit(rr, tmp_path / "file" / "junit.xml")


def test_one_request_is_singular() -> None:
    rr = Runner(FakeTarget(), prober=prober()).run([make_scenario("demo", ("a", 200))])
    sr = rr.scenarios[0]
    assert report.check_line(sr.scenario, sr.checks[0]) == "PASS demo / a (1 request, 0.0s)"


def test_address_diagnostics_write_ipv6_in_brackets() -> None:
    from sandbox.targets.address import AddressDeployment, parse_address

    text = AddressDeployment(parse_address("[::1]:8080")).diagnostics()
    assert text.startswith("target [::1]:8080 was given with --address")


def test_a_second_ctrl_c_during_cleanup_says_what_is_left_behind() -> None:
    class SlowCleanup(FakeTarget):
        @contextmanager
        def deploy(self, scenario: Scenario) -> Iterator[FakeDeployment]:
            try:
                yield self.deployment_class(self)
            finally:
                raise KeyboardInterrupt  # the person pressed Ctrl-C again while we clean up

    def interrupted(req: ProbeRequest) -> Observed:
        raise KeyboardInterrupt

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        Runner(SlowCleanup(), prober=Prober(send=interrupted), progress=lines.append).run(
            [make_scenario("demo", ("a", 200))]
        )
    assert lines[-1] == "demo: cleanup interrupted; left behind (namespace sbx-test-abcde)"


def test_address_target_rule_for_refusals() -> None:
    from sandbox.probe.types import Refusals
    from sandbox.targets.address import AddressDeployment, parse_address

    addr = parse_address("127.0.0.1:1")
    dep = AddressDeployment(addr)
    assert dep.unreachable(Refusals(addr, 2, 5.0, False, False)) is None  # too few
    assert dep.unreachable(Refusals(addr, 5, 1.5, False, False)) is None  # too soon
    assert dep.unreachable(Refusals(addr, 9, 9.0, True, True)) is None  # it answered before
    error = dep.unreachable(Refusals(addr, 3, 2.0, False, False))
    assert error is not None and error.exit_code == 3
    assert str(error) == "nothing listens at 127.0.0.1:1: every request was refused (3 in 2.0s)"
    assert "`sandbox echo --port 1`" in (error.hint or "")
    assert dep.unreachable(Refusals(addr, 1, 0.4, False, True)) is not None  # the check is over
    v6 = parse_address("[::1]:8080")
    assert "at [::1]:8080" in str(
        AddressDeployment(v6).unreachable(Refusals(v6, 3, 2, False, False))
    )


def test_runner_timeout_replaces_each_checks_own() -> None:
    s = make_scenario("demo", ("not-routed", 404))
    assert s.checks[0].timeout == 0.05
    rr = Runner(FakeTarget(), prober=prober(), timeout=0.2).run([s])
    [result] = rr.results()
    assert result.check.timeout == 0.2 and result.elapsed >= 0.2
    assert "within 0.2s" in report.render_text(rr)
    assert s.checks[0].timeout == 0.05  # the scenario itself is left as written
