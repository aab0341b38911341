"""Reports of a run: console text, JSON (``-o json``) and JUnit XML (``--junit FILE``).

Renderers only: they read a ``RunReport`` and return text or write a file. The JSON shape is a
contract (``JSON_VERSION``; documented in docs/scenario-format.md, "Run reports").
"""

from __future__ import annotations

from sandbox.probe.types import CheckResult, Mismatch, Observed
from sandbox.runner import RunReport, ScenarioReport
from sandbox.scenario.model import Scenario

# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def _check_id(scenario: Scenario, result: CheckResult) -> str:
    return f"{scenario.name} / {result.check.name}"


def check_line(scenario: Scenario, result: CheckResult) -> str:
    """One line per check: ``PASS quickstart / routed (3 requests, 0.1s)``."""
    mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[result.status]
    if result.status == "skipped":
        tail = f"({result.skipped})"
    elif result.error and not result.attempts:
        tail = f"({result.error})"
    else:
        tail = f"({_requests(result.attempts)}, {result.elapsed:.1f}s)"
    return f"{mark} {_check_id(scenario, result)} {tail}"


def _requests(n: int) -> str:
    return f"{n} request" if n == 1 else f"{n} requests"


def _table(rows: list[tuple[str, str, str]], indent: str) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return [f"{indent}{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in rows]


def _why(result: CheckResult) -> str:
    check = result.check
    if check.expect.backends is not None:
        within = (
            f"in {result.attempts // max(check.samples, 1)} rounds (this target's "
            "answers do not change over time)"
            if result.settled
            else f"within {check.timeout:g}s"
        )
        return (
            f"{_requests(result.attempts)} in {result.elapsed:.1f}s; the traffic shares did "
            f"not hold {within} ({check.samples} samples a round, "
            f"tolerance {check.tolerance:g})"
        )
    if result.matches:
        got = f"only {result.matches} matching response(s) in a row at the end"
    elif result.mismatches:
        got = "no matching response"
    else:
        got = "no match"
    if result.settled and result.elapsed < check.timeout:
        return (
            f"{_requests(result.attempts)} in {result.elapsed:.1f}s; {got} (needs "
            f"{check.consecutive} in a row; the first {check.consecutive} decide: this "
            "target's answers do not change over time)"
        )
    return (
        f"{_requests(result.attempts)} in {result.elapsed:.1f}s; {got} (needs "
        f"{check.consecutive} in a row within {check.timeout:g}s)"
    )


def describe_observed(observed: Observed | None) -> str:
    if observed is None:
        return "(none)"
    if observed.status is None:
        return f"none ({observed.error})"
    parts = [str(observed.status)]
    if observed.pod is not None:
        parts.append(
            f"from pod {observed.pod or '(no name)'}"
            + (f" in namespace {observed.namespace}" if observed.namespace else "")
        )
    if observed.request is not None:
        r = observed.request
        parts.append(f"backend saw {r.method} {r.path} Host: {r.host}")
    if observed.location:
        parts.append(f"Location: {observed.location}")
    if observed.request is None and observed.text:
        parts.append(f"body {observed.text[:120]!r}")
    return "; ".join(parts)


def format_failure(scenario: Scenario, result: CheckResult) -> str:
    """What a person needs to act on a failed check."""
    lines = [
        f"FAILED {_check_id(scenario, result)}",
        f"  at      {scenario.check_location(result.check)}",
    ]
    if result.request is not None:
        lines.append(f"  request {result.request.curl()}")
    if result.error:
        lines.append(f"  error   {result.error}")
    if result.attempts:
        lines.append(f"  result  {_why(result)}")
    mismatches: list[Mismatch] = result.mismatches
    if mismatches:
        rows = [("field", "expected", "observed (last response)")]
        rows += [(m.field, m.expected, m.observed) for m in mismatches]
        lines.extend(_table(rows, "  "))
    if result.observed is not None:
        lines.append(f"  last response: {describe_observed(result.observed)}")
    if result.shares:
        lines.append("  shares: " + ", ".join(f"{k} {v:.2f}" for k, v in result.shares.items()))
    return "\n".join(lines)


def collapse_repeats(lines: list[str]) -> list[str]:
    """Consecutive identical lines once, with ``(xN)``: a retried request logs the same line
    every time (``sandbox run``'s diagnostics, the pytest plugin's failure text, JUnit)."""
    out: list[str] = []
    count = 0
    for i, line in enumerate(lines):
        count += 1
        if i + 1 < len(lines) and lines[i + 1] == line:
            continue
        out.append(line + (f"  (x{count})" if count > 1 else ""))
        count = 0
    return out


def format_diagnostics(text: str, indent: str = "  ") -> str:
    """A deployment's diagnostics for people: each line indented, repeats folded."""
    return "\n".join(indent + line for line in collapse_repeats(text.rstrip().splitlines()))


def format_summary(report: RunReport) -> str:
    text = (
        f"{report.executed} executed, {report.passed} passed, {report.failed} failed, "
        f"{report.skipped} skipped in {report.duration:.1f}s"
    )
    if report.errors:
        text += f"; {report.errors} scenario error(s)"
    return text


def format_scenario_problems(sr: ScenarioReport) -> list[str]:
    out: list[str] = []
    if sr.error is not None:
        out.append(f"ERROR {sr.scenario.name}: {sr.error}")
        if sr.error.hint:
            out.append(f"  hint: {sr.error.hint}")
    if sr.cleanup_error is not None:
        out.append(f"CLEANUP FAILED {sr.scenario.name}: {sr.cleanup_error}")
        if sr.cleanup_error.hint:
            out.append(f"  hint: {sr.cleanup_error.hint}")
    return out


def render_details(report: RunReport) -> str:
    """Failures (with diagnostics) and scenario errors; empty when everything passed."""
    blocks: list[str] = []
    for sr in report.scenarios:
        failed = [r for r in sr.checks if r.status == "failed"]
        for result in failed:
            blocks.append(format_failure(sr.scenario, result))
        if failed and sr.diagnostics:
            diag = format_diagnostics(sr.diagnostics)
            blocks.append(
                f"diagnostics for {sr.scenario.name}"
                + (f" (namespace {sr.namespace})" if sr.namespace else "")
                + f":\n{diag}"
            )
        problems = format_scenario_problems(sr)
        if problems:
            blocks.append("\n".join(problems))
    return "\n\n".join(blocks)


def render_text(report: RunReport) -> str:
    """The whole console report: a line per check, the failures, the summary."""
    lines = [check_line(sr.scenario, r) for sr in report.scenarios for r in sr.checks]
    details = render_details(report)
    out = "\n".join(lines)
    if details:
        out += "\n\n" + details
    return out + "\n\n" + format_summary(report) + "\n"


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# JUnit XML
# --------------------------------------------------------------------------------------------
