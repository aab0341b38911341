"""The project's scenarios served by the local provider (real reference model, real sockets) and
checked by the same Prober as a cluster run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from sandbox.probe.prober import Prober
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Scenario
from sandbox.targets.local.target import LocalTarget

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _run(scenario: Scenario) -> list[tuple[str, bool, str]]:
    prober = Prober(backoff=0.05)
    results = []
    with LocalTarget().deploy(scenario) as dep:
        for check in scenario.checks:
            if check.request.grpc is not None:
                continue
            scheme_port = 443 if check.request.scheme == "https" else 80
            address = dep.address(
                check.request.gateway or scenario.gateway, check.request.port or scheme_port
            )
            result = prober.run(check, address, namespace_of=dep.namespace_of)
            detail = "; ".join(
                f"{m.field}: want {m.expected} got {m.observed}" for m in result.mismatches
            )
            results.append((check.name, result.passed, detail + "\n" + dep.diagnostics()))
    return results


# The whole library runs on the local provider in the README's test command
# (`pytest tests scenarios --sandbox-provider local`); these are the ones exercising the local
# target's own mechanics (TLS, mirrors, filters, redirects, invalid backends) through the Prober
# directly. traffic-weights and request-timeout (6.6 s together) are left to the library run and
# to test_local_target.py (test_weighted_split_is_observed, test_*_timeout_*).
@pytest.mark.parametrize(
    "name",
    [
        "quickstart",
        "request-mirror",
        "https-listener",
        "response-header-modifier",
        "rewrite-path",
        "redirect-port-and-scheme",
        "invalid-backend-ref",
    ],
)
def test_scenario_passes_locally(name: str) -> None:
    assert (SCENARIOS / name / "scenario.yaml").exists(), f"library scenario {name} is missing"
    started = time.monotonic()
    results = _run(load_scenario(SCENARIOS / name))
    assert results, "no HTTP checks ran"
    for check, passed, detail in results:
        assert passed, f"{name}: {check}: {detail}"
    assert time.monotonic() - started < 5


def test_wrong_expectation_fails_locally() -> None:
    scenario = load_scenario(SCENARIOS / "quickstart")
    first = scenario.checks[0]
    wrong = dataclasses.replace(
        first,
        expect=dataclasses.replace(first.expect, backend="no-such-backend"),
        timeout=0.3,
    )
    results = _run(dataclasses.replace(scenario, checks=[wrong]))
    assert results == [(first.name, False, results[0][2])]
    assert "no-such-backend" in results[0][2]
