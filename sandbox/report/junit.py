"""The JUnit XML run report (``--junitxml``), in the shape pytest writes."""

from __future__ import annotations

import datetime as _dt
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from sandbox.errors import InputError
from sandbox.manifests import display_path as _display
from sandbox.report.text import format_diagnostics, format_failure, format_scenario_problems
from sandbox.runner import RunReport


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
