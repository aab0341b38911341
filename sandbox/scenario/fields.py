"""The reference model's field check: unknown and misplaced fields of Gateway API objects.

The reference model reads the fields it models and ignores the rest, so a typo (``hostname:``
for ``hostnames:``, ``backendRef:``, a ``backendRefs`` indented into a match) would silently
change what it answers. Without the CRD schemas at hand (:mod:`sandbox.scenario.crds` validates with
them when they are), every object of the Gateway API groups is checked here against the field
table of the pinned release, ``sandbox/data/gateway-api-fields.json``: every kind, version and
field of the Gateway API v1.6.1 experimental CRDs, generated from them by
``python -m sandbox.scenario.fields_table CRD_DIR > sandbox/data/gateway-api-fields.json`` (a test
regenerates it from the upstream CRDs and compares, when they are at hand).

A field table node is ``null`` (a value, or an object whose fields are open), ``{"[]": node}``
(a list of node), ``{"*": node}`` (a map whose values are node) or ``{name: node, ...}`` (an
object with exactly these fields). ``metadata`` is Kubernetes ObjectMeta (``OBJECT_META``).

Only names are checked, not types or values: the model's parsers (``objects.py``) refuse the
values it cannot use, and the API server refuses the rest on a cluster.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from sandbox.manifests import FieldPath, Manifest, did_you_mean

GATEWAY_API_GROUPS = ("gateway.networking.k8s.io", "gateway.networking.x-k8s.io")
TABLE = "data/gateway-api-fields.json"
LIST = "[]"
MAP = "*"

# k8s.io/apimachinery pkg/apis/meta/v1 ObjectMeta (json names)
OBJECT_META: dict[str, Any] = {
    "name": None,
    "generateName": None,
    "namespace": None,
    "selfLink": None,
    "uid": None,
    "resourceVersion": None,
    "generation": None,
    "creationTimestamp": None,
    "deletionTimestamp": None,
    "deletionGracePeriodSeconds": None,
    "labels": {MAP: None},
    "annotations": {MAP: None},
    "ownerReferences": {LIST: None},
    "finalizers": {LIST: None},
    "managedFields": {LIST: None},
}


# --------------------------------------------------------------------------------------------
# the table: generated from the CRDs, shipped as data
# --------------------------------------------------------------------------------------------


def schema_tree(schema: Any) -> Any:
    """The field table node of one openAPIV3Schema node (see the module docstring)."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return None
    if schema.get("type") == "array":
        return {LIST: schema_tree(schema.get("items"))}
    props = schema.get("properties")
    if isinstance(props, dict) and props:
        return {name: schema_tree(sub) for name, sub in sorted(props.items())}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return {MAP: schema_tree(extra)}
    return None


def build_table(
    schemas: Mapping[tuple[str, str], Mapping[str, Any]], bundle_version: str, channel: str
) -> dict[str, Any]:
    """The field table of CRD schemas: ``(group, kind) -> {version: openAPIV3Schema}`` (as
    ``sandbox.scenario.crds.CRDSet.schemas``), for the Gateway API groups only."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for (group, kind), versions in sorted(schemas.items()):
        if group not in GATEWAY_API_GROUPS:
            continue
        by_version: dict[str, Any] = {}
        for version, schema in sorted(versions.items()):
            tree = schema_tree(schema)
            if isinstance(tree, dict):
                tree.pop("metadata", None)  # ObjectMeta, the same for every kind
            by_version[version] = tree
        groups.setdefault(group, {})[kind] = by_version
    return {"bundle_version": bundle_version, "channel": channel, "groups": groups}


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The shipped field table (sandbox/data/gateway-api-fields.json)."""
    text = resources.files("sandbox").joinpath(TABLE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def release() -> str:
    """``v1.6.1 (experimental channel)``: what the table describes."""
    t = table()
    return f"{t['bundle_version']} ({t['channel']} channel)"


# --------------------------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    """One field (or kind) the table does not know: the object, the field path, what."""

    manifest: Manifest
    path: FieldPath
    message: str


def _places(tree: Any, name: str, here: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    """Every place (a path of field names, ``[]`` for a list) where ``name`` is a field."""
    if not isinstance(tree, dict):
        return
    if set(tree) in ({LIST}, {MAP}):
        key = next(iter(tree))
        yield from _places(tree[key], name, (*here, LIST if key == LIST else "<name>"))
        return
    if name in tree:
        yield here
    for key, sub in tree.items():
        yield from _places(sub, name, (*here, key))


def _shown(place: tuple[str, ...]) -> str:
    out = ""
    for part in place:
        out += part if part == LIST else (f".{part}" if out else part)
    return out or "the top level"


def _generic(path: FieldPath) -> tuple[str, ...]:
    return tuple(LIST if isinstance(p, int) else str(p) for p in path)


def unknown_field_message(name: str, fields: Iterable[str], root: Any, path: FieldPath) -> str:
    """What to say about field ``name`` at ``path`` (whose allowed fields are ``fields``) of an
    object whose field table is ``root``: the close sibling it is a typo of, else where it does
    belong (a mis-indented field), else the fields allowed here."""
    names = [f for f in fields if f not in (LIST, MAP)]
    here = _generic(path)
    places = [p for p in _places(root, name) if p != here]
    # a sibling a letter or two away is a typo (hostname: for hostnames:) even when the name
    # is a field elsewhere; a farther one is not (backendRefs: is not parentRefs: mistyped)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8 if places else 0.6)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    if places:

        def closeness(place: tuple[str, ...]) -> tuple[int, int]:
            common = 0
            for a, b in zip(place, here, strict=False):
                if a != b:
                    break
                common += 1
            return (-common, len(place))

        best = sorted(places, key=closeness)[:2]
        where = " or ".join(_shown(p) for p in best)
        return f"unknown field here: {name!r} belongs in {where} (check its indentation)"
    hint = did_you_mean(name, names)
    if hint:
        return "unknown field" + hint
    allowed = sorted(names)
    return "unknown field" + (f" (fields here: {', '.join(allowed)})" if len(allowed) <= 12 else "")


def _walk(
    value: Any, node: Any, path: FieldPath, root: dict[str, Any], found: list[tuple[FieldPath, str]]
) -> None:
    if not isinstance(node, dict):
        return
    if set(node) == {LIST}:
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, node[LIST], (*path, i), root, found)
        return
    if set(node) == {MAP}:
        if isinstance(value, dict):
            for key, item in value.items():
                _walk(item, node[MAP], (*path, key), root, found)
        return
    if not isinstance(value, dict):
        return  # a value of the wrong type: the model's parser names it
    for key, item in value.items():
        if key in node:
            _walk(item, node[key], (*path, key), root, found)
        else:
            found.append(((*path, key), unknown_field_message(str(key), node, root, path)))


def object_tree(tree: Any) -> dict[str, Any]:
    """The field table of a whole object: a kind's table with ObjectMeta as ``metadata``."""
    return {**(tree if isinstance(tree, dict) else {}), "metadata": OBJECT_META}


def check_manifest(m: Manifest) -> list[FieldProblem]:
    """Unknown kind, version or fields of one object of the Gateway API groups (none for
    objects of other groups)."""
    api_version = m.obj.get("apiVersion")
    if not isinstance(api_version, str):
        return []
    group, _, version = api_version.rpartition("/")
    if group not in GATEWAY_API_GROUPS:
        return []
    kinds: dict[str, Any] = table()["groups"].get(group, {})
    if m.kind not in kinds:
        return [
            FieldProblem(
                m,
                ("kind",),
                f"unknown kind {m.kind!r} in {group} {release()}" + did_you_mean(m.kind, kinds),
            )
        ]
    versions: dict[str, Any] = kinds[m.kind]
    if version not in versions:
        return [
            FieldProblem(
                m,
                ("apiVersion",),
                f"{m.kind} is not served as {api_version}; "
                f"served versions: {', '.join(sorted(versions))}",
            )
        ]
    tree = versions[version]
    if not isinstance(tree, dict):
        return []
    root = object_tree(tree)
    found: list[tuple[FieldPath, str]] = []
    _walk(m.obj, root, (), root, found)
    return [FieldProblem(m, path, message) for path, message in found]


def check_manifests(manifests: Iterable[Manifest]) -> list[FieldProblem]:
    """``check_manifest`` of each object, in order."""
    return [p for m in manifests for p in check_manifest(m)]
