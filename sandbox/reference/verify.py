"""Run a scenario's checks through the reference model; one message per disagreement."""

from __future__ import annotations

from sandbox.scenario import Scenario


def verify_scenario(scenario: Scenario) -> list[str]:
    """Return one message per check field where the model disagrees with the expectation."""
    raise NotImplementedError
