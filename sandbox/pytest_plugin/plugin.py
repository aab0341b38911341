"""pytest plugin (entry point ``pytest11``): scenario folders as test items.

Every ``scenario.yaml`` that pytest collects becomes one collector (the scenario: deployed once,
when its first selected check runs, and cleaned up after its last) holding one item per check.
So ``-k`` selects by scenario or check name (and by upstream feature name), ``--junitxml``
records one test case per check, and pytest-xdist distributes scenarios (each deployment has its
own namespace; ``--dist loadfile`` or ``loadgroup`` keeps a scenario's checks on one worker:
for loadgroup the plugin makes sure of it, see :mod:`sandbox.pytest_plugin.xdist_groups`).

The plugin is loaded by every pytest run (including this project's own tests): it collects
every ``scenario.yaml`` under ``--sandbox-scenarios DIR`` and under the paths pytest collects
(``pytest .`` in a folder of one's own scenarios runs them), except that inside the
gateway-sandbox project itself naming its root or ``tests`` never collects its scenario library
or the broken scenarios kept as test data (see ``_is_wanted``); it imports nothing heavy until
a scenario is collected.

A check whose features (the scenario's plus its own) are not supported is skipped with the
reason and counts nowhere in the ConformanceReport (upstream ``NOT_SUPPORTED``). Supported
features follow upstream's flags: all by default (against Envoy Gateway, all but what its own
conformance run skips, ``features.ENVOY_GATEWAY_EXEMPT``), ``--supported-features`` restricts,
``--exempt-features`` removes, and the profiles' core features are always supported.

ConformanceReport (``--conformance-report``): a test is one check, named
``<scenario folder>/<check name>`` (upstream names tests by ShortName); checks left out by
``-k``/``-m``/``--lf`` count as Skipped, as upstream counts tests left out by ``--run-test``
(under xdist too: the controller looks the scenarios up itself). JUnit's
failure message and pytest's ``-r`` line are the failure's first line (``DomainFailure``).
Ctrl-C tears the deployed scenario down (pytest runs the collectors' teardown on interrupt).

Options: ``--sandbox-provider`` (k3d | local | existing), ``--sandbox-keep``,
``--sandbox-scenarios DIR``, ``--sandbox-context``, ``--sandbox-gateway-class``,
``--sandbox-timeout SECONDS`` (every check's convergence timeout, as ``sandbox run --timeout``),
``--supported-features``, ``--exempt-features``, ``--conformance-report FILE``,
``--conformance-implementation``.
Fixtures: ``sandbox`` (the stack, brought up or reused, session scope) and ``gateway`` (deploys
scenarios and runs checks against the sandbox's GatewayClass).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.pytest_plugin.state import (
    _STATE,
    SCENARIO_FILE,
    SandboxState,
    _is_wanted,
    _state,
)
from sandbox.settings import PROVIDERS

if TYPE_CHECKING:
    from sandbox.pytest_plugin.items import GatewayFixture, Sandbox

# ``items`` and ``results`` stand on the whole library: they are imported where a session first
# needs them (a scenario collected, a report asked for, a fixture used), never at plugin load,
# so that pytest runs that collect no scenario stay as fast as without the plugin.


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    """A timeout in seconds (> 0), for --sandbox-timeout / SANDBOX_CHECK_TIMEOUT."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds > 0 (--sandbox-timeout, or env "
            "SANDBOX_CHECK_TIMEOUT)"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gateway-sandbox", "Gateway API scenarios (gateway-sandbox)")
    group.addoption(
        "--sandbox-provider",
        choices=PROVIDERS,
        default=os.environ.get("SANDBOX_PROVIDER") or None,
        help="where scenarios run: k3d (default; a sandbox k3d cluster with Envoy Gateway, "
        "brought up or reused), kind (the same on a sandbox kind cluster), local (the "
        "reference gateway on loopback, no Docker), existing (the kubeconfig context of "
        "--sandbox-context) [env SANDBOX_PROVIDER]",
    )
    group.addoption(
        "--sandbox-cluster",
        "--cluster",
        dest="sandbox_cluster",
        choices=("k3d", "kind"),
        default=os.environ.get("SANDBOX_CLUSTER") or None,
        help="which tool makes the sandbox's cluster: k3d (default) or kind; alone it means "
        "--sandbox-provider of that name [env SANDBOX_CLUSTER]",
    )
    group.addoption(
        "--sandbox-compare",
        dest="sandbox_compare",
        action="store_true",
        default=False,
        help="after each check passes on a cluster, hold the real response against the "
        "reference model's prediction and fail the check where they differ (the default "
        "on the sandbox's own cluster, k3d or kind, with its GatewayClass)",
    )
    group.addoption(
        "--no-sandbox-compare",
        dest="no_sandbox_compare",
        action="store_true",
        default=False,
        help="do not compare with the reference model",
    )
    group.addoption(
        "--sandbox-keep",
        action="store_true",
        default=False,
        help="leave scenario namespaces in place for inspection (the stack always stays up)",
    )
    group.addoption(
        "--sandbox-scenarios",
        action="append",
        default=[],
        metavar="DIR",
        help="collect every scenario folder (scenario.yaml) under DIR (repeatable)",
    )
    group.addoption(
        "--sandbox-context",
        default=os.environ.get("SANDBOX_CONTEXT"),
        metavar="CONTEXT",
        help="kubeconfig context for --sandbox-provider existing [env SANDBOX_CONTEXT]",
    )
    group.addoption(
        "--sandbox-gateway-class",
        default=os.environ.get("SANDBOX_GATEWAY_CLASS"),
        metavar="NAME",
        help="GatewayClass given to every Gateway (cluster providers; default: the "
        "sandbox's, eg) [env SANDBOX_GATEWAY_CLASS]",
    )
    group.addoption(
        "--sandbox-timeout",
        type=_seconds,
        metavar="SECONDS",
        default=os.environ.get("SANDBOX_CHECK_TIMEOUT") or None,
        help="seconds every check may take to converge, instead of its own timeout "
        "(scenario.yaml; default 30) [env SANDBOX_CHECK_TIMEOUT]",
    )
    group.addoption(
        "--supported-features",
        default=None,
        metavar="F1,F2",
        help="upstream Gateway API features the gateway supports (default: all; for "
        "Envoy Gateway all but those its own conformance run skips); checks "
        "needing others are skipped",
    )
    group.addoption(
        "--exempt-features",
        default=None,
        metavar="F1,F2",
        help="features to treat as unsupported (as upstream's --exempt-features)",
    )
    group.addoption(
        "--conformance-report",
        default=None,
        metavar="FILE",
        help="write the upstream ConformanceReport YAML (gateway.networking.k8s.io/v1); "
        "its tests are named <scenario folder>/<check name>",
    )
    group.addoption(
        "--conformance-implementation",
        default=None,
        metavar="organization=O,project=P,url=U,version=V,contact=C1;C2",
        help="implementation fields of the ConformanceReport; defaults: k3d: Envoy "
        "Gateway at the version installed; existing: Envoy Gateway, version "
        "UNDEFINED; local: project and version of this package, organization, "
        "url and contact UNDEFINED (give them here) "
        "[env SANDBOX_CONFORMANCE_IMPLEMENTATION]",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: needs a real Docker engine and builds a real k3d or kind cluster "
        "(skipped when none answers)",
    )
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup group")
    scenario_dirs = [Path(d) for d in config.getoption("sandbox_scenarios") or []]
    for d in scenario_dirs:
        if not d.exists():
            raise pytest.UsageError(f"--sandbox-scenarios: {d} does not exist")
    # the paths pytest collects: named on the command line, else testpaths, else the
    # invocation folder (see _is_wanted for which scenario.yaml under them are collected)
    explicit = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    # --sandbox-scenarios DIR adds DIR to what pytest collects
    if scenario_dirs:
        config.args.extend(str(d) for d in scenario_dirs)
    state = SandboxState(
        config=config, scenario_roots=[d.resolve() for d in scenario_dirs], explicit=explicit
    )
    config.stash[_STATE] = state
    if config.getoption("supported_features") or config.getoption("exempt_features"):
        state.supported  # noqa: B018 - validates the feature names now: a usage error
    report = config.getoption("conformance_report")
    if report and not hasattr(config, "workerinput"):  # xdist workers: the controller writes it
        from sandbox.pytest_plugin.results import ResultsPlugin  # heavy: see the imports

        config.pluginmanager.register(ResultsPlugin(config, report), "gateway_sandbox_results")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """When nothing ran, say which scenario.yaml files were passed over, and why."""
    state = config.stash.get(_STATE, None)
    if state is None or exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED or not state.passed_over:
        return
    found = sorted(set(state.passed_over))
    terminalreporter.write_line(
        f"gateway-sandbox: {len(found)} scenario.yaml under the gateway-sandbox project not "
        f"collected (e.g. {found[0]}): naming the project root or its tests never collects its "
        "scenarios; name a scenario folder or the folder of scenarios (pytest scenarios), or use "
        "--sandbox-scenarios DIR",
        yellow=True,
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name != SCENARIO_FILE:
        return None
    state = parent.config.stash.get(_STATE, None)
    if state is None or not _is_wanted(state, file_path):
        return None
    state.scenario_files.append(file_path)
    from sandbox.pytest_plugin.items import ScenarioFile  # heavy: see the imports

    return ScenarioFile.from_parent(parent, path=file_path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` keeps a scenario's checks on one worker whatever the pytest version
    (:mod:`sandbox.pytest_plugin.xdist_groups`); other modes are xdist's own."""
    from sandbox.pytest_plugin.xdist_groups import make_scheduler

    return make_scheduler(config, log)


# --------------------------------------------------------------------------------------------
# session state: the provider, the stack, feature support, results
# --------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """See the deferred cleanups of the session's cluster target through; one that fails
    fails the session (a failed cleanup never exits 0)."""
    state = session.config.stash.get(_STATE, None)
    if state is None or state._target is None:
        return
    failures = state._target.finish()
    if not failures:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    for run, error in failures.items():
        if tr is not None:
            tr.write_line(f"gateway-sandbox: cleanup of {run} failed: {error}", red=True)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------------------------
# collection
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# running one check (the Runner's per-check path)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# results for the ConformanceReport (on the xdist controller, reports arrive from the workers)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """The stack for this session: brought up or reused (k3d), or the local/existing target.

    Skips (with the reason) when the provider cannot run here, e.g. no Docker engine for k3d.
    """
    from sandbox.pytest_plugin.items import Sandbox  # heavy: see the imports

    state = _state(request.config)
    why = state.unavailable()
    if why:
        pytest.skip(why)
    return Sandbox(
        state.provider,
        state.target(),
        state.supported,
        state.keep,
        request.config.getoption("sandbox_timeout"),
    )


@pytest.fixture(scope="session")
def gateway(sandbox: Sandbox) -> GatewayFixture:
    """Deploys scenarios and runs their checks on the ``sandbox`` fixture's target."""
    from sandbox.pytest_plugin.items import GatewayFixture  # heavy: see the imports

    return GatewayFixture(sandbox)
