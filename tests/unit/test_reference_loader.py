"""Manifest loading for the reference model: documents, lines, folders, Lists, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import InputError
from sandbox.reference.loader import load_documents, load_manifests


def test_documents_keep_their_start_line_and_skip_empty_ones(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("# comment\n---\nkind: A\nmetadata: {name: a}\n---\n---\nkind: B\nmetadata: {name: b}\n")
    docs = load_documents(f)
    assert [(d["kind"], line) for d, line in docs] == [("A", 3), ("B", 7)]


def test_kind_list_is_flattened(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text("kind: List\nitems:\n  - {kind: A, metadata: {name: a}}\n  - {kind: B, metadata: {name: b}}\n")
    objects, sources = load_manifests([f])
    assert [o["kind"] for o in objects] == ["A", "B"]
    assert sources == [f"{f}:1", f"{f}:1"]


def test_folders_are_sorted_and_skip_scenario_yaml(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("kind: B\nmetadata: {name: b}\n")
    (tmp_path / "a.yaml").write_text("kind: A\nmetadata: {name: a}\n")
    (tmp_path / "scenario.yaml").write_text("description: x\n")
    (tmp_path / "notes.txt").write_text("ignored")
    objects, _ = load_manifests([tmp_path])
    assert [o["kind"] for o in objects] == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [("kind: A\n  bad: [\n", "invalid YAML", 2), ("- just\n- a list\n", "must be a mapping", 1)],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, fragment: str, line: int) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        load_documents(f)
    assert fragment in str(e.value) and e.value.file == str(f) and e.value.line == line


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \*\.yaml manifests"):
        load_manifests([tmp_path])
    with pytest.raises(InputError, match="no such file or folder"):
        load_manifests([tmp_path / "missing.yaml"])
