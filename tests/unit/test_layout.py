"""The layout rules of issue 12 that `lint-imports` (.importlinter) does not cover."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sandbox"
MAX_LINES = 600


def test_no_module_over_600_lines_without_a_reason() -> None:
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "Long on purpose:" not in doc:
            unexplained.append(f"{path.relative_to(PACKAGE.parent)} ({text.count(chr(10))} lines)")
    assert unexplained == [], (
        f"modules over {MAX_LINES} lines need a 'Long on purpose:' sentence in their docstring "
        f"(or a split): {unexplained}"
    )


def test_the_library_does_not_dodge_cycles_with_function_level_imports() -> None:
    # Only the pytest plugin imports lazily (every pytest run loads it; see its state module),
    # and never to dodge a cycle: lint-imports proves the layers hold with them counted.
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "pytest_plugin" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith(
                        "sandbox"
                    ):
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{inner.lineno}")
                    if isinstance(inner, ast.Import) and any(
                        a.name.startswith("sandbox") for a in inner.names
                    ):
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{inner.lineno}")
    assert found == []
