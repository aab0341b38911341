"""The pytest plugin (sandbox.pytest_plugin.plugin) driven through pytester, with the local provider.

Each run is a real pytest session in a temporary folder: scenario folders are collected as one
item per check, run against the reference gateway on loopback (``--sandbox-provider local``),
and reported through -k, --junitxml and --conformance-report.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

# Imported here, before any pytester run: pytester's in-process runs drop modules first imported
# inside them, while the ``sandbox`` package keeps its attributes, which would mix two copies of
# e.g. sandbox.errors across runs. Modules loaded beforehand are shared by every run.
import sandbox
import sandbox.errors
import sandbox.probe.prober
import sandbox.report.conformance
import sandbox.runner
import sandbox.scenario.features
import sandbox.scenario.load
import sandbox.targets.local.target

pytest_plugins = ["pytester"]

MANIFESTS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 3000, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers: [{name: backend, image: registry.k8s.io/gateway-api/echo-basic:v1.5.1}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend}
spec:
  parentRefs: [{name: eg}]
  hostnames: [www.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: backend, port: 3000}]
"""

SCENARIO = """\
description: www.example.com reaches the echo backend only with animal=whale.
gateway: eg
features: [Gateway, HTTPRoute]
consecutive: 1
timeout: 1
checks:
  - name: whale is routed
    request: {host: www.example.com, path: "/get?animal=whale"}
    features: [HTTPRouteQueryParamMatching]
    expect: {status: 200, backend: backend, request: {path: "/get?animal=whale"}}
  - name: other hosts get 404
    request: {host: other.example.com, path: /}
    expect: {status: 404}
  - name: wrong expectation fails
    request: {host: other.example.com, path: /}
    expect: {status: 200}
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """scenarios/whale (3 checks) and scenarios/plain (1 check), plus an ordinary test file."""
    monkeypatch.delenv("SANDBOX_PROVIDER", raising=False)
    for name, text in (("whale", SCENARIO), ("plain", _plain())):
        folder = pytester.path / "scenarios" / name
        folder.mkdir(parents=True)
        (folder / "app.yaml").write_text(MANIFESTS)
        (folder / "scenario.yaml").write_text(text)
    pytester.makepyfile(test_ordinary="def test_ordinary():\n    assert True\n")
    return pytester


QUIET = ("-p", "no:hypothesispytest", "-p", "no:benchmark")


def run(pytester: pytest.Pytester, *args: str, xdist: bool = False) -> pytest.RunResult:
    """runpytest without the plugins this file does not test (they only cost start-up time)."""
    extra = () if xdist else ("-p", "no:xdist")
    return pytester.runpytest(*args, *QUIET, *extra)


def _plain() -> str:
    return (
        "description: A plain host check.\ngateway: eg\nfeatures: [Gateway, HTTPRoute]\n"
        "consecutive: 1\nchecks:\n  - name: routed\n"
        "    request: {host: www.example.com, path: '/x?animal=whale'}\n"
        "    expect: {status: 200, backend: backend}\n"
    )


PROJECT = '[project]\nname = "gateway-sandbox"\nversion = "0.1.0"\n'


def test_the_gateway_sandbox_project_root_collects_no_scenarios(suite: pytest.Pytester) -> None:
    # the suite laid out as gateway-sandbox's own clone: `pytest` and `pytest .` run its tests
    (suite.path / "pyproject.toml").write_text(PROJECT)
    for args in ((), (".",)):
        result = run(suite, *args)
        result.assert_outcomes(passed=1)  # only test_ordinary
    (suite.path / "test_ordinary.py").unlink()
    result = run(suite, ".")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        [
            "*gateway-sandbox: 2 scenario.yaml under the gateway-sandbox "
            "project not collected*--sandbox-scenarios DIR*"
        ]
    )


@pytest.mark.parametrize("args", [(), (".",)])
def test_a_folder_of_ones_own_scenarios_collects_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    # not the gateway-sandbox project: `pytest` / `pytest .` collect its scenarios at any depth
    monkeypatch.delenv("SANDBOX_PROVIDER", raising=False)
    (pytester.path / "pyproject.toml").write_text('[project]\nname = "my-gateway-tests"\n')
    folder = pytester.path / "deep" / "down" / "plain"
    folder.mkdir(parents=True)
    (folder / "app.yaml").write_text(MANIFESTS)
    (folder / "scenario.yaml").write_text(_plain())
    result = run(pytester, *args, "--sandbox-provider", "local")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["deep/down/plain/scenario.yaml .*"])


def test_one_item_per_check_grouped_by_scenario(suite: pytest.Pytester) -> None:
    result = run(
        suite,
        "--collect-only",
        "-q",
        "--sandbox-scenarios",
        "scenarios",
        "--sandbox-provider",
        "local",
    )
    lines = [line for line in result.outlines if "::" in line]
    assert sorted(lines) == sorted(
        [
            "scenarios/plain/scenario.yaml::routed",
            "scenarios/whale/scenario.yaml::whale is routed",
            "scenarios/whale/scenario.yaml::other hosts get 404",
            "scenarios/whale/scenario.yaml::wrong expectation fails",
            "test_ordinary.py::test_ordinary",
        ]
    )


CONFTEST_TIMEOUTS = """
def pytest_runtest_makereport(item, call):
    result = getattr(item, "result", None)
    if call.when == "call" and result is not None:
        print(f"check {item.name}: timeout {result.check.timeout:g}")
"""


def test_sandbox_timeout_option_and_env_replace_the_checks_own(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.makeconftest(CONFTEST_TIMEOUTS)
    result = run(
        suite, "scenarios/plain", "--sandbox-provider", "local", "-s", "--sandbox-timeout", "7.5"
    )
    result.assert_outcomes(passed=1)
    assert "check routed: timeout 7.5" in result.stdout.str()
    monkeypatch.setenv("SANDBOX_CHECK_TIMEOUT", "4")
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local", "-s")
    assert "check routed: timeout 4" in result.stdout.str()
    monkeypatch.delenv("SANDBOX_CHECK_TIMEOUT")
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local", "-s")
    assert "check routed: timeout 30" in result.stdout.str()  # the scenario's own (default)
    for bad in ("0", "soon"):
        result = run(
            suite, "scenarios/plain", "--sandbox-provider", "local", "--sandbox-timeout", bad
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"{bad!r} is not a number of seconds > 0" in result.stderr.str()


def test_explicit_path_collects_scenarios(suite: pytest.Pytester) -> None:
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local")
    result.assert_outcomes(passed=1)


def test_naming_a_test_folder_does_not_collect_scenarios_kept_as_test_data(
    suite: pytest.Pytester,
) -> None:
    # in gateway-sandbox's own clone, tests/data/broken/<name>/scenario.yaml is test data, not a
    # scenario library: naming `tests` collects the tests, and a library folder (`scenarios`)
    # named beside it still counts
    (suite.path / "pyproject.toml").write_text(PROJECT)
    data = suite.path / "tests" / "data" / "broken" / "bad"
    data.mkdir(parents=True)
    (data / "scenario.yaml").write_text("checks: [\n")
    (suite.path / "tests" / "test_x.py").write_text("def test_x():\n    assert True\n")
    result = run(suite, "--collect-only", "-q", "tests", "scenarios", "--sandbox-provider", "local")
    lines = [line for line in result.outlines if "::" in line]
    assert "tests/test_x.py::test_x" in lines
    assert "scenarios/plain/scenario.yaml::routed" in lines
    assert not [line for line in lines if "broken" in line]
    assert result.ret == 0


def test_local_run_junit_and_failure_text(suite: pytest.Pytester) -> None:
    junit = suite.path / "junit.xml"
    result = run(suite, "scenarios", "--sandbox-provider", "local", f"--junitxml={junit}")
    result.assert_outcomes(passed=3, failed=1)
    text = result.stdout.str()
    # the runner's failure, not a traceback: location, request, expected vs observed
    line = next(
        i for i, t in enumerate(SCENARIO.splitlines(), 1) if "name: wrong expectation fails" in t
    )
    assert "FAILED whale / wrong expectation fails" in text
    # the -r summary line (cut to the terminal width) starts with the mismatch
    result.stdout.fnmatch_lines(
        ["FAILED scenarios/whale/scenario.yaml::wrong expectation fails - status: exp*"]
    )
    assert "status: expected 200, observed 404\n" in text
    assert f"at      scenarios/whale/scenario.yaml:{line}" in text
    assert "request curl" in text and "Host: other.example.com" in text
    result.stdout.re_match_lines([r"\s+status\s+200\s+404"])  # field, expected, observed
    assert "diagnostics:" in text and "(x" in text  # the retried request's log line, once
    assert "Traceback" not in text
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    assert set(cases) == {
        "routed",
        "whale is routed",
        "other hosts get 404",
        "wrong expectation fails",
    }
    failure = cases["wrong expectation fails"].find("failure")
    assert failure is not None and "FAILED whale / wrong expectation fails" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in cases["whale is routed"].iter("property")}
    assert props["gateway_api_features"] == "Gateway,HTTPRoute,HTTPRouteQueryParamMatching"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("whale", {"whale is routed", "other hosts get 404", "wrong expectation fails"}),
        ("404", {"other hosts get 404"}),
        ("plain or 404", {"routed", "other hosts get 404"}),
        ("HTTPRouteQueryParamMatching", {"whale is routed"}),
    ],
)
def test_k_selects_by_scenario_check_or_feature(
    suite: pytest.Pytester, expr: str, expected: set[str]
) -> None:
    result = run(
        suite, "scenarios", "--collect-only", "-q", "-k", expr, "--sandbox-provider", "local"
    )
    got = {line.split("::", 1)[1] for line in result.outlines if "::" in line}
    assert got == expected


def test_unsupported_features_skip_with_reason_and_report(suite: pytest.Pytester) -> None:
    report = suite.path / "conformance.yaml"
    result = run(
        suite,
        "scenarios",
        "--sandbox-provider",
        "local",
        "-rs",
        "--exempt-features",
        "HTTPRouteQueryParamMatching",
        f"--conformance-report={report}",
    )
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*whale/scenario.yaml:*gateway does not support HTTPRouteQueryParamMatching*"]
    )
    data = yaml.safe_load(report.read_text())
    assert data["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert data["kind"] == "ConformanceReport"
    # what the package declares about itself; nothing invented (no organization, url, contact)
    assert data["implementation"] == {
        "organization": "UNDEFINED",
        "project": "gateway-sandbox",
        "url": "UNDEFINED",
        "version": f"v{sandbox.__version__}",
        "contact": ["UNDEFINED"],
    }
    result.stdout.fnmatch_lines(
        [
            "*implementation organization, url, contact UNDEFINED in the report; give "
            "them with --conformance-implementation*"
        ]
    )
    http = data["profiles"][0]
    assert http["name"] == "GATEWAY-HTTP"
    # not-supported checks count nowhere (upstream NOT_SUPPORTED); no extended test ran
    assert http["core"] == {
        "result": "failure",
        "statistics": {"Failed": 1, "Passed": 2, "Skipped": 0},
        "failedTests": ["whale/wrong expectation fails"],
    }
    assert "extended" not in http
    assert http["summary"] == "Core tests failed with 1 test failures."


def test_report_counts_extended_and_skips(suite: pytest.Pytester) -> None:
    report = suite.path / "conformance.yaml"
    result = run(
        suite,
        "scenarios",
        "--sandbox-provider",
        "local",
        "-k",
        "not wrong",
        f"--conformance-report={report}",
        "--conformance-implementation",
        "organization=acme,version=v9",
    )
    result.assert_outcomes(passed=3)
    data = yaml.safe_load(report.read_text())
    assert data["implementation"]["organization"] == "acme"
    http = data["profiles"][0]
    # the check left out by -k counts as skipped (upstream: tests left out by --run-test)
    assert http["core"] == {
        "result": "partial",
        "statistics": {"Failed": 0, "Passed": 2, "Skipped": 1},
        "skippedTests": ["whale/wrong expectation fails"],
    }
    assert http["extended"]["statistics"] == {"Failed": 0, "Passed": 1, "Skipped": 0}
    assert "HTTPRouteQueryParamMatching" in http["extended"]["supportedFeatures"]
    assert http["summary"] == (
        "Core tests partially succeeded with 1 test skips. Extended tests succeeded."
    )


def test_unknown_feature_option_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = run(
        suite,
        "scenarios",
        "--sandbox-provider",
        "local",
        "--supported-features",
        "HTTPRoute,HTTPRouteQueryParamMatch",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*did you mean 'HTTPRouteQueryParamMatching'*"])


def test_cluster_provider_items_are_e2e_and_skip_without_docker(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # an engine address that cannot answer: the docker SDK fails at once on a missing socket
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = run(suite, "scenarios/plain", "-rs", "-m", "e2e")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*k3d provider unavailable*Docker engine*"])
    result = run(suite, "scenarios/plain", "-m", "not e2e")  # a quick run leaves them out
    result.assert_outcomes(deselected=1)
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local", "-m", "not e2e")
    result.assert_outcomes(passed=1)  # the local provider needs no cluster: not e2e


def test_existing_provider_needs_a_context(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBOX_CONTEXT", raising=False)
    result = run(suite, "scenarios/plain", "--sandbox-provider", "existing", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs --sandbox-context*"])


def test_invalid_scenario_is_a_collection_error_without_traceback(suite: pytest.Pytester) -> None:
    bad = suite.path / "scenarios" / "broken"
    bad.mkdir()
    (bad / "app.yaml").write_text(MANIFESTS)
    (bad / "scenario.yaml").write_text("description: x\ngateway: eg\nchecks:\n  - nme: a\n")
    result = run(suite, "scenarios/broken", "--sandbox-provider", "local")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = result.stdout.str()
    assert "scenario.yaml:4" in text
    assert "Traceback" not in text


def test_fixtures_give_the_sandbox_and_a_gateway(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_fixtures="""
        def test_gateway(sandbox, gateway):
            assert sandbox.provider == "local"
            assert "HTTPRoute" in sandbox.supported_features
            results = gateway.run("scenarios/plain")
            assert [r.status for r in results] == ["passed"]
    """
    )
    result = run(suite, "test_fixtures.py", "--sandbox-provider", "local")
    result.assert_outcomes(passed=1)


def test_xdist_runs_scenarios_in_workers(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    report = suite.path / "conformance.yaml"
    result = run(
        suite,
        "scenarios",
        "--sandbox-provider",
        "local",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        f"--conformance-report={report}",
        xdist=True,
    )
    result.assert_outcomes(passed=3, failed=1)
    data = yaml.safe_load(report.read_text())
    assert data["profiles"][0]["core"]["statistics"]["Failed"] == 1
    # -k acts in the workers; the controller still counts what it left out as Skipped
    result = run(
        suite,
        "scenarios",
        "--sandbox-provider",
        "local",
        "-n",
        "2",
        "-k",
        "not wrong",
        f"--conformance-report={report}",
        xdist=True,
    )
    result.assert_outcomes(passed=3)
    core = yaml.safe_load(report.read_text())["profiles"][0]["core"]
    assert core["statistics"] == {"Failed": 0, "Passed": 2, "Skipped": 1}
    assert core["skippedTests"] == ["whale/wrong expectation fails"]


def test_loadgroup_keeps_each_scenario_on_one_worker(suite: pytest.Pytester) -> None:
    # pytest 9.2 with pytest-xdist 3.8: xdist's own loadgroup no longer sees the groups
    # (pytest-dev/pytest-xdist#1386) and spread a scenario's checks, each worker deploying it
    # again; the plugin's scheduler keeps them together (sandbox/pytest_plugin/xdist_groups.py)
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    for name in ("lion", "tiger"):  # more scenarios than workers, of several checks each
        folder = suite.path / "scenarios" / name
        folder.mkdir()
        (folder / "app.yaml").write_text(MANIFESTS)
        (folder / "scenario.yaml").write_text(SCENARIO)
    result = run(
        suite, "scenarios", "--sandbox-provider", "local", "-n", "3", "--dist", "loadgroup",
        "-v", xdist=True,
    )  # fmt: skip
    result.assert_outcomes(passed=7, failed=3)
    workers: dict[str, set[str]] = {}
    for line in result.outlines:
        found = re.match(r"\[(gw\d+)\] .*(?:PASSED|FAILED) (scenarios/\w+)/scenario\.yaml::", line)
        if found:
            workers.setdefault(found.group(2), set()).add(found.group(1))
    assert sorted(workers) == [f"scenarios/{n}" for n in ("lion", "plain", "tiger", "whale")]
    assert all(len(w) == 1 for w in workers.values()), workers


def test_plugin_does_not_slow_ordinary_runs() -> None:
    # collecting a plain test file must not import the heavy parts of the sandbox
    import subprocess
    import sys

    code = (
        "import sys, pytest\n"
        "pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', "
        "'tests/unit/test_features.py'])\n"
        "heavy = [m for m in ('sandbox.scenario.crds', 'sandbox.targets.local.target', 'sandbox.runner', "
        "'jsonschema', 'docker') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


CONFTEST_FAILING_TARGET = """
import contextlib

from sandbox.errors import ClusterError, WaitTimeout
from sandbox.targets.local.target import LocalTarget

MODE = {mode!r}


@contextlib.contextmanager
def deploy(self, scenario):
    if MODE == "deploy":
        raise WaitTimeout("Gateway eg Programmed", 180, "Programmed=False (AddressNotAssigned)")
    with ORIGINAL(self, scenario) as deployment:
        yield deployment
    raise ClusterError("namespace sbx-x still terminating", hint="kubectl get ns sbx-x")


ORIGINAL = LocalTarget.deploy
LocalTarget.deploy = deploy


def pytest_unconfigure(config):
    LocalTarget.deploy = ORIGINAL  # pytester runs in this process: leave the class as it was
"""


@pytest.mark.parametrize("mode", ["deploy", "cleanup"])
def test_deploy_and_cleanup_errors_show_the_message(suite: pytest.Pytester, mode: str) -> None:
    suite.makeconftest(CONFTEST_FAILING_TARGET.format(mode=mode))
    report = suite.path / "conformance.yaml"
    result = run(
        suite, "scenarios/plain", "--sandbox-provider", "local", f"--conformance-report={report}"
    )
    text = result.stdout.str()
    assert "Traceback" not in text
    if mode == "deploy":
        result.assert_outcomes(errors=1)
        assert (
            "WaitTimeout: timed out after 180s waiting for Gateway eg Programmed; last seen: "
            "Programmed=False (AddressNotAssigned)" in text
        )
    else:
        result.assert_outcomes(passed=1, errors=1)  # the check passed, its cleanup failed
        assert "ClusterError: namespace sbx-x still terminating" in text
        assert "hint: kubectl get ns sbx-x" in text
    data = yaml.safe_load(report.read_text())
    assert data["profiles"][0]["core"]["failedTests"] == ["plain/routed"]


def test_envoy_gateway_defaults_exempt_what_its_own_conformance_skips(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    scenario = suite.path / "scenarios" / "plain" / "scenario.yaml"
    scenario.write_text(
        scenario.read_text().replace(
            "features: [Gateway, HTTPRoute]",
            "features: [Gateway, HTTPRoute, GatewayInfrastructurePropagation]",
        )
    )
    result = run(suite, "scenarios/plain", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*gateway does not support GatewayInfrastructurePropagation*"])
    # the local reference gateway claims only what it models: not that feature either
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*gateway does not support GatewayInfrastructurePropagation*"])


def test_local_provider_runs_the_extended_features_it_models(suite: pytest.Pytester) -> None:
    # scenarios/whale needs HTTPRouteQueryParamMatching, which the reference model carries out
    result = run(suite, "scenarios/whale", "--sandbox-provider", "local", "-k", "whale and routed")
    result.assert_outcomes(passed=1, deselected=2)


def test_rootdir_as_argument_does_not_collect_scenarios(suite: pytest.Pytester) -> None:
    (suite.path / "pyproject.toml").write_text(PROJECT)  # the gateway-sandbox project's root
    result = run(suite, ".", "--sandbox-provider", "local")
    result.assert_outcomes(passed=1)  # test_ordinary only
    result = run(suite, "scenarios", "--sandbox-provider", "local", "-k", "not wrong")
    result.assert_outcomes(passed=3)


CONFTEST_CLUSTER_CRDS = """
from sandbox.targets.local.target import LocalTarget


class FakeKubectl:
    # what `kubectl get customresourcedefinitions -o json` returns, trimmed to what is read
    def get_json(self, kind):
        return {"apiVersion": "v1", "kind": "List", "items": [{
            "metadata": {"name": "httproutes.gateway.networking.k8s.io", "annotations": {
                "gateway.networking.k8s.io/bundle-version": "v1.5.1",
                "gateway.networking.k8s.io/channel": "standard"}},
            "spec": {"group": "gateway.networking.k8s.io"}}]}


ORIGINAL = LocalTarget.kubectl  # None: the local target reaches no cluster
LocalTarget.kubectl = FakeKubectl()


def pytest_unconfigure(config):
    LocalTarget.kubectl = ORIGINAL
"""


@pytest.mark.parametrize("xdist", [False, True])
def test_report_reads_version_and_channel_from_the_cluster(
    suite: pytest.Pytester, xdist: bool
) -> None:
    if xdist:
        pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    suite.makeconftest(CONFTEST_CLUSTER_CRDS)
    report = suite.path / "conformance.yaml"
    args = ["scenarios/plain", "--sandbox-provider", "local", f"--conformance-report={report}"]
    result = run(suite, *args, *(["-n", "1"] if xdist else []), xdist=xdist)
    result.assert_outcomes(passed=1)
    data = yaml.safe_load(report.read_text())
    assert (data["gatewayAPIVersion"], data["gatewayAPIChannel"]) == ("v1.5.1", "standard")


def test_without_crds_a_field_typo_is_a_collection_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no CRDs at hand (and none downloaded by pytest): the reference model's field check
    monkeypatch.delenv("SANDBOX_GATEWAY_API_CRDS", raising=False)
    monkeypatch.delenv("SANDBOX_ENVOY_GATEWAY_INSTALL_YAML", raising=False)
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(suite.path / "empty-cache"))
    manifest = suite.path / "scenarios" / "plain" / "app.yaml"
    manifest.write_text(manifest.read_text().replace("  hostnames:", "  hostname:"))
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = result.stdout.str()
    assert "schema: CRDs not at hand (" in text and "the reference model's field check" in text
    line = next(
        i for i, t in enumerate(manifest.read_text().splitlines(), 1) if t.startswith("  hostname:")
    )
    assert (
        f"scenarios/plain/app.yaml:{line}: HTTPRoute/backend: spec.hostname: unknown field "
        "(did you mean 'hostnames'?)"
    ) in text
    assert not (suite.path / "empty-cache").exists()  # nothing downloaded


def test_manifests_failing_the_crd_schemas_are_collection_errors(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    crds = os.environ.get("SANDBOX_GATEWAY_API_CRDS") or ""
    if not crds or not Path(crds).is_dir():
        pytest.skip("SANDBOX_GATEWAY_API_CRDS is not set to a folder of Gateway API CRDs")
    manifest = suite.path / "scenarios" / "plain" / "app.yaml"
    manifest.write_text(manifest.read_text().replace("type: PathPrefix", "type: Prefix"))
    result = run(suite, "scenarios/plain", "--sandbox-provider", "local")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = result.stdout.str()
    assert "1 manifest error(s) (schema: Gateway API v1.6.1 experimental CRDs from " in text
    line = next(i for i, t in enumerate(manifest.read_text().splitlines(), 1) if "Prefix" in t)
    assert (
        f"scenarios/plain/app.yaml:{line}: HTTPRoute/backend: "
        "spec.rules[0].matches[0].path.type: unsupported value 'Prefix'"
    ) in text
    assert "Traceback" not in text


CONFTEST_STACK_DOWN = """
import sandbox.pytest_plugin.state as plugin
from sandbox.errors import ClusterError

CALLS = []
ORIGINAL = plugin.make_target


def make_target(state):
    CALLS.append(state.provider)
    raise ClusterError("cluster 'sandbox' exists but was not created by gateway-sandbox")


plugin.make_target = make_target


def pytest_unconfigure(config):
    plugin.make_target = ORIGINAL
    print("make_target calls:", len(CALLS))
"""


def test_a_stack_that_cannot_come_up_is_tried_once(suite: pytest.Pytester) -> None:
    suite.makeconftest(CONFTEST_STACK_DOWN)
    result = run(suite, "scenarios", "--sandbox-provider", "local", "-s")
    result.assert_outcomes(errors=4)  # every check: its scenario could not be deployed
    text = result.stdout.str()
    assert "make_target calls: 1" in text
    assert text.count("ClusterError: cluster 'sandbox' exists but was not created") >= 2


def test_junit_message_is_the_headline_and_lf_reruns_only_failed_checks(
    suite: pytest.Pytester,
) -> None:
    junit = suite.path / "junit.xml"
    result = run(suite, "scenarios", "--sandbox-provider", "local", f"--junitxml={junit}")
    result.assert_outcomes(passed=3, failed=1)
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    failure = cases["wrong expectation fails"].find("failure")
    assert failure is not None
    assert failure.get("message") == "status: expected 200, observed 404"  # one line
    assert failure.text and "expected  observed" in failure.text  # the whole report below
    assert cases["routed"].get("classname") == "scenarios.plain.scenario.yaml"
    # pytest's cache: --lf runs the failed check only, --ff runs it first
    report = suite.path / "conformance.yaml"
    result = run(
        suite, "scenarios", "--sandbox-provider", "local", "--lf", f"--conformance-report={report}"
    )
    result.assert_outcomes(failed=1)  # the other checks are not even collected
    core = yaml.safe_load(report.read_text())["profiles"][0]["core"]
    # the checks --lf left out count as Skipped (upstream: tests left out by --run-test)
    assert core["statistics"] == {"Failed": 1, "Passed": 0, "Skipped": 2}
    assert core["skippedTests"] == ["plain/routed", "whale/other hosts get 404"]
    result = run(suite, "scenarios", "--sandbox-provider", "local", "--ff", "-v")
    result.assert_outcomes(passed=3, failed=1)
    first = next(line for line in result.stdout.lines if "scenario.yaml::" in line)
    assert "wrong expectation fails FAILED" in first


def test_x_stops_after_the_first_failure_and_collect_only_lists_checks(
    suite: pytest.Pytester,
) -> None:
    result = run(
        suite,
        "scenarios/whale",
        "scenarios/plain",
        "--sandbox-provider",
        "local",
        "-x",
        "-k",
        "wrong or plain",
    )
    result.assert_outcomes(failed=1)  # whale comes first; plain never runs
    result = run(suite, "scenarios", "--sandbox-provider", "local", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert "scenarios/whale/scenario.yaml::other hosts get 404" in result.stdout.lines
    result.stdout.fnmatch_lines(["4 tests collected*"])


CONFTEST_INTERRUPT = """
import contextlib

import sandbox.pytest_plugin.items as plugin
from sandbox.targets.local.target import LocalTarget

EVENTS = []
ORIGINAL_DEPLOY = LocalTarget.deploy
ORIGINAL_RUN = plugin.run_check


@contextlib.contextmanager
def deploy(self, scenario):
    with ORIGINAL_DEPLOY(self, scenario) as deployment:
        EVENTS.append("deployed")
        yield deployment
    EVENTS.append("cleaned up")


def run_check(scenario, check, deployment, target=None, **kw):
    if check.name == "other hosts get 404":
        raise KeyboardInterrupt  # Ctrl-C while a check runs
    return ORIGINAL_RUN(scenario, check, deployment, target, **kw)


LocalTarget.deploy = deploy
plugin.run_check = run_check


def pytest_unconfigure(config):
    LocalTarget.deploy = ORIGINAL_DEPLOY
    plugin.run_check = ORIGINAL_RUN
    print("EVENTS", EVENTS)
"""


def test_ctrl_c_cleans_up_the_deployed_scenario(suite: pytest.Pytester) -> None:
    suite.makeconftest(CONFTEST_INTERRUPT)
    result = suite.runpytest(
        "scenarios/whale",
        "--sandbox-provider",
        "local",
        "-s",
        *QUIET,
        "-p",
        "no:xdist",
        no_reraise_ctrlc=True,
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*", "EVENTS ['deployed', 'cleaned up']"])
