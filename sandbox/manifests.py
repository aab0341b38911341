"""Reading YAML input: one loader for scenario.yaml and for Kubernetes manifests.

Every command that reads a scenario's files (``check``, ``run``, ``explain``, the pytest plugin,
the schema check) reads them here, so that they all see the same objects and say the same
thing about the same mistake:

- **documents and lines**: each object of a manifest file with ``file:line`` of the object and
  of every field in it (the line of the field's key);
- **``kind: List``** is expanded into its ``items``, as kubectl does (its resource builder
  flattens lists), each item keeping its own line; a List inside a List is an error;
- **one wording** for YAML syntax errors (``invalid YAML: ... at line L, column C``, with the
  tab and flow-mapping hints) and for files that are not UTF-8 (``describe_decode_error``);
- **excessive aliasing is refused**, as Kubernetes' YAML decoders do (sigs.k8s.io/yaml over
  go-yaml; go-yaml v3 ``decode.go``: once more than 100 nodes came from alias expansion and more
  than 1000 were decoded, the share of nodes from aliases may not exceed 99%, falling to 10% for
  documents of 400,000 to 4,000,000 decoded nodes). Counting happens while the aliases are
  expanded, so a "billion laughs" document stops after a few thousand nodes;
- YAML merge keys (``<<``) and duplicate keys are errors; a key that YAML reads as a boolean or
  null (``on``, ``yes``, ``~``) must be quoted.

Problems are collected, never raised one by one: each is a :class:`Problem` (file, line, field,
message) and :class:`InvalidInput` (exit 2) carries all of them.

Long on purpose: every way a manifest file can be wrong (encoding, YAML, aliases, ``kind: List``,
missing keys) is worded here, once, for every reader; split, the wording would drift apart again.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import InputError

SCENARIO_FILES = ("scenario.yaml", "scenario.yml")  # a scenario folder's own description
MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_DEPTH = 64  # nesting; deeper is a recursive alias or not a manifest

# go-yaml v3 decode.go: alias_ratio_range_low / _high and the thresholds of unmarshal()
ALIAS_RATIO_LOW = 400_000
ALIAS_RATIO_HIGH = 4_000_000
ALIAS_MIN_ALIASED = 100
ALIAS_MIN_DECODED = 1000

FieldPath = tuple[str | int, ...]


def display_path(path: Path | str) -> str:
    """A path as a person typed it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def field_name(path: Iterable[str | int]) -> str:
    """``spec.rules[0].matches`` from ``("spec", "rules", 0, "matches")``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where (file, line, field) and what."""

    file: Path
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = display_path(self.file) + (f":{self.line}" if self.line else "")
        return f"{where}: " + (f"{self.field}: " if self.field else "") + self.message


class InvalidInput(InputError):
    """Every problem found in one input (exit 2). ``problems`` holds them one by one, sorted by
    file and line; the first one's location is ``file``/``line``/``field``."""

    def __init__(
        self,
        problems: list[Problem],
        *,
        name: str = "",
        what: str = "scenario",
        hint: str | None = None,
    ) -> None:
        unique = list(dict.fromkeys(problems))
        self.problems = sorted(unique, key=lambda p: (str(p.file), p.line or 0))
        first = self.problems[0]
        if len(self.problems) == 1:
            message = str(first)
        else:
            head = (
                f"{what} {name!r} has {len(self.problems)} problems:"
                if name
                else f"{len(self.problems)} problems:"
            )
            message = head + "".join(f"\n  {p}" for p in self.problems)
        super().__init__(message, hint=hint)  # the message already names file and line
        self.file = display_path(first.file)
        self.line = first.line
        self.field = first.field


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, else ``""``."""
    options = list(choices)
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower().replace("-", "_"): c for c in options}
        hit = lowered.get(word.lower().replace("-", "_"))
        match = [hit] if hit else []
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------------------------
# text and YAML errors
# --------------------------------------------------------------------------------------------


def describe_decode_error(e: UnicodeDecodeError) -> tuple[int | None, str]:
    """(line, message) for a file that is not UTF-8: where the first bad byte is, and the fix."""
    raw = e.object if isinstance(e.object, bytes) else b""
    if not raw:
        return None, f"not UTF-8 text ({e.reason}); save the file as UTF-8"
    bad_line = raw[: e.start].count(b"\n") + 1
    column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
    byte = f"byte 0x{raw[e.start]:02x}" if e.start < len(raw) else "a byte"
    return bad_line, (
        f"not UTF-8 text: {byte} at line {bad_line}, column {column} ({e.reason}); "
        "save the file as UTF-8"
    )


def read_text(
    file: Path,
    problems: list[Problem],
    *,
    line: int | None = None,
    field: str | None = None,
    owner: Path | None = None,
) -> str | None:
    """The file's text, or None with a problem (on ``owner`` at ``line`` when given)."""
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(
            Problem(owner or file, line, field, f"file not found: {display_path(file)}")
        )
    except IsADirectoryError:
        problems.append(
            Problem(owner or file, line, field, f"is a directory: {display_path(file)}")
        )
    except UnicodeDecodeError as e:
        bad_line, message = describe_decode_error(e)
        problems.append(Problem(owner or file, line if owner else bad_line or line, field, message))
    except OSError as e:
        problems.append(Problem(owner or file, line, field, f"cannot read: {e.strerror or e}"))
    return None


def yaml_problem(file: Path, e: yaml.YAMLError) -> Problem:
    """A YAML syntax error as a Problem: what, where, what it was inside, and the usual fix."""
    mark = getattr(e, "problem_mark", None)
    context_mark = getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    text = f"invalid YAML: {problem}"
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    if context:
        text += f" ({context}"
        if context_mark is not None:
            text += f" started at line {context_mark.line + 1}, column {context_mark.column + 1}"
        text += ")"
    if "'\\t'" in str(problem) or "\t" in str(problem):
        text += "; YAML indents with spaces, never tabs"
    elif "but got '?'" in str(problem) and context and "flow" in str(context):
        # PyYAML and go-yaml (kubectl's) end a plain scalar at '?' inside { } and [ ]
        text += "; quote a value holding '?' inside { } or [ ], e.g. {path: \"/a?b=c\"}"
    where = mark or context_mark
    return Problem(file, where.line + 1 if where is not None else None, None, text)


# --------------------------------------------------------------------------------------------
# YAML nodes -> Python values, with lines, under the alias limit
# --------------------------------------------------------------------------------------------


class ExcessiveAliasing(Exception):
    """Raised while building: the document expands aliases beyond the limit."""

    def __init__(self, path: FieldPath, decoded: int, aliased: int) -> None:
        super().__init__(path)
        self.path = path
        self.decoded = decoded
        self.aliased = aliased


def allowed_alias_ratio(decoded: int) -> float:
    """go-yaml v3 ``allowedAliasRatio``: 99% up to 400,000 decoded nodes, scaling down to 10%
    at 4,000,000."""
    if decoded <= ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


class Located:
    """Python values built from one YAML document's node tree, with the line of every key and
    value. Problems go to ``problems`` (shared by the caller), with ``file`` and the field."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.value_lines: dict[FieldPath, int] = {}
        self.key_lines: dict[FieldPath, int] = {}
        self._constructor = yaml.SafeLoader("")
        self._built: set[int] = set()  # nodes built once: built again, they are alias expansions
        self._decoded = 0
        self._aliased = 0
        self._alias_depth = 0
        self._alias_entry: FieldPath = ()

    def line(self, path: FieldPath) -> int | None:
        """Line of a field: its key's line, else its value's, else the nearest parent's."""
        p = path
        while True:
            if p in self.key_lines:
                return self.key_lines[p]
            if p in self.value_lines:
                return self.value_lines[p]
            if not p:
                return None
            p = p[:-1]

    def lines(self, prefix: FieldPath = ()) -> dict[FieldPath, int]:
        """Field path (relative to ``prefix``) -> line, key lines over value lines."""
        n = len(prefix)
        out = {p[n:]: line for p, line in self.value_lines.items() if p[:n] == prefix}
        out.update({p[n:]: line for p, line in self.key_lines.items() if p[:n] == prefix})
        return out

    def problem(self, path: FieldPath, message: str, *, line: int | None = None) -> None:
        self.problems.append(
            Problem(
                self.file,
                line if line is not None else self.line(path),
                field_name(path) or None,
                message,
            )
        )

    def build_document(self, node: yaml.Node) -> Any:
        """The document's value; excessive aliasing is a problem (and the value None)."""
        try:
            return self.build(node)
        except ExcessiveAliasing as e:
            where = e.path
            line = None
            for i in range(len(where), -1, -1):  # the key that holds the alias, as written
                if where[:i] in self.key_lines:
                    line = self.key_lines[where[:i]]
                    break
            self.problem(
                where,
                f"excessive YAML aliasing: {e.aliased} of the {e.decoded} values read "
                "so far come from expanding aliases (*name); Kubernetes' YAML decoder "
                'refuses such a document too ("document contains excessive aliasing"): '
                "write the values out or use fewer aliases",
                line=line,
            )
            return None

    def build(self, node: yaml.Node, path: FieldPath = (), depth: int = 0) -> Any:
        self.value_lines.setdefault(path, node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            self.problem(path, "nested too deeply (recursive YAML alias?)")
            return None
        expanding = id(node) in self._built
        if expanding:
            if self._alias_depth == 0:
                self._alias_entry = path
            self._alias_depth += 1
        else:
            self._built.add(id(node))
        try:
            return self._build(node, path, depth)
        finally:
            if expanding:
                self._alias_depth -= 1

    def _count(self, path: FieldPath) -> None:
        self._decoded += 1
        if self._alias_depth:
            self._aliased += 1
        if (
            self._aliased > ALIAS_MIN_ALIASED
            and self._decoded > ALIAS_MIN_DECODED
            and self._aliased / self._decoded > allowed_alias_ratio(self._decoded)
        ):
            raise ExcessiveAliasing(self._alias_entry or path, self._decoded, self._aliased)

    def _build(self, node: yaml.Node, path: FieldPath, depth: int) -> Any:
        self._count(path)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problem(
                        path,
                        "YAML merge keys (<<) are not supported",
                        line=key_node.start_mark.line + 1,
                    )
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem(
                        path,
                        "a mapping key must be a plain value",
                        line=key_node.start_mark.line + 1,
                    )
                    continue
                key = self._scalar(key_node, path)
                if isinstance(key, bool) or key is None:
                    self.problem(
                        (*path, str(key_node.value)),
                        f"key {key_node.value!r} reads as {key!r} in YAML; quote it",
                        line=key_node.start_mark.line + 1,
                    )
                    continue
                key = str(key)
                key_path: FieldPath = (*path, key)
                if key in out:
                    self.problem(
                        key_path,
                        f"duplicate key (first at line {self.key_lines[key_path]})",
                        line=key_node.start_mark.line + 1,
                    )
                    continue
                self.key_lines.setdefault(key_path, key_node.start_mark.line + 1)
                out[key] = self.build(value_node, key_path, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: FieldPath) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            self.problem(
                path,
                f"invalid value: {getattr(e, 'problem', None) or e}",
                line=node.start_mark.line + 1,
            )
            return None


def load_yaml_document(file: Path, problems: list[Problem]) -> tuple[Any, Located] | None:
    """The one YAML document of ``file`` (scenario.yaml) and its lines; None when the file
    cannot be read or parsed (the problem is in ``problems``). An empty file gives (None, ...)."""
    text = read_text(file, problems)
    if text is None:
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        problems.append(yaml_problem(file, e))
        return None
    loc = Located(file, problems)
    return (loc.build_document(node) if node is not None else None), loc


# --------------------------------------------------------------------------------------------
# manifests
# --------------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """One Kubernetes object of a manifest file, and where it is."""

    obj: dict[str, Any]
    file: Path
    line: int  # the object's first line (1-based)
    document: int = 1  # 1-based document number in the file
    item: int | None = None  # index in the ``items`` of a ``kind: List``, else None
    lines: dict[FieldPath, int] = field(default_factory=dict)  # field path -> line

    def line_of(self, path: Iterable[str | int]) -> int:
        """Line of ``path`` or of its nearest ancestor known."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.line

    @property
    def kind(self) -> str:
        kind = self.obj.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str | None:
        meta = self.obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else None

    @property
    def namespace(self) -> str:
        """The logical namespace: as written, ``default`` when none."""
        meta = self.obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return ns if isinstance(ns, str) and ns else "default"

    @property
    def label(self) -> str:
        """``Kind/name`` for messages."""
        return f"{self.kind or '<no kind>'}/{self.name or '<unnamed>'}"

    @property
    def source(self) -> str:
        """``file:line``."""
        return f"{self.file}:{self.line}"


def describe_value(value: Any) -> str:
    """A value as words for messages: ``a string ('3')``, ``a number (1)``, ``a list``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return f"{type(value).__name__} ({value})"


def load_manifest_file(file: Path, problems: list[Problem]) -> list[Manifest]:
    """The objects of one manifest file, ``kind: List`` expanded. Problems go to ``problems``."""
    text = read_text(file, problems)
    if text is None:
        return []
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as e:
        problems.append(yaml_problem(file, e))
        return []
    out: list[Manifest] = []
    for n, node in enumerate(nodes, 1):
        if node is None:
            continue
        line = node.start_mark.line + 1
        loc = Located(file, problems)
        obj = loc.build_document(node)
        if obj is None:
            continue
        if not isinstance(obj, dict):
            tip = (
                " (write each object as its own YAML document, separated by ---)"
                if isinstance(obj, list)
                else ""
            )
            problems.append(
                Problem(
                    file,
                    line,
                    None,
                    f"a manifest must be a mapping, got {describe_value(obj)}" + tip,
                )
            )
            continue
        if obj.get("kind") == "List":
            out.extend(_list_items(obj, file, n, loc, problems))
            continue
        out.append(Manifest(obj, file, line, n, None, loc.lines()))
    return out


def _list_items(
    obj: dict[str, Any], file: Path, document: int, loc: Located, problems: list[Problem]
) -> list[Manifest]:
    """The items of a ``kind: List`` (kubectl flattens it), each with its own lines."""
    items = obj.get("items")
    if not isinstance(items, list):
        loc.problem(
            ("items",), f"a List needs items: a list of objects, got {describe_value(items)}"
        )
        return []
    out: list[Manifest] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            loc.problem(
                ("items", i),
                f"a List item must be an object (a mapping), got {describe_value(item)}",
            )
            continue
        if item.get("kind") == "List":
            loc.problem(
                ("items", i, "kind"),
                "a List inside a List is not supported; list the objects themselves",
            )
            continue
        line = loc.line(("items", i)) or loc.line(()) or 1
        out.append(Manifest(item, file, line, document, i, loc.lines(("items", i))))
    return out


def check_objects(manifests: list[Manifest], problems: list[Problem]) -> list[Manifest]:
    """The objects that have apiVersion, kind and metadata.name and are not duplicates (same
    kind, logical namespace and name); each other one is a problem."""
    out: list[Manifest] = []
    seen: dict[tuple[str, str, str], Manifest] = {}
    for m in manifests:
        obj = m.obj
        kind_text = obj.get("kind") if isinstance(obj.get("kind"), str) else "object"
        label = f"{kind_text} {m.name!r}" if m.name else f"a {kind_text}"
        ok = True
        for key in ("apiVersion", "kind"):
            value = obj.get(key)
            if not isinstance(value, str) or not value:
                problems.append(
                    Problem(
                        m.file,
                        m.lines.get((key,), m.line),
                        key,
                        f"missing or not a string (in {label})",
                    )
                )
                ok = False
        if not m.name:
            problems.append(
                Problem(
                    m.file,
                    m.lines.get(("metadata",), m.line),
                    "metadata.name",
                    f"missing or not a string (in {label})",
                )
            )
            ok = False
        if not ok:
            continue
        ident = (m.kind, m.namespace, str(m.name))
        first = seen.get(ident)
        if first is not None:
            problems.append(
                Problem(
                    m.file,
                    m.line,
                    "metadata.name",
                    f"duplicate {ident[0]} {ident[1]}/{ident[2]} (first at "
                    f"{display_path(first.file)}:{first.line})",
                )
            )
            continue
        seen[ident] = m
        out.append(m)
    return out


def folder_manifests(folder: Path) -> list[Path]:
    """The manifests of a folder: every ``*.yaml`` / ``*.yml`` but scenario.yaml, sorted (not
    recursive)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in MANIFEST_SUFFIXES and p.name not in SCENARIO_FILES
    )


def manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the manifests of named folders (``folder_manifests``).
    A path that is neither, or a folder without manifests, is an InputError."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = folder_manifests(p)
            if not found:
                raise InputError(f"no *.yaml manifests in folder {p}", file=str(p))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"no such file or folder: {p}", file=str(p))
    return out


def load_manifests(files: Iterable[Path], problems: list[Problem]) -> list[Manifest]:
    """Every valid object of ``files`` in order (``load_manifest_file`` then
    ``check_objects``); the problems go to ``problems``."""
    found: list[Manifest] = []
    for f in files:
        found.extend(load_manifest_file(f, problems))
    return check_objects(found, problems)


def load_paths(paths: Iterable[str | Path]) -> list[Manifest]:
    """The objects of files and folders (``sandbox explain -f``); raises InvalidInput listing
    every problem."""
    problems: list[Problem] = []
    manifests = load_manifests(manifest_files(paths), problems)
    if problems:
        raise InvalidInput(problems, what="manifests")
    return manifests


__all__ = [
    "SCENARIO_FILES",
    "ExcessiveAliasing",
    "FieldPath",
    "InvalidInput",
    "Located",
    "Manifest",
    "Problem",
    "allowed_alias_ratio",
    "check_objects",
    "describe_decode_error",
    "describe_value",
    "did_you_mean",
    "display_path",
    "field_name",
    "folder_manifests",
    "load_manifest_file",
    "load_manifests",
    "load_paths",
    "load_yaml_document",
    "manifest_files",
    "read_text",
    "yaml_problem",
]
