"""``sandbox explain`` on the tutorial quickstart, in text and JSON, and its input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.cli.explain import parse_url
from sandbox.cli.main import main
from sandbox.errors import EXIT_USAGE, InputError

DATA = Path(__file__).resolve().parents[1] / "data" / "reference"
QUICKSTART = str(DATA / "quickstart.yaml")
KEYS = [
    "status",
    "gateway",
    "listener",
    "route",
    "rule",
    "backends",
    "request",
    "response_headers",
    "redirect",
    "reason",
]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["explain", *args])
    return result.exit_code, result.stdout, result.stderr


def test_quickstart_www_example_com_json() -> None:
    code, out, _ = run("-f", QUICKSTART, "http://www.example.com/get?x=1", "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert list(data) == KEYS
    assert data["status"] == 200
    assert (data["gateway"], data["listener"], data["route"], data["rule"]) == (
        "default/eg",
        "http",
        "default/backend",
        0,
    )
    assert data["backends"] == [
        {"name": "backend", "namespace": "default", "port": 3000, "weight": 1}
    ]
    assert data["request"] == {
        "method": "GET",
        "host": "www.example.com",
        "path": "/get?x=1",
        "headers": {},
    }
    assert data["redirect"] is None and data["response_headers"] == {}


def test_quickstart_other_host_is_404_json() -> None:
    code, out, _ = run("-f", QUICKSTART, "-o", "json", "http://other.example.com/get")
    assert code == 0
    data = json.loads(out)
    assert list(data) == KEYS
    assert (data["status"], data["route"], data["rule"], data["backends"]) == (404, None, None, [])
    assert "www.example.com do not match other.example.com" in data["reason"]


def test_quickstart_text_output_names_listener_route_and_losers() -> None:
    code, out, _ = run(
        "-f", str(DATA), "-H", "X-Env: canary", "-X", "post", "http://www.example.com/get"
    )
    assert code == 0
    assert out.splitlines()[0] == "POST http://www.example.com/get  ->  200"
    assert "listener   http" in out
    assert "route      default/backend, rule 0" in out
    assert "default/backend:3000  weight 1 (100%)  (Deployments: backend)" in out
    assert "X-Env: canary" in out
    code, out, _ = run("-f", QUICKSTART, "http://other.example.com/")
    assert code == 0
    assert out.splitlines()[0] == "GET http://other.example.com/  ->  404"
    assert "other candidates" in out and "do not match other.example.com" in out


def test_a_port_of_no_listener_names_the_listeners_and_the_port_to_use() -> None:
    # a failure's curl line carries the forwarded port: it used to get a wrong 404
    code, out, err = run(
        "-f", QUICKSTART, "-H", "Host: www.example.com", "http://127.0.0.1:18080/get"
    )
    assert code == EXIT_USAGE and out == ""
    assert (
        "error: URL: port 18080 matches no listener of Gateway default/eg (listeners: "
        "http:80); the port in a failure's curl line is the forwarded one (kubectl "
        "port-forward or the local provider): use http://www.example.com/get or --port 80"
    ) in err
    code, out, err = run("-f", QUICKSTART, "-o", "json", "http://www.example.com:8080/")
    assert code == EXIT_USAGE and "use http://www.example.com/ or --port 80" in err
    code, out, err = run("-f", QUICKSTART, "https://www.example.com/")
    assert code == EXIT_USAGE
    assert (
        "port 443 matches no listener of Gateway default/eg (listeners: http:80); it has "
        "no HTTPS listener at all" in err
    )


def test_port_option_names_the_listener_port_behind_a_forwarded_url() -> None:
    code, out, _ = run(
        "-f",
        QUICKSTART,
        "--port",
        "80",
        "-H",
        "Host: www.example.com",
        "-o",
        "json",
        "http://127.0.0.1:18080/get",
    )
    assert code == 0, out
    data = json.loads(out)
    assert (data["status"], data["listener"], data["route"]) == (200, "http", "default/backend")
    code, out, _ = run(
        "-f",
        QUICKSTART,
        "--port",
        "80",
        "-H",
        "Host: www.example.com",
        "http://127.0.0.1:18080/get",
    )
    assert out.splitlines()[0] == (
        "GET http://127.0.0.1:18080/get (Host: www.example.com) [listener port 80]  ->  200"
    )
    code, _, err = run("-f", QUICKSTART, "--port", "81", "http://www.example.com/")
    assert code == EXIT_USAGE
    assert "--port: --port 81 matches no listener of Gateway default/eg (listeners: http:80)" in err


TWO_GATEWAYS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other}
spec: {gatewayClassName: eg, listeners: [{name: alt, protocol: HTTP, port: 8080}]}
"""


def _scenario(tmp_path: Path, gateway: str = "eg", manifests: str = "", port: int = 80) -> Path:
    folder = tmp_path / "scenarios" / "two-gateways"
    folder.mkdir(parents=True)
    (folder / "app.yaml").write_text((DATA / "quickstart.yaml").read_text())
    (folder / "other.yaml").write_text(TWO_GATEWAYS)
    (folder / "scenario.yaml").write_text(
        f"description: Two Gateways.\ngateway: {gateway}\n{manifests}checks:\n"
        f"  - name: routed\n    request: {{host: www.example.com, port: {port}}}\n"
        "    expect: {status: 200}\n"
    )
    return folder


def test_f_takes_a_scenario_folder_its_file_or_its_name_and_its_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _scenario(tmp_path, gateway="other", port=8080)
    monkeypatch.chdir(tmp_path)  # ./scenarios is where names are looked up
    for arg in (str(folder), str(folder / "scenario.yaml"), "two-gateways"):
        # two Gateways, no --gateway: the scenario's own `gateway: other` is taken
        code, out, err = run("-f", arg, "-o", "json", "http://www.example.com:8080/")
        assert code == 0, err
        assert json.loads(out)["gateway"] == "default/other"
    code, out, err = run(
        "-f", "two-gateways", "--gateway", "eg", "-o", "json", "http://www.example.com/"
    )
    assert code == 0 and json.loads(out)["status"] == 200, err
    code, _, err = run("-f", "no-such-scenario", "http://www.example.com/")
    assert code == EXIT_USAGE
    assert "-f: no such file, folder or scenario: no-such-scenario" in err
    assert "sandbox list" in err  # where names are looked up


def test_a_scenario_brings_only_its_own_manifests(tmp_path: Path) -> None:
    folder = _scenario(tmp_path, manifests="manifests: [app.yaml]\n")
    code, out, err = run("-f", str(folder), "-o", "json", "http://www.example.com/")
    assert code == 0, err
    assert json.loads(out)["gateway"] == "default/eg"  # other.yaml is not the scenario's
    code, _, err = run("-f", str(folder), "--gateway", "other", "http://www.example.com/")
    assert code == EXIT_USAGE and "no Gateway named other" in err


def test_an_invalid_scenario_is_read_as_a_folder_of_manifests_with_a_note(tmp_path: Path) -> None:
    folder = _scenario(tmp_path)
    (folder / "scenario.yaml").write_text("description: being written\ngateway: eg\n")
    code, out, err = run(
        "-f", str(folder), "--gateway", "eg", "-o", "json", "http://www.example.com/"
    )
    assert code == 0, err
    assert json.loads(out)["status"] == 200
    assert "scenario.yaml is not valid (1 problem(s); `sandbox check " in err
    assert "reading every manifest of the folder" in err


def test_gateway_flag_and_ambiguity(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text((DATA / "quickstart.yaml").read_text())
    (tmp_path / "b.yml").write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: eg2}\n"
        "spec: {gatewayClassName: eg, listeners: [{name: http, protocol: HTTP, port: 80}]}\n"
    )
    (tmp_path / "scenario.yaml").write_text("description: not a manifest\n")  # skipped in folders
    code, _, err = run("-f", str(tmp_path), "http://www.example.com/")
    assert code == EXIT_USAGE and "--gateway" in err and "default/eg, default/eg2" in err
    code, out, _ = run(
        "-f", str(tmp_path), "--gateway", "default/eg2", "-o", "json", "http://www.example.com/"
    )
    assert code == 0 and json.loads(out)["status"] == 404
    code, out, _ = run(
        "-f", str(tmp_path), "--gateway", "eg", "-o", "json", "http://www.example.com/"
    )
    assert code == 0 and json.loads(out)["status"] == 200


def test_host_header_and_scheme_less_url_work_as_in_curl() -> None:
    # the request line of a failed check (curl -H 'Host: www.example.com' http://127.0.0.1:N/get)
    # asks the same question when pasted here
    code, out, _ = run("-f", QUICKSTART, "-H", "Host: www.example.com", "http://127.0.0.1/get")
    assert code == 0
    assert out.startswith("GET http://127.0.0.1/get (Host: www.example.com)  ->  200\n")
    code, out, _ = run("-f", QUICKSTART, "-o", "json", "www.example.com/get")
    assert code == 0 and json.loads(out)["status"] == 200
    code, out, _ = run(
        "-f",
        QUICKSTART,
        "-o",
        "json",
        "-H",
        "host: other.example.com",
        "http://www.example.com/get",
    )
    assert json.loads(out)["status"] == 404


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-f", "/no/such/file.yaml", "http://x/"], "no such file or folder"),
        (["-f", QUICKSTART, "ftp://x/"], "invalid URL"),
        (["-f", QUICKSTART, "http://x:notaport/"], "invalid URL"),
        (["-f", QUICKSTART, "-H", "no-colon", "http://x/"], "invalid header"),
        (["-f", QUICKSTART, "-H", "Host:", "http://x/"], "empty Host"),
        (["-f", QUICKSTART, "--gateway", "default/nope", "http://x/"], "no Gateway default/nope"),
    ],
)
def test_bad_input_exits_2_without_traceback(args: list[str], fragment: str) -> None:
    code, out, err = run(*args)
    assert code == EXIT_USAGE
    assert fragment in err
    assert "Traceback" not in out + err


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Service\nmetadata: {name: x\n")
    code, _, err = run("-f", str(bad), "http://x/")
    assert code == EXIT_USAGE and f"{bad}:" in err and "invalid YAML" in err


def test_non_utf8_manifest_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "svc.yaml"
    bad.write_bytes(b"apiVersion: v1\nkind: Service\nmetadata:\n  name: caf\xe9\n")
    code, _, err = run("-f", str(bad), "http://x/")
    assert code == EXIT_USAGE
    assert f"{bad}:4: not UTF-8 text: byte 0xe9 at line 4, column 12" in err
    assert "Traceback" not in err


def test_bad_manifest_field_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "route.yaml"
    bad.write_text(
        (DATA / "quickstart.yaml")
        .read_text()
        .replace("type: PathPrefix\n            value: /", "type: Prefix\n            value: /")
    )
    code, _, err = run("-f", str(bad), "http://x/")
    assert code == EXIT_USAGE
    assert "spec.rules[0].matches[0].path.type" in err and "HTTPRoute default/backend" in err
    assert f"{bad}:" in err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://www.example.com/get?x=1", ("http", "www.example.com", 80, "/get?x=1")),
        ("https://a.example.com", ("https", "a.example.com", 443, "/")),
        ("http://a.example.com:8080/p", ("http", "a.example.com:8080", 8080, "/p")),
        ("http://a.example.com:80/p", ("http", "a.example.com", 80, "/p")),
    ],
)
def test_parse_url(url: str, expected: tuple[str, str, int, str]) -> None:
    assert parse_url(url) == expected


def test_parse_url_rejects_missing_host() -> None:
    with pytest.raises(InputError):
        parse_url("http:///path")


def test_grpc_call(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        (DATA / "quickstart.yaml").read_text()
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: eg}]
  hostnames: [grpc.example.com]
  rules:
    - matches: [{method: {service: pkg.Echo, method: Echo}, headers: [{name: version, value: two}]}]
      backendRefs: [{name: backend, port: 3000}]
"""
    )
    code, out, _ = run(
        "-f",
        str(tmp_path),
        "--grpc",
        "pkg.Echo/Echo",
        "-H",
        "version: two",
        "-o",
        "json",
        "http://grpc.example.com/",
    )
    assert code == 0
    data = json.loads(out)
    assert (data["status"], data["route"], data["request"]["path"]) == (
        200,
        "default/g",
        "/pkg.Echo/Echo",
    )
    code, out, _ = run("-f", str(tmp_path), "--grpc", "pkg.Echo/Echo", "http://grpc.example.com/")
    assert code == 0 and "->  404" in out and "header version absent" in out
    code, _, err = run("-f", str(tmp_path), "--grpc", "nomethod", "http://grpc.example.com/")
    assert code == EXIT_USAGE and "SERVICE/METHOD" in err
