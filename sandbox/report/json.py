"""The JSON run report (``sandbox run --output json``): data first, one object per check."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sandbox.manifests import display_path as _display
from sandbox.probe.types import CheckResult, Observed
from sandbox.runner import RunReport
from sandbox.scenario.model import Scenario

JSON_VERSION = 1


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
