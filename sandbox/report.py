"""Reports of a run: console text, JSON (``-o json``) and JUnit XML (``--junit FILE``).

Renderers only: they read a ``RunReport`` and return text or write a file. The JSON shape is a
contract (``JSON_VERSION``; documented in docs/scenario-format.md, "Run reports").
"""

from __future__ import annotations

import datetime as _dt
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sandbox.errors import InputError
from sandbox.manifests import display_path as _display
from sandbox.probe import CheckResult, Mismatch, Observed
from sandbox.runner import RunReport, ScenarioReport
from sandbox.scenario.model import Scenario

JSON_VERSION = 1


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


def _observed_json(o: Observed | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {
        "status": o.status,
        "error": o.error,
        "pod": o.pod,
        "namespace": o.namespace,
        "headers": o.headers,
        "location": o.location,
        "request": None
        if o.request is None
        else {
            "method": o.request.method,
            "path": o.request.path,
            "host": o.request.host,
            "headers": o.request.headers,
        },
        "body": o.text if o.request is None and o.body is None else None,
    }


def _result_json(scenario: Scenario, r: CheckResult) -> dict[str, Any]:
    return {
        "name": r.check.name,
        "location": scenario.check_location(r.check),
        "line": r.check.line,
        "status": r.status,
        "attempts": r.attempts,
        "elapsed": round(r.elapsed, 3),
        "consecutive_matches": r.matches,
        "needed": r.check.consecutive,
        "timeout": r.check.timeout,
        "features": list(r.check.features),
        "curl": r.request.curl() if r.request is not None else None,
        "mismatches": [
            {"field": m.field, "expected": m.expected, "observed": m.observed} for m in r.mismatches
        ],
        "observed": _observed_json(r.observed),
        "shares": r.shares,
        "skipped": r.skipped,
        "error": r.error,
    }


def to_json(report: RunReport) -> dict[str, Any]:
    """The ``-o json`` document (shape documented in docs/scenario-format.md)."""
    return {
        "version": JSON_VERSION,
        "target": report.target,
        "started": _dt.datetime.fromtimestamp(report.started, _dt.timezone.utc).isoformat(),
        "duration": round(report.duration, 3),
        "exit_code": report.exit_code,
        "summary": {
            "executed": report.executed,
            "passed": report.passed,
            "failed": report.failed,
            "skipped": report.skipped,
            "errors": report.errors,
        },
        "scenarios": [
            {
                "name": sr.scenario.name,
                "file": _display(sr.scenario.file),
                "description": sr.scenario.description,
                "features": list(sr.scenario.features),
                "namespace": sr.namespace,
                "duration": round(sr.duration, 3),
                "passed": sr.passed,
                "error": str(sr.error) if sr.error else None,
                "cleanup_error": str(sr.cleanup_error) if sr.cleanup_error else None,
                "diagnostics": sr.diagnostics,
                "checks": [_result_json(sr.scenario, r) for r in sr.checks],
            }
            for sr in report.scenarios
        ],
    }


# --------------------------------------------------------------------------------------------
# JUnit XML
# --------------------------------------------------------------------------------------------


def to_junit(report: RunReport) -> ET.ElementTree:
    """JUnit XML: a ``testsuite`` per scenario, a ``testcase`` per check (the shape Jenkins,
    GitLab and GitHub test reporters read: failures/errors/skipped counts, ``time`` in s)."""
    suites = ET.Element(
        "testsuites",
        {
            "name": "gateway-sandbox",
            "tests": str(len(report.results())),
            "failures": str(report.failed),
            "errors": str(report.errors),
            "skipped": str(report.skipped),
            "time": f"{report.duration:.3f}",
        },
    )
    stamp = _dt.datetime.fromtimestamp(report.started, _dt.timezone.utc).isoformat()
    for sr in report.scenarios:
        errors = 1 if (sr.error or sr.cleanup_error) else 0
        suite = ET.SubElement(
            suites,
            "testsuite",
            {
                "name": sr.scenario.name,
                "tests": str(len(sr.checks)),
                "failures": str(sum(1 for r in sr.checks if r.status == "failed")),
                "errors": str(errors),
                "skipped": str(sum(1 for r in sr.checks if r.status == "skipped")),
                "time": f"{sr.duration:.3f}",
                "timestamp": stamp,
                "hostname": socket.gethostname(),
                "file": _display(sr.scenario.file),
            },
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "target", "value": sr.target})
        if sr.namespace:
            ET.SubElement(props, "property", {"name": "namespace", "value": sr.namespace})
        for r in sr.checks:
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": f"scenarios.{sr.scenario.name}",
                    "name": r.check.name,
                    "time": f"{r.elapsed:.3f}",
                    "file": _display(sr.scenario.file),
                    "line": str(r.check.line),
                },
            )
            if r.status == "skipped":
                ET.SubElement(case, "skipped", {"message": r.skipped or ""})
            elif r.status == "failed":
                first = r.mismatches[0] if r.mismatches else None
                message = (
                    f"{first.field}: expected {first.expected}, observed {first.observed}"
                    if first
                    else (r.error or "failed")
                )
                failure = ET.SubElement(
                    case, "failure", {"message": message, "type": "CheckFailed"}
                )
                text = format_failure(sr.scenario, r)
                if sr.diagnostics:
                    text += "\n\ndiagnostics:\n" + format_diagnostics(sr.diagnostics, "")
                failure.text = text
        if errors:
            err = sr.error or sr.cleanup_error
            el = ET.SubElement(suite, "system-err")
            el.text = "\n".join(format_scenario_problems(sr)) or str(err)
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(report: RunReport, path: str | Path) -> None:
    p = Path(path)
    try:
        if p.parent != Path(""):
            p.parent.mkdir(parents=True, exist_ok=True)
        to_junit(report).write(p, encoding="utf-8", xml_declaration=True)
    except OSError as e:
        raise InputError(
            f"cannot write the JUnit report: {e.strerror or e}", file=str(p), field="--junit"
        ) from None
