"""The report files of a run, written the same way by both shells (the CLI and the pytest plugin).

``write_reports`` writes the JUnit XML (from a ``RunReport``; the pytest plugin leaves JUnit to
pytest's own ``--junitxml``) and the upstream ConformanceReport, and returns the lines a person
should read about them: where the ConformanceReport went, and which implementation fields are
``UNDEFINED`` and how to give them (the shell says how: a CLI option, an env var).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from sandbox.report import conformance
from sandbox.report.conformance import CrdReader, TestResult
from sandbox.report.junit import write_junit
from sandbox.runner import RunReport, ScenarioReport
from sandbox.scenario import features as F
from sandbox.scenario.model import Scenario


def write_reports(
    results: Sequence[TestResult | RunReport | ScenarioReport],
    *,
    provider: str,
    junit: str | Path | None = None,
    conformance_report: str | Path | None = None,
    implementation: str | None = None,
    implementation_hint: str = (
        f"{conformance.ENV_IMPLEMENTATION}=organization=O,project=P,url=U,version=V,contact=C"
    ),
    supported_features: Iterable[str] | None = None,
    exempt_features: Iterable[str] = (),
    profiles: Sequence[str] = F.DEFAULT_PROFILES,
    gateway_api_version: str | None = None,
    gateway_api_channel: str | None = None,
    kubectl: CrdReader | None = None,
    scenarios: Iterable[Scenario] | None = None,
) -> list[str]:
    """Write the JUnit XML to ``junit`` (the ``RunReport`` among ``results``) and the
    ConformanceReport to ``conformance_report``, each only when given; return the notes.

    ``provider`` and ``implementation`` (the user's ``organization=...`` text, else env
    ``SANDBOX_CONFORMANCE_IMPLEMENTATION``) name the implementation the report is about.
    Raises ``InputError`` when a file cannot be written.
    """
    notes: list[str] = []
    if junit is not None:
        for r in results:
            if isinstance(r, RunReport):
                write_junit(r, junit)
    if conformance_report is None:
        return notes
    impl = conformance.implementation_for(provider, implementation)
    conformance.write_conformance_report(
        results,
        conformance_report,
        implementation=impl,
        supported_features=supported_features,
        exempt_features=exempt_features,
        profiles=profiles,
        gateway_api_version=gateway_api_version,
        gateway_api_channel=gateway_api_channel,
        kubectl=kubectl,
        scenarios=scenarios,
    )
    notes.append(f"ConformanceReport written to {conformance_report}")
    unknown = conformance.undefined_fields(impl)
    if unknown:
        notes.append(
            f"implementation {', '.join(unknown)} UNDEFINED in the report; "
            f"give them with {implementation_hint}"
        )
    return notes
