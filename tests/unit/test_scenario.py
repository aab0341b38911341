"""Loading and validating scenarios: the shipped ones load, broken ones give precise messages."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.cli.main import main
from sandbox.errors import EXIT_USAGE, InputError
from sandbox.scenario.library import find_scenarios, resolve_scenario
from sandbox.scenario.load import ScenarioInvalid, load_scenario
from sandbox.scenario.model import DEFAULT_CONSECUTIVE

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "data" / "broken"
SCENARIOS = ROOT / "scenarios"

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: eg
spec:
  gatewayClassName: eg
  listeners:
    - {name: http, protocol: HTTP, port: 80}
    - {name: alt, protocol: HTTP, port: 8080}
"""


def write(folder: Path, scenario: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.yaml").write_text(textwrap.dedent(scenario))
    for name, text in {"gateway.yaml": GATEWAY, **files}.items():
        (folder / name).write_text(text)
    return folder


# --- the broken corpus: (case, [substrings every message must contain, in order]) ----------
CASES: dict[str, list[str]] = {
    "bad-yaml": [
        "bad-yaml/scenario.yaml:6: invalid YAML: expected ',' or '}'",
        "started at line 5",
    ],
    "wrong-types": [
        "wrong-types/scenario.yaml:3: consecutive: expected an integer, got a string ('3')",
        "wrong-types/scenario.yaml:4: timeout: must be > 0, got -1",
        "scenario.yaml:7: checks[0].request.headers.X-Num: expected a string, got a number (1) "
        "(quote it in YAML)",
        "scenario.yaml:7: checks[0].request.port: expected an integer, got a string ('http')",
        "scenario.yaml:9: checks[0].expect.status: expected an HTTP status code",
        "scenario.yaml:10: checks[0].expect.absent_headers: expected a list",
    ],
    "unknown-keys": [
        "unknown-keys/scenario.yaml:3: timout: unknown key (did you mean 'timeout'?)",
        "scenario.yaml:6: checks[0].request.methd: unknown key (did you mean 'method'?)",
        "scenario.yaml:9: checks[0].expect.absentHeaders: unknown key (did you mean "
        "'absent_headers'?)",
        "scenario.yaml:10: checks[0].expect.bakend: unknown key (did you mean 'backend'?)",
    ],
    "missing-manifest": [
        "missing-manifest/scenario.yaml:3: manifests[1]: file not found: ",
        "missing-manifest/app.yaml",
    ],
    "gateway-not-in-manifests": [
        "scenario.yaml:2: gateway: no Gateway named 'egg' in the manifests (did you mean 'eg'?)",
        "scenario.yaml:5: checks[0].request.gateway: no Gateway named 'other' in the manifests "
        "(Gateways: eg)",
    ],
    "manifest-without-kind": [
        "manifest-without-kind/gateway.yaml:12: kind: missing or not a string (in object "
        "'backend')",
        "manifest-without-kind/gateway.yaml:20: metadata.name: missing or not a string "
        "(in a Service)",
    ],
    "manifest-bad-yaml": [
        "manifest-bad-yaml/app.yaml:5: invalid YAML: mapping values are not "
        "allowed here at line 5, column 10"
    ],
    "duplicate-checks": [
        "scenario.yaml:7: checks[1].name: duplicate check name 'routed' (first at line 4)",
        "scenario.yaml:9: checks[1].request: duplicate key (first at line 8)",
    ],
    "missing-required": [
        "missing-required/scenario.yaml:1: description: missing (required)",
        "scenario.yaml:3: checks[0].name: missing (required)",
        "scenario.yaml:3: checks[0].expect: missing (required)",
    ],
    "not-a-mapping": [
        "not-a-mapping/scenario.yaml:1: expected a mapping of scenario keys, got a list"
    ],
    "empty": [
        "empty/scenario.yaml:1: the file is empty: a scenario needs at least "
        "description, gateway and checks"
    ],
    "tabs": [
        "tabs/scenario.yaml:4: invalid YAML: found character '\\t' that cannot start any "
        "token at line 4, column 1",
        "; YAML indents with spaces, never tabs",
    ],
    "not-utf8": [
        "not-utf8/scenario.yaml:1: not UTF-8 text: byte 0xe9 at line 1, column 35 "
        "(invalid continuation byte); save the file as UTF-8"
    ],
    "manifest-not-utf8": [
        "manifest-not-utf8/gateway.yaml:11: not UTF-8 text: byte 0xe9 at line 11, column 4"
    ],
    "manifest-is-a-list": [
        "manifest-is-a-list/list.yaml:1: a manifest must be a mapping, got "
        "a list (write each object as its own YAML document, separated by "
        "---)"
    ],
    "status-out-of-range": [
        "scenario.yaml:6: checks[0].expect.status: expected an HTTP status code (100-599) or a "
        "list of them, got a number (999)",
        "scenario.yaml:9: checks[1].expect.status[1]: expected an HTTP status code (100-599) or "
        "a list of them, got a number (99)",
    ],
    "deep-unknown-key": [
        "scenario.yaml:10: checks[0].expect.request.hedaers: unknown key (did you mean 'headers'?)",
        "scenario.yaml:11: checks[0].expect.request.absent_header: unknown key (did you mean "
        "'absent_headers'?)",
    ],
    "impossible-expectations": [
        "scenario.yaml:6: checks[0].expect.redirect: is compared only on a 3xx response",
        "scenario.yaml:8: checks[1].request.port: Gateway 'eg' has no listener on port 8080 "
        "(its ports: 80)",
        "scenario.yaml:9: checks[1].expect.backend: is compared only on a 200 or 204 response",
        "scenario.yaml:12: checks[2].expect.backends: shares add up to 0.7; they must add up to 1",
    ],
    "no-scenario-file": ["no scenario.yaml in ", "no-scenario-file"],
    # manifests: found by the CRD schemas when at hand, else by the reference model's field
    # check, in the same words (see MANIFEST_CHECKED and the two modes below)
    "manifest-field-typo": [
        "manifest-field-typo/route.yaml:8: HTTPRoute/backend: "
        "spec.hostname: unknown field (did you mean 'hostnames'?)"
    ],
    "manifest-backendref-singular": [
        "manifest-backendref-singular/route.yaml:13: "
        "HTTPRoute/backend: spec.rules[0].backendRef: unknown "
        "field (did you mean 'backendRefs'?)"
    ],
    "manifest-misindented-backendrefs": [
        "manifest-misindented-backendrefs/route.yaml:13: HTTPRoute/backend: "
        "spec.rules[0].matches[0].backendRefs: unknown field here: 'backendRefs' belongs in "
        "spec.rules[] (check its indentation)"
    ],
    "manifest-unknown-kind": [
        "manifest-unknown-kind/route.yaml:2: HTTPRoutes/backend: kind: "
        "unknown kind 'HTTPRoutes' in gateway.networking.k8s.io v1.6.1 "
        "(experimental channel) (did you mean 'HTTPRoute'?)"
    ],
    "manifest-unserved-version": [
        "manifest-unserved-version/route.yaml:1: HTTPRoute/backend: "
        "apiVersion: HTTPRoute is not served as "
        "gateway.networking.k8s.io/v2; served versions: v1, v1beta1"
    ],
    "manifest-grpc-field-typo": [
        "manifest-grpc-field-typo/route.yaml:10: GRPCRoute/backend: "
        "spec.rules[0].matches[0].method.sevice: unknown field (did you "
        "mean 'service'?)"
    ],
    "manifest-gateway-field-typo": [
        "manifest-gateway-field-typo/gateway.yaml:7: Gateway/eg: "
        "spec.listener: unknown field (did you mean 'listeners'?)"
    ],
    "manifest-duplicate-object": [
        "manifest-duplicate-object/route.yaml:17: metadata.name: "
        "duplicate HTTPRoute default/backend (first at ",
        "manifest-duplicate-object/route.yaml:1)",
    ],
    "manifest-list-bad-items": [
        "manifest-list-bad-items/list.yaml:3: items: a List needs "
        "items: a list of objects, got a mapping"
    ],
    "alias-bomb-scenario": [
        "alias-bomb-scenario/scenario.yaml:11: x-laughs.l3[1]: excessive "
        "YAML aliasing: 2476 of the 2501 values read so far come from "
        "expanding aliases",
        "write the values out or use fewer aliases",
    ],
    "alias-bomb-manifest": [
        "alias-bomb-manifest/gateway.yaml:20: data.l3[1]: excessive YAML aliasing: "
    ],
    "unaccepted-routes-unknown": [
        "unaccepted-routes-unknown/scenario.yaml:3: unaccepted_routes[1]: no route "
        "'default/backnd' in the manifests (did you mean 'default/backend'?)",
        "scenario.yaml:3: unaccepted_routes[2]: no route 'apps/backend' in the manifests",
    ],
    "query-in-flow-mapping": [
        "query-in-flow-mapping/scenario.yaml:5: invalid YAML: expected "
        "',' or '}', but got '?' at line 5, column 48",
        "quote a value holding '?' inside { } or [ ]",
    ],
    "merge-key": [
        "merge-key/scenario.yaml:9: checks[1].request: YAML merge keys (<<) are not supported"
    ],
    "boolean-key": [
        "boolean-key/scenario.yaml:8: checks[0].request.headers.on: key 'on' reads "
        "as True in YAML; quote it"
    ],
    "two-documents": [
        "two-documents/scenario.yaml:7: invalid YAML: but found another document "
        "at line 7, column 1"
    ],
}
# cases whose problems the manifest check finds (sandbox.scenario.crds.check_scenario_manifests), not
# the loading of the scenario
MANIFEST_CHECKED = {
    "manifest-field-typo",
    "manifest-backendref-singular",
    "manifest-misindented-backendrefs",
    "manifest-unknown-kind",
    "manifest-unserved-version",
    "manifest-grpc-field-typo",
    "manifest-gateway-field-typo",
}
NEEDS_CRDS = pytest.mark.skipif(
    not os.environ.get("SANDBOX_GATEWAY_API_CRDS"),
    reason="SANDBOX_GATEWAY_API_CRDS is not set to a folder of Gateway API CRDs",
)


@pytest.fixture(params=[pytest.param("crds", marks=NEEDS_CRDS), "model"])
def schema_mode(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """``crds``: the upstream CRDs at hand; ``model``: none at hand (an empty cache and a
    download that fails at once), so the reference model's field check runs."""
    if request.param == "model":
        from sandbox import settings

        monkeypatch.delenv("SANDBOX_GATEWAY_API_CRDS", raising=False)
        monkeypatch.delenv("SANDBOX_ENVOY_GATEWAY_INSTALL_YAML", raising=False)
        monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "empty-cache"))
        monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", "http://127.0.0.1:9/{version}/")
    return str(request.param)


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in BROKEN.iterdir() if p.is_dir()) == sorted(CASES)


def test_corpus_has_at_least_30_inputs() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_scenario_exits_2_with_precise_messages(case: str, schema_mode: str) -> None:
    start = time.monotonic()
    result = CliRunner().invoke(main, ["check", "--no-model", str(BROKEN / case)])
    assert time.monotonic() - start < 5, f"{case} took {time.monotonic() - start:.1f}s"
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    text = " ".join(result.stderr.split())
    pos = 0
    for expected in CASES[case]:
        found = text.find(" ".join(expected.split()), pos)
        assert found >= 0, f"{expected!r} not in (after {pos}):\n{result.stderr}"
        pos = found


@pytest.mark.parametrize("case", sorted(set(CASES) - {"no-scenario-file"} - MANIFEST_CHECKED))
def test_every_problem_has_file_and_line(case: str) -> None:
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(BROKEN / case)
    assert info.value.exit_code == EXIT_USAGE
    for problem in info.value.problems:
        assert problem.file.is_relative_to(BROKEN / case)
        assert problem.line and problem.line > 0


@pytest.mark.parametrize("case", sorted(MANIFEST_CHECKED))
def test_every_manifest_problem_has_file_line_and_field(case: str, schema_mode: str) -> None:
    from sandbox.scenario import crds as schema

    checked = schema.check_scenario_manifests(load_scenario(BROKEN / case), download=False)
    assert checked.method == schema_mode
    assert checked.problems
    for problem in checked.problems:
        assert Path(problem.file).resolve().is_relative_to(BROKEN / case)
        assert problem.line and problem.line > 0 and problem.field


def test_run_local_validates_the_manifests_before_running(schema_mode: str) -> None:
    result = CliRunner().invoke(
        main, ["run", "--provider", "local", str(BROKEN / "manifest-misindented-backendrefs")]
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert "spec.rules[0].matches[0].backendRefs: unknown field here" in result.stderr
    assert "PASS" not in result.stdout and "FAIL" not in result.stdout  # nothing was run


def test_run_of_a_broken_scenario_exits_2_before_any_target() -> None:
    result = CliRunner().invoke(
        main, ["run", str(BROKEN / "unknown-keys"), "--address", "127.0.0.1:9"]
    )
    assert result.exit_code == EXIT_USAGE
    assert "did you mean 'timeout'?" in result.stderr


def test_shipped_scenarios_all_load() -> None:
    folders = find_scenarios(SCENARIOS)
    assert any(f.name == "quickstart" for f in folders)
    for folder in folders:
        scenario = load_scenario(folder)
        assert scenario.checks and scenario.description


def test_quickstart_model() -> None:
    s = load_scenario(SCENARIOS / "quickstart")
    assert s.name == "quickstart"
    assert s.gateway == "eg"
    kinds = [o["kind"] for o in s.objects]
    assert kinds == [
        "GatewayClass",
        "Gateway",
        "ServiceAccount",
        "Service",
        "Deployment",
        "HTTPRoute",
    ]
    routed, query, other = s.checks
    assert routed.request.host == "www.example.com"
    assert routed.expect.status == [200] and routed.expect.backend == "backend"
    assert query.request.path == "/search?q=gateway&page=2"
    assert other.expect.status == [404]
    assert routed.consecutive == DEFAULT_CONSECUTIVE
    lines = (SCENARIOS / "quickstart" / "scenario.yaml").read_text().splitlines()
    assert lines[other.line - 1].strip() == "- name: another host is not routed"
    assert s.object_sources[1][1] == 11  # the Gateway's first line in quickstart.yaml


def test_defaults_overrides_and_normalisation(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        """\
        description: >-
          one
          two
        gateway: eg
        consecutive: 5
        timeout: 12
        tls: [{secret: web-cert, hosts: [a.example.com, "*.example.org"]}]
        checks:
          - name: list status, per-check override
            request: {host: a.example.com, method: post, port: 8080, path: "/x?y=1"}
            expect: {status: [301, 302], redirect: {scheme: https}}
            consecutive: 1
            timeout: 2.5
          - name: defaults
            request: {}
            expect:
              request: {method: put}
              backends: {a: 0.25, b: 0.75}
        """,
    )
    s = load_scenario(folder / "scenario.yaml")  # the file works as well as the folder
    assert s.description == "one two"
    a, b = s.checks
    assert (a.consecutive, a.timeout) == (1, 2.5)
    assert (b.consecutive, b.timeout) == (5, 12.0)
    assert a.request.method == "POST" and a.request.port == 8080
    assert a.expect.status == [301, 302]
    assert a.expect.redirect is not None and a.expect.redirect.scheme == "https"
    assert b.request.path == "/" and b.request.method == "GET" and b.expect.status == [200]
    assert b.expect.request is not None and b.expect.request.method == "PUT"
    assert b.expect.backends == {"a": 0.25, "b": 0.75}
    assert s.tls[0].secret == "web-cert" and s.tls[0].hosts == ["a.example.com", "*.example.org"]
    assert s.manifests == [folder / "gateway.yaml"]


def test_default_manifests_are_every_other_yaml_sorted(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        """\
        description: d
        gateway: eg
        checks: [{name: a, request: {}, expect: {status: 404}}]
        """,
        **{
            "b.yml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n",
            "notes.txt": "not yaml",
        },
    )
    s = load_scenario(folder)
    assert [p.name for p in s.manifests] == ["b.yml", "gateway.yaml"]
    assert [o["kind"] for o in s.objects] == ["Namespace", "Gateway"]


def test_duplicate_objects_and_tls_secret_clash(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        """\
        description: d
        gateway: eg
        tls: [{secret: cert, hosts: [a.example.com]}]
        checks: [{name: a, request: {}, expect: {status: 404}}]
        """,
        **{"more.yaml": GATEWAY + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: cert}\n"},
    )
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(folder)
    text = str(info.value)
    assert "more.yaml:1: metadata.name: duplicate Gateway default/eg (first at" in text
    assert "scenario.yaml:3: tls[0].secret: Secret 'cert' is also in the manifests" in text


def test_unknown_feature_suggests(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        """\
        description: d
        gateway: eg
        features: [HTTPRoute, HTTPRouteQueryParamMatchin]
        checks: [{name: a, request: {}, expect: {status: 404}}]
        """,
    )
    with pytest.raises(
        ScenarioInvalid,
        match=r"scenario.yaml:3: features\[1\]: unknown Gateway "
        r"API feature 'HTTPRouteQueryParamMatchin' \(did "
        r"you mean 'HTTPRouteQueryParamMatching'\?\)",
    ):
        load_scenario(folder)


def test_boolean_key_and_merge_key_are_reported(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        """\
        description: d
        gateway: eg
        base: &base {status: 404}
        checks:
          - name: a
            request: {headers: {on: x}}
            expect: {<<: *base}
        """,
    )
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(folder)
    text = str(info.value)
    assert "scenario.yaml:3: base: unknown key" in text
    assert (
        "scenario.yaml:6: checks[0].request.headers.on: key 'on' reads as True in YAML; "
        "quote it" in text
    )
    assert "scenario.yaml:7: checks[0].expect: YAML merge keys (<<) are not supported" in text


def test_resolve_by_name_path_and_typo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path / "lib" / "group" / "demo",
        """\
        description: d
        gateway: eg
        checks: [{name: a, request: {}, expect: {status: 404}}]
        """,
    )
    monkeypatch.setenv("SANDBOX_SCENARIOS", str(tmp_path / "lib"))
    assert resolve_scenario("demo") == tmp_path / "lib" / "group" / "demo"
    assert resolve_scenario(str(tmp_path / "lib/group/demo/scenario.yaml")).name == "demo"
    assert resolve_scenario("quickstart").name == "quickstart"  # repo scenarios still found
    with pytest.raises(InputError, match=r"no scenario named 'dmeo' \(did you mean 'demo'\?\)"):
        resolve_scenario("dmeo")
    with pytest.raises(InputError, match="scenario not found"):
        resolve_scenario("no/such/path")


def test_check_json_lists_every_problem_with_location() -> None:
    import json

    result = CliRunner().invoke(
        main,
        [
            "check",
            "--no-model",
            "-o",
            "json",
            str(BROKEN / "unknown-keys"),
            str(SCENARIOS / "quickstart"),
        ],
    )
    assert result.exit_code == EXIT_USAGE
    bad, good = json.loads(result.stdout)
    assert good["valid"] and good["name"] == "quickstart" and good["problems"] == []
    assert not bad["valid"]
    first = bad["problems"][0]
    assert first["file"].endswith("broken/unknown-keys/scenario.yaml")
    assert (first["line"], first["field"], first["message"]) == (
        3,
        "timout",
        "unknown key (did you mean 'timeout'?)",
    )
    assert first["text"].endswith(
        "unknown-keys/scenario.yaml:3: timout: unknown key (did you mean 'timeout'?)"
    )
    # the same keys whatever went wrong, and the same problem shape as `sandbox list -o json`
    assert (
        list(bad)
        == list(good)
        == [
            "arg",
            "name",
            "path",
            "file",
            "valid",
            "problems",
            "schema_note",
            "schema",
            "model",
            "model_note",
        ]
    )
    assert good["schema"] in ("crds", "model") and good["schema_note"].startswith("schema: ")
    assert bad["file"].endswith("broken/unknown-keys/scenario.yaml")
    result = CliRunner().invoke(
        main, ["check", "--no-model", "-o", "json", str(BROKEN / "no-scenario-file")]
    )
    [missing] = json.loads(result.stdout)
    assert list(missing) == list(good)
    assert [list(p) for p in missing["problems"]] == [list(first)]
    assert missing["problems"][0]["message"].startswith("no scenario.yaml in ")


def test_list_json_problems_have_the_check_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import shutil

    shutil.copytree(BROKEN / "unknown-keys", tmp_path / "lib" / "unknown-keys")
    shutil.copytree(SCENARIOS / "quickstart", tmp_path / "lib" / "quickstart")
    monkeypatch.setenv("SANDBOX_SCENARIOS", str(tmp_path / "lib"))
    monkeypatch.chdir(tmp_path)
    rows = {
        r["name"]: r for r in json.loads(CliRunner().invoke(main, ["list", "-o", "json"]).stdout)
    }
    bad, good = rows["unknown-keys"], rows["quickstart"]
    assert list(bad) == list(good)
    assert not bad["valid"] and bad["problems"][0]["line"] == 3
    assert list(bad["problems"][0]) == ["file", "line", "field", "message", "text"]
    assert good["valid"] and good["checks"] == 3 and good["problems"] == []


def test_check_exits_1_when_the_reference_model_disagrees(tmp_path: Path) -> None:
    src = SCENARIOS / "quickstart"
    folder = tmp_path / "quick-wrong"
    folder.mkdir()
    (folder / "quickstart.yaml").write_text((src / "quickstart.yaml").read_text())
    text = (
        (src / "scenario.yaml")
        .read_text()
        .replace(
            "request: {host: other.example.com, path: /get}\n    expect: {status: 404}",
            "request: {host: other.example.com, path: /get}\n    expect: {status: 200}",
        )
    )
    (folder / "scenario.yaml").write_text(text)
    result = CliRunner().invoke(main, ["check", str(folder)])
    assert result.exit_code == 1, result.output
    assert "model disagrees: quick-wrong" in result.stderr
    assert "scenario.yaml:21" in result.stderr
    ok = CliRunner().invoke(main, ["check", str(src)])
    assert ok.exit_code == 0 and "the reference model agrees" in ok.stdout


def test_list_flags_invalid_scenarios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_SCENARIOS", str(BROKEN))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "INVALID: 4 problem(s); see `sandbox check" in lines["unknown-keys"]
    assert lines["quickstart"].split(None, 1)[1].startswith("The Envoy Gateway quickstart")


def test_unaccepted_routes_is_a_typed_scenario_key(tmp_path: Path) -> None:
    # the key a cluster run's timeout hint names (targets/cluster.py) is one `sandbox check`
    # accepts, read as a typed attribute
    route = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: orphan, namespace: apps}\nspec:\n  parentRefs: [{name: eg}]\n"
    )
    folder = write(
        tmp_path / "s",
        """\
        description: a route meant not to be accepted
        gateway: eg
        unaccepted_routes: [orphan, apps/orphan]
        checks:
          - {name: a, request: {host: a.example.com}, expect: {status: 404}}
        """,
        **{"route.yaml": route},
    )
    assert load_scenario(folder).unaccepted_routes == ["orphan", "apps/orphan"]
    result = CliRunner().invoke(main, ["check", "--no-model", str(folder)])
    assert result.exit_code == 0, result.output
    assert load_scenario(SCENARIOS / "quickstart").unaccepted_routes == []
