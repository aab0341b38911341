"""The one manifest loader (sandbox.manifests): documents and lines, kind: List, errors, the
YAML alias limit; and that check, explain and the schema check read the same objects."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox import manifests
from sandbox.cli.main import main
from sandbox.errors import EXIT_USAGE, InputError
from sandbox.manifests import Problem, allowed_alias_ratio, load_manifest_file, load_paths
from sandbox.reference.loader import load_manifests
from sandbox.scenario import crds as schema
from sandbox.scenario.load import ScenarioInvalid, load_scenario

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart"


def _load(f: Path) -> tuple[list[manifests.Manifest], list[Problem]]:
    problems: list[Problem] = []
    return load_manifest_file(f, problems), problems


def test_documents_keep_their_start_line_and_skip_empty_ones(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(
        "# comment\n---\nkind: A\nmetadata: {name: a}\n---\n---\nkind: B\nmetadata:\n  name: b\n"
    )
    found, problems = _load(f)
    assert problems == []
    assert [(m.kind, m.line, m.document) for m in found] == [("A", 3, 1), ("B", 7, 3)]
    assert found[1].line_of(("metadata", "name")) == 9  # the key's line
    assert found[1].line_of(("metadata", "missing")) == 8  # the nearest known parent


def test_kind_list_is_expanded_and_each_item_keeps_its_line(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - {apiVersion: v1, kind: A, metadata: {name: a}}\n"
        "  - apiVersion: v1\n    kind: B\n    metadata:\n      name: b\n"
    )
    objects, sources = load_manifests([f])
    assert [o["kind"] for o in objects] == ["A", "B"]
    assert sources == [f"{f}:4", f"{f}:5"]
    found, _ = _load(f)
    assert found[1].item == 1 and found[1].line_of(("metadata", "name")) == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: List\nitems: {a: 1}\n",
            "items: a List needs items: a list of objects, got a mapping",
        ),
        (
            "kind: List\nitems: [3]\n",
            "items[0]: a List item must be an object (a mapping), got a number (3)",
        ),
        ("kind: List\nitems:\n- {kind: List, items: []}\n", "items[0].kind: a List inside a List"),
    ],
)
def test_bad_lists_are_problems(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "list.yaml"
    f.write_text(text)
    found, problems = _load(f)
    assert found == [] and message in str(problems[0])


def test_a_folder_with_a_kind_list_manifest_is_the_same_for_check_explain_and_schema(
    tmp_path: Path,
) -> None:
    # the same objects as quickstart, as one `kind: List`: check and explain both route them
    folder = tmp_path / "listed"
    folder.mkdir()
    shutil.copy(QUICKSTART / "scenario.yaml", folder)
    body = (QUICKSTART / "quickstart.yaml").read_text()
    docs = [d for d in body.split("\n---\n") if d.strip()]
    items = "".join("  - " + "\n    ".join(d.strip().splitlines()) + "\n" for d in docs)
    (folder / "all.yaml").write_text("apiVersion: v1\nkind: List\nitems:\n" + items)
    scenario = load_scenario(folder)
    assert [o["kind"] for o in scenario.objects] == [
        o["kind"] for o in load_scenario(QUICKSTART).objects
    ]
    check = CliRunner().invoke(main, ["check", str(folder)])
    assert check.exit_code == 0, check.output
    explain = CliRunner().invoke(
        main, ["explain", "-f", str(folder), "-H", "Host: www.example.com", "http://127.0.0.1/get"]
    )
    assert explain.exit_code == 0 and "->  200" in explain.stdout
    assert [o.obj for o in schema.load_manifest_file(folder / "all.yaml")] == scenario.objects


def test_folders_are_sorted_and_skip_scenario_yaml(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("apiVersion: v1\nkind: B\nmetadata: {name: b}\n")
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: A\nmetadata: {name: a}\n")
    (tmp_path / "scenario.yaml").write_text("description: x\n")
    (tmp_path / "notes.txt").write_text("ignored")
    objects, _ = load_manifests([tmp_path])
    assert [o["kind"] for o in objects] == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        ("kind: A\n  bad: [\n", "invalid YAML", 2),
        ("- just\n- a list\n", "a manifest must be a mapping, got a list", 1),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a, name: b}\n", "duplicate key", 3),
        ("apiVersion: v1\nkind: A\n", "metadata.name: missing or not a string (in a A)", 1),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, fragment: str, line: int) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        load_paths([f])
    assert e.value.exit_code == EXIT_USAGE
    assert fragment in str(e.value) and e.value.file == str(f) and e.value.line == line


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \*\.yaml manifests"):
        load_manifests([tmp_path])
    with pytest.raises(InputError, match="no such file or folder"):
        load_manifests([tmp_path / "missing.yaml"])


# --- aliases ---------------------------------------------------------------------------------


def laughs(levels: int, width: int = 9, indent: str = "") -> str:
    """A "billion laughs" document: each level a list of ``width`` aliases of the one before."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_the_alias_ratio_follows_go_yaml() -> None:
    assert allowed_alias_ratio(1000) == 0.99
    assert allowed_alias_ratio(400_000) == 0.99
    assert allowed_alias_ratio(2_200_000) == pytest.approx(0.545)
    assert allowed_alias_ratio(4_000_000) == 0.10


def test_an_alias_bomb_manifest_is_refused_fast(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + laughs(12, indent="  ")
    )  # 9**12 values when expanded
    start = time.monotonic()
    found, problems = _load(f)
    assert time.monotonic() - start < 2
    assert found == []
    assert len(problems) == 1
    text = str(problems[0])
    assert text.startswith(f"{manifests.display_path(f)}:")
    assert "excessive YAML aliasing" in text and "write the values out" in text
    assert problems[0].field is not None and problems[0].field.startswith("data.l")


def test_modest_aliases_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"
        "data:\n  a: &v hello\n"
        + "".join(f"  k{i}: *v\n" for i in range(300))
        + laughs(2, indent="  ")
    )
    found, problems = _load(f)
    assert problems == [] and found[0].obj["data"]["k299"] == "hello"
    assert found[0].obj["data"]["l2"][8][8][8] == "lol"


def test_an_alias_bomb_in_scenario_yaml_exits_2_fast(tmp_path: Path) -> None:
    folder = tmp_path / "bomb"
    shutil.copytree(QUICKSTART, folder)
    with (folder / "scenario.yaml").open("a") as f:
        f.write("x-bomb:\n" + laughs(12, indent="  "))
    start = time.monotonic()
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(folder)
    assert time.monotonic() - start < 2
    assert "excessive YAML aliasing" in str(info.value)
    result = CliRunner().invoke(main, ["check", "--no-model", str(folder)])
    assert result.exit_code == EXIT_USAGE
    assert "scenario.yaml:" in result.stderr and "x-bomb.l" in result.stderr


def test_a_recursive_alias_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    f = tmp_path / "loop.yaml"
    f.write_text("apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: &x\n  a: [*x]\n")
    _found, problems = _load(f)
    assert "nested too deeply (recursive YAML alias?)" in str(problems[0])
