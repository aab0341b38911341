"""docs/scenario-format.md stays true: its complete example is checked and run, its YAML
quoting advice is what PyYAML does, its `sandbox echo` + `--address` recipe works, and every
top-level key of scenario.yaml is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sandbox.cli.main import main
from sandbox.echo.http import EchoServer
from sandbox.scenario.load import scenario_schema

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scenario-format.md"
EXAMPLE = re.compile(
    r"<!-- example-file: (?P<name>[^ ]+) -->\n```yaml\n(?P<body>.*?)\n```", re.DOTALL
)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The doc's complete example, written out as the files it names."""
    found = {m["name"]: m["body"] for m in EXAMPLE.finditer(DOC.read_text())}
    assert sorted(found) == ["shop/app.yaml", "shop/scenario.yaml"]
    for name, body in found.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body + "\n")
    return tmp_path / "shop"


def test_the_complete_example_checks_and_runs(example: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(example)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok shop: 3 checks; ")
    assert result.stdout.rstrip().endswith("; the reference model agrees")
    result = CliRunner().invoke(main, ["run", str(example), "--provider", "local"])
    assert result.exit_code == 0, result.output
    assert "3 executed, 3 passed, 0 failed" in result.stdout
    assert "warning" not in result.stderr


def test_the_field_check_sample_is_what_check_prints(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox import settings

    monkeypatch.delenv("SANDBOX_GATEWAY_API_CRDS", raising=False)
    monkeypatch.delenv("SANDBOX_ENVOY_GATEWAY_INSTALL_YAML", raising=False)
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(example.parent / "empty-cache"))
    monkeypatch.setattr(settings, "GATEWAY_API_CRDS_URL", "http://127.0.0.1:9/{version}/")
    manifest = example / "app.yaml"
    manifest.write_text(manifest.read_text().replace("  hostnames:", "  hostname:"))
    monkeypatch.chdir(example.parent)
    result = CliRunner().invoke(main, ["check", "shop"])
    assert result.exit_code == 2
    sample = DOC.read_text().split("invalid: shop: ", 1)[1].split("```", 1)[0]
    assert "invalid: shop: " + sample.strip() in result.stderr


def test_a_question_mark_in_a_flow_mapping_is_what_the_doc_says() -> None:
    text = DOC.read_text()
    assert "expected ',' or '}', but got '?'" in text
    with pytest.raises(yaml.YAMLError) as info:
        yaml.load("{path: /search?q=gateway}", Loader=yaml.SafeLoader)
    assert "expected ',' or '}', but got '?'" in str(info.value)
    assert yaml.load('{path: "/search?q=gateway"}', Loader=yaml.SafeLoader) == {
        "path": "/search?q=gateway"
    }
    assert yaml.load("path: /search?q=gateway", Loader=yaml.SafeLoader) == {
        "path": "/search?q=gateway"
    }
    if hasattr(yaml, "CSafeLoader"):  # libyaml reads on, as the doc says
        assert yaml.load("{path: /search?q=gateway}", Loader=yaml.CSafeLoader) == {
            "path": "/search?q=gateway"
        }


def test_echo_and_address_as_the_doc_says(example: Path) -> None:
    # --address straight at the echo backend: the backend's answers pass, the 404 fails
    with EchoServer("127.0.0.1", 0, pod="web-7d9f8c-x2k4p", namespace="default").start() as echo:
        args = ["run", str(example), "--address", f"127.0.0.1:{echo.port}"]
        ok = CliRunner().invoke(main, [*args, "-k", "any other path"])
        assert ok.exit_code == 0, ok.output
        scenario = example / "scenario.yaml"
        scenario.write_text(scenario.read_text() + "timeout: 1\n")
        refused = CliRunner().invoke(main, [*args, "-k", "another host"])
        assert refused.exit_code == 1, refused.output
        assert "status  404       200" in refused.stdout


def test_every_top_level_key_is_documented() -> None:
    text = DOC.read_text()
    for key in scenario_schema()["properties"]:
        assert re.search(rf"^{key}:", text, re.MULTILINE), f"{key} is not in the format block"
