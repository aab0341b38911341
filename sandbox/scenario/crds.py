"""Offline validation of manifests against the Gateway API CRD schemas of the pinned release.

Every Gateway API object (group ``gateway.networking.k8s.io`` / ``gateway.networking.x-k8s.io``)
is validated with jsonschema against ``spec.versions[].schema.openAPIV3Schema`` of its CRD, for
the version named in its ``apiVersion``. The CRDs come from, in order:

1. ``SANDBOX_GATEWAY_API_CRDS=DIR``: a local copy of ``config/crd/<channel>/`` (CI points it at
   the upstream checkout);
2. the cache, ``<cache_dir>/gateway-api-crds/<version>/<channel>/``;
3. a download of ``settings.GATEWAY_API_CRDS_URL`` (the files listed in its
   ``kustomization.yaml``) into that cache.

How the Kubernetes schema dialect is handled (apiextensions-apiserver structural schemas):

- objects with ``properties`` and without ``additionalProperties`` reject unknown fields, as
  ``kubectl apply`` does with its default ``--validate='strict'`` ("fail the request if
  invalid", server-side field validation; ``kubectl apply --help``, v1.32);
  ``x-kubernetes-preserve-unknown-fields: true`` keeps them open;
- ``x-kubernetes-int-or-string: true`` accepts an integer or a string;
- ``nullable: true`` also accepts null;
- ``x-kubernetes-list-type: set`` / ``map`` (+ ``x-kubernetes-list-map-keys``) reject duplicates,
  as the API server does;
- ``x-kubernetes-validations`` (CEL rules) are **not** evaluated: the API server still applies
  them on a real cluster, and the reference model covers the semantics that matter to scenarios;
- ``default``s are filled in before validating, as the API server does;
- ``format`` is not checked (Kubernetes formats such as int32 differ from JSON Schema's).

``metadata`` is checked against a small ObjectMeta schema (``name`` required, labels and
annotations are strings). Core kinds: ``Service`` (ports) and ``Deployment`` (selector, template)
get a minimal schema; other kinds outside Gateway API are not validated and are listed as notes.

Long on purpose: loading the pinned CRDs (offline copy, cache, download with checksum) and
validating against them share the CRD set and its version rules.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sandbox import manifests, settings
from sandbox.errors import EnvironmentProblem, InputError, SandboxError
from sandbox.manifests import InvalidInput, Manifest, Problem, display_path
from sandbox.scenario import fields
from sandbox.scenario.fields import object_tree, schema_tree, unknown_field_message
from sandbox.scenario.model import Scenario
from sandbox.settings import INSTALL_ENV

GATEWAY_API_GROUPS = ("gateway.networking.k8s.io", "gateway.networking.x-k8s.io")
# pkg/consts/consts.go (gateway-api v1.6.1): BundleVersionAnnotation, ChannelAnnotation
BUNDLE_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"
UNDEFINED = "UNDEFINED"  # conformance/utils/suite/consts.go UndefinedKeyword
ENV_CRDS = "SANDBOX_GATEWAY_API_CRDS"
DOWNLOAD_TIMEOUT = 30.0
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# manifests with their source
# --------------------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


@dataclass
class SourcedObject:
    """One manifest object and where it came from."""

    file: str
    obj: Any
    index: int = 0  # document index in the file
    line: int = 0  # line of the document's first node (1-based; 0 unknown)
    lines: dict[Path_, int] = field(default_factory=dict)  # field path -> line

    def line_of(self, path: Path_) -> int:
        """Line of ``path`` or of its nearest ancestor known."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.line

    @property
    def label(self) -> str:
        return object_label(self.obj)


def object_label(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return "<not an object>"
    kind = obj.get("kind") or "<no kind>"
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return f"{kind}/{name or '<unnamed>'}"


def sourced(manifest: Manifest, display: str | None = None) -> SourcedObject:
    """A manifest object of :mod:`sandbox.manifests` as the validator's input."""
    return SourcedObject(
        display or display_path(manifest.file),
        manifest.obj,
        manifest.document - 1,
        manifest.line,
        dict(manifest.lines),
    )


def load_manifest_file(path: str | Path, *, display: str | None = None) -> list[SourcedObject]:
    """The objects of a manifest file (read by :mod:`sandbox.manifests`: lines of every field,
    ``kind: List`` expanded). A file that cannot be read or parsed raises InvalidInput (exit 2)
    naming file and line."""
    problems: list[Problem] = []
    found = manifests.load_manifest_file(Path(path), problems)
    if problems:
        raise InvalidInput(problems, what="manifests")
    return [sourced(m, display) for m in found]


# --------------------------------------------------------------------------------------------
# the CRDs
# --------------------------------------------------------------------------------------------


@dataclass
class CRDSet:
    """The Gateway API CRDs of one release and channel, ready to validate against."""

    source: str  # the directory they were read from
    # (group, kind) -> {version: openAPIV3Schema}
    schemas: dict[tuple[str, str], dict[str, dict[str, Any]]]
    bundle_versions: set[str]
    channels: set[str]

    @property
    def bundle_version(self) -> str:
        """The ``bundle-version`` annotation shared by every CRD, else UNDEFINED (upstream)."""
        return next(iter(self.bundle_versions)) if len(self.bundle_versions) == 1 else UNDEFINED

    @property
    def channel(self) -> str:
        return next(iter(self.channels)) if len(self.channels) == 1 else UNDEFINED

    def kinds(self, group: str) -> list[str]:
        return sorted(k for g, k in self.schemas if g == group)


def _crd_documents(source: Path) -> Iterator[Any]:
    """The YAML documents of a CRD folder (every *.yaml / *.yml) or file. A file such as Envoy
    Gateway's install.yaml (megabytes, mostly other objects) is cut into its documents first and
    only those that define Gateway API CRDs are parsed."""
    files = (
        [source]
        if source.is_file()
        else sorted(source.glob("*.yaml")) + sorted(source.glob("*.yml"))
    )
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
            if source.is_file():
                chunks = [
                    c
                    for c in _DOCUMENT_SEPARATOR.split(text)
                    if "CustomResourceDefinition" in c and any(g in c for g in GATEWAY_API_GROUPS)
                ]
                docs = [yaml.load(c, Loader=_fast_loader()) for c in chunks]
            else:
                docs = list(yaml.load_all(text, Loader=_fast_loader()))
        except (OSError, yaml.YAMLError) as e:
            raise EnvironmentProblem(
                f"cannot read Gateway API CRD file {f}: {e}",
                hint=f"check {ENV_CRDS} or clear the cache",
            ) from None
        yield from docs


_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


def _read_crds(source: Path) -> CRDSet:
    schemas: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    versions: set[str] = set()
    channels: set[str] = set()
    for doc in _crd_documents(source):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc.get("spec") or {}
        group = spec.get("group")
        kind = (spec.get("names") or {}).get("kind")
        if not group or not kind:
            continue
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        if group in GATEWAY_API_GROUPS:
            if BUNDLE_VERSION_ANNOTATION in annotations:
                versions.add(str(annotations[BUNDLE_VERSION_ANNOTATION]))
            if CHANNEL_ANNOTATION in annotations:
                channels.add(str(annotations[CHANNEL_ANNOTATION]))
        by_version = schemas.setdefault((group, kind), {})
        for v in spec.get("versions") or []:
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            if v.get("served", True) and isinstance(schema, dict):
                by_version[str(v["name"])] = schema
    if not schemas:
        raise EnvironmentProblem(
            f"no Gateway API CustomResourceDefinitions found in {source}",
            hint=f"{ENV_CRDS} must name a folder like gateway-api's config/crd/experimental",
        )
    return CRDSet(str(source), schemas, versions, channels)


def _fast_loader() -> type[yaml.SafeLoader]:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def cache_path(version: str, channel: str) -> Path:
    return settings.cache_dir() / "gateway-api-crds" / version / channel


def envoy_gateway_install_yaml() -> Path | None:
    """The pinned Envoy Gateway install.yaml when it is at hand (it bundles the Gateway API
    CRDs): ``$SANDBOX_ENVOY_GATEWAY_INSTALL_YAML``, else the copy ``sandbox up`` cached
    (``<cache_dir>/manifests/envoy-gateway/<version>/install.yaml``). Never downloads."""

    override = os.environ.get(INSTALL_ENV)
    if override:
        p = Path(override)
        if not p.is_file():
            raise InputError(f"{override}: no such file", field=INSTALL_ENV)
        return p
    version = settings.Settings().envoy_gateway_version
    cached = settings.cache_dir() / "manifests" / "envoy-gateway" / version / "install.yaml"
    return cached if cached.is_file() and cached.stat().st_size > 0 else None


def crds_at_hand() -> Path | None:
    """Where the Gateway API CRDs are without any download, in order: ``$SANDBOX_GATEWAY_API_CRDS``
    (a folder), Envoy Gateway's install.yaml (``envoy_gateway_install_yaml``), the cached CRD
    folder of an earlier download. None when none of them is there."""
    override = os.environ.get(ENV_CRDS)
    if override:
        return crds_dir(download=False)
    install = envoy_gateway_install_yaml()
    if install is not None:
        return install
    return crds_dir(download=False)


def not_at_hand_reason() -> str:
    """Why ``crds_at_hand`` found nothing, and how to change that."""

    return (
        f"{ENV_CRDS} and {INSTALL_ENV} unset, none cached in {settings.cache_dir()}; "
        "`sandbox up` caches them"
    )


def crds_dir(
    *,
    download: bool = True,
    version: str | None = None,
    channel: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path | None:
    """The folder holding the CRDs: env override, else the cache (downloading when allowed).

    Returns None when neither is available and ``download`` is False.
    """
    override = os.environ.get(ENV_CRDS)
    if override:
        p = Path(override)
        if not p.is_dir():
            raise InputError(f"{p} is not a directory", field=ENV_CRDS)
        return p
    version = version or settings.Settings().gateway_api_version
    channel = channel or settings.GATEWAY_API_CHANNEL
    cached = cache_path(version, channel)
    if (cached / ".complete").is_file():
        return cached
    if not download:
        return None
    _download(version, channel, cached, timeout=timeout)
    return cached


def _download(version: str, channel: str, dest: Path, *, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Download the CRD files of the release into ``dest``; ``timeout`` bounds the whole
    download (every request gets what is left of it)."""
    import time

    import requests

    base = settings.GATEWAY_API_CRDS_URL.format(version=version, channel=channel)
    deadline = time.monotonic() + timeout

    def get(name: str) -> str:
        url = base + name
        left = deadline - time.monotonic()
        if left <= 0:
            raise EnvironmentProblem(
                f"cannot download the Gateway API CRDs: gave up after {timeout:g}s ({url})",
                hint=f"set {ENV_CRDS}=DIR to a local copy of config/crd/{channel}",
            )
        try:
            resp = requests.get(url, timeout=left)
        except requests.RequestException as e:
            reason = str(e.__context__ or e).split(": ")[-1].rstrip("\"') ")[:160]
            reason += ")" * (reason.count("(") - reason.count(")"))  # close what was cut
            raise EnvironmentProblem(
                f"cannot download the Gateway API CRDs ({url}): {type(e).__name__}: {reason}",
                hint=f"set {ENV_CRDS}=DIR to a local copy of config/crd/{channel}",
            ) from None
        if resp.status_code != 200:
            raise EnvironmentProblem(
                f"cannot download {url}: HTTP {resp.status_code}",
                hint=f"set {ENV_CRDS}=DIR to a local copy",
            )
        return resp.text

    log.info("downloading the Gateway API %s %s CRDs from %s", version, channel, base)
    # config/crd/<channel>/kustomization.yaml lists the CRD files of the channel.
    kustomization = yaml.safe_load(get("kustomization.yaml")) or {}
    names = [str(n) for n in kustomization.get("resources") or [] if str(n).endswith(".yaml")]
    if not names:
        raise EnvironmentProblem(f"{base}kustomization.yaml lists no CRD files")
    import shutil
    import tempfile

    # a private folder renamed into place: concurrent runs (xdist workers) never see half a set
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for name in names:
            (tmp / Path(name).name).write_text(get(name), encoding="utf-8")
        (tmp / ".complete").write_text(base + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / ".complete").is_file():  # not another run's complete copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@lru_cache(maxsize=4)
def _load_crds_cached(directory: str) -> CRDSet:
    return _read_crds(Path(directory))


def load_crds(
    directory: str | Path | None = None, *, download: bool = True, timeout: float = DOWNLOAD_TIMEOUT
) -> CRDSet:
    """The CRDs from ``directory`` (a folder, or a file such as install.yaml), else from
    ``crds_at_hand()``, else downloaded when ``download``. Cached per process."""
    d = (
        Path(directory)
        if directory is not None
        else (crds_at_hand() or crds_dir(download=download, timeout=timeout))
    )
    if d is None:
        raise EnvironmentProblem(
            "the Gateway API CRDs are not available offline",
            hint=f"set {ENV_CRDS}=DIR or run once with network access to cache them",
        )
    return _load_crds_cached(str(d.resolve()))


# --------------------------------------------------------------------------------------------
# Kubernetes schema dialect -> JSON Schema (draft 4, whose boolean exclusiveMinimum/Maximum
# matches OpenAPI v3.0)
# --------------------------------------------------------------------------------------------

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],  # kubectl apply: "resource name may not be empty"
    "properties": {
        # every kind the scenarios use needs at least a DNS-1123 subdomain (Services and
        # Namespaces a label, stricter): apimachinery pkg/api/validation NameIsDNSSubdomain
        "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
        "generateName": {"type": "string"},
        "namespace": {
            "type": "string",
            "maxLength": 63,
            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}

_NOT_SUPPORTED_KEYS = (
    "x-kubernetes-validations",
    "format",
    "default",
    "description",
    "example",
    "x-kubernetes-map-type",
)


def k8s_to_jsonschema(schema: Any, *, root: bool = False, structural: bool = True) -> Any:
    """Translate one schema node (recursively).

    ``structural`` is False inside allOf/anyOf/oneOf/not, whose ``properties`` only add value
    checks in a structural schema: they never close an object to unknown fields.
    """
    if not isinstance(schema, dict):
        return schema
    s = {k: v for k, v in schema.items() if k not in _NOT_SUPPORTED_KEYS}
    for key in ("properties", "patternProperties"):
        if isinstance(s.get(key), dict):
            s[key] = {k: k8s_to_jsonschema(v, structural=structural) for k, v in s[key].items()}
    if isinstance(s.get("items"), dict):
        s["items"] = k8s_to_jsonschema(s["items"], structural=structural)
    if isinstance(s.get("not"), dict):
        s["not"] = k8s_to_jsonschema(s["not"], structural=False)
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = k8s_to_jsonschema(
            s["additionalProperties"], structural=structural
        )
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(s.get(key), list):
            s[key] = [k8s_to_jsonschema(v, structural=False) for v in s[key]]
    preserve = bool(s.pop("x-kubernetes-preserve-unknown-fields", False))
    if s.pop("x-kubernetes-int-or-string", False):
        s.pop("type", None)
        s["anyOf"] = [*s.get("anyOf", []), {"type": "integer"}, {"type": "string"}]
    if s.pop("nullable", False) and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    if structural and "properties" in s and "additionalProperties" not in s and not preserve:
        s["additionalProperties"] = False
    if root:
        props = s.setdefault("properties", {})
        props["metadata"] = copy.deepcopy(_OBJECT_META)
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        s["required"] = sorted({*s.get("required", []), "metadata"})
    return s


def apply_defaults(value: Any, schema: Any) -> Any:
    """A copy of ``value`` with the schema's ``default``s filled in, as the API server does
    before validating (apiextensions-apiserver structural defaulting)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        out = dict(value)
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in out and isinstance(sub, dict) and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(out[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in out:
                if name not in props:
                    out[name] = apply_defaults(out[name], extra)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


def _list_type(
    validator: Any, list_type: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[Any]:
    """x-kubernetes-list-type set|map: duplicates are invalid (apiextensions-apiserver)."""
    from jsonschema import ValidationError

    if not isinstance(instance, list):
        return
    if list_type == "set":
        seen: list[Any] = []
        for i, item in enumerate(instance):
            if item in seen:
                yield ValidationError(f"duplicate value {item!r}", path=[i])
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple[Any, ...]] = []
        for i, item in enumerate(instance):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(k) for k in keys)
            if key in seen_keys:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                yield ValidationError(f"duplicate entry with {shown}", path=[i])
            seen_keys.append(key)


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    from jsonschema import Draft4Validator, validators

    # types-jsonschema 4.26 declares validators.extend without annotations (validators.pyi)
    return validators.extend(Draft4Validator, {"x-kubernetes-list-type": _list_type})  # type: ignore[no-untyped-call]


# Minimal core schemas (k8s.io/api core/v1 ServiceSpec/ServicePort, apps/v1 DeploymentSpec):
# only the fields a scenario uses are typed; unknown fields stay allowed (not the full schema).
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_CORE_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("v1", "Service"): {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _OBJECT_META,
            "spec": {
                "type": "object",
                "required": ["ports"],
                "properties": {
                    "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
                    "selector": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ports": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {
                                "name": {"type": "string"},
                                "port": _PORT,
                                "targetPort": {"anyOf": [_PORT, {"type": "string"}]},
                                "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                                "appProtocol": {"type": "string"},
                                "nodePort": _PORT,
                            },
                        },
                    },
                },
            },
        },
    },
    ("apps/v1", "Deployment"): {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _OBJECT_META,
            "spec": {
                "type": "object",
                "required": ["selector", "template"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 0},
                    "selector": {"type": "object"},
                    "template": {
                        "type": "object",
                        "properties": {
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["containers"],
                                "properties": {
                                    "containers": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "object", "required": ["name", "image"]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    ("v1", "Namespace"): {
        "type": "object",
        "required": ["metadata"],
        "properties": {"metadata": _OBJECT_META},
    },
}


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaProblem:
    """One schema error: where (file, line, object, field) and what."""

    file: str
    line: int | None
    object: str  # Kind/name
    field: str | None  # spec.rules[0].matches[0].path.type
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return (
            f"{where}: {self.object}: " + (f"{self.field}: " if self.field else "") + self.message
        )


@dataclass
class ValidationResult:
    problems: list[SchemaProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # kinds not validated, and why
    validated: int = 0  # objects validated against a schema

    @property
    def errors(self) -> list[str]:
        """Every problem as ``FILE[:LINE]: KIND/NAME: FIELD.PATH: what``."""
        return [str(p) for p in self.problems]

    @property
    def ok(self) -> bool:
        return not self.problems


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(error: Any, root: Any = None) -> tuple[Path_, str]:
    """(field path, message) for one jsonschema error, in Kubernetes-like words. ``root``: the
    object's field table (``sandbox.scenario.fields``), to say where a misplaced field goes."""
    path: Path_ = tuple(error.absolute_path)
    v = error.validator
    if v == "required":
        # "'name' is a required property": the missing field is named in the message
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return (*path, missing), "required field is missing"
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list((error.schema.get("properties") or {}).keys())
        extras = [k for k in error.instance if k not in allowed]
        name = extras[0] if extras else "?"
        if root is not None:
            return (*path, name), unknown_field_message(str(name), allowed, root, path)
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (*path, name), f"unknown field{hint}"
    if v == "enum":
        return path, f"unsupported value {error.instance!r}: must be one of " + ", ".join(
            repr(x) for x in error.validator_value
        )
    if v == "type":
        want = error.validator_value
        want_s = " or ".join(want) if isinstance(want, list) else want
        return path, f"must be {want_s}, got {_json_type(error.instance)} {error.instance!r}"
    if (
        v == "anyOf"
        and error.schema.get("anyOf")
        and all(set(sub) == {"type"} or "type" in sub for sub in error.schema["anyOf"])
    ):
        types = [str(sub.get("type")) for sub in error.schema["anyOf"]]
        return (
            path,
            f"must be {' or '.join(types)}, got {_json_type(error.instance)} {error.instance!r}",
        )
    if v == "pattern":
        if error.validator_value == DNS_SUBDOMAIN:  # apimachinery dns1123SubdomainErrorMsg
            return path, (
                f"invalid value {error.instance!r}: a lowercase RFC 1123 subdomain must "
                "consist of lower case alphanumeric characters, '-' or '.', and must "
                "start and end with an alphanumeric character"
            )
        return path, f"invalid value {error.instance!r}: must match {error.validator_value!r}"
    return path, error.message


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _message(src: SourcedObject, path: Path_, text: str) -> SchemaProblem:
    return SchemaProblem(
        src.file, src.line_of(path) or None, src.label, format_path(path) or None, text
    )


class SchemaValidator:
    """Validates manifest objects; build once (compiling schemas is cached per kind/version)."""

    def __init__(self, crds: CRDSet) -> None:
        self.crds = crds
        self._compiled: dict[tuple[str, str, str], Any] = {}
        self._raw: dict[tuple[str, str, str], Any] = {}
        self._trees: dict[tuple[str, str, str], Any] = {}

    def _validator_for(self, group: str, version: str, kind: str) -> Any:
        key = (group, version, kind)
        if key not in self._compiled:
            if group in GATEWAY_API_GROUPS:
                raw = self.crds.schemas[(group, kind)][version]
                self._raw[key] = raw
                schema = k8s_to_jsonschema(raw, root=True)
            else:
                api_version = f"{group}/{version}" if group else version
                schema = _CORE_SCHEMAS[(api_version, kind)]
            self._compiled[key] = _validator_class()(schema)
        return self._compiled[key]

    def _tree(self, group: str, version: str, kind: str, raw: Any) -> Any:
        """The kind's field table, built from its CRD schema (for misplaced-field hints)."""
        key = (group, version, kind)
        if key not in self._trees:
            self._trees[key] = object_tree(schema_tree(raw))
        return self._trees[key]

    def validate(self, objects: Iterable[SourcedObject | tuple[str, Any]]) -> ValidationResult:
        result = ValidationResult()
        skipped: dict[str, set[str]] = {}
        for item in objects:
            src = item if isinstance(item, SourcedObject) else SourcedObject(item[0], item[1])
            obj = src.obj
            if not isinstance(obj, Mapping):
                result.problems.append(_message(src, (), "a manifest document must be a mapping"))
                continue
            api_version, kind = obj.get("apiVersion"), obj.get("kind")
            if not isinstance(api_version, str) or not api_version:
                result.problems.append(_message(src, ("apiVersion",), "required field is missing"))
                continue
            if not isinstance(kind, str) or not kind:
                result.problems.append(_message(src, ("kind",), "required field is missing"))
                continue
            group, _, version = api_version.rpartition("/")
            if group in GATEWAY_API_GROUPS:
                versions = self.crds.schemas.get((group, kind))
                if versions is None:
                    known = self.crds.kinds(group)
                    close = difflib.get_close_matches(kind, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    result.problems.append(
                        _message(
                            src,
                            ("kind",),
                            f"unknown kind {kind!r} in {group} "
                            f"{self.crds.bundle_version} ({self.crds.channel} channel){hint}",
                        )
                    )
                    continue
                if version not in versions:
                    result.problems.append(
                        _message(
                            src,
                            ("apiVersion",),
                            f"{kind} is not served as {api_version}; "
                            f"served versions: {', '.join(sorted(versions))}",
                        )
                    )
                    continue
            elif (api_version, kind) not in _CORE_SCHEMAS:
                skipped.setdefault(api_version, set()).add(kind)
                continue
            validator = self._validator_for(group, version, kind)
            raw = self._raw.get((group, version, kind))
            root = None
            if raw is not None:
                obj = apply_defaults(obj, raw)
                root = self._tree(group, version, kind, raw)
            errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
            result.validated += 1
            for error in errors:
                path, text = _describe(error, root)
                result.problems.append(_message(src, path, text))
        for api_version, kinds in sorted(skipped.items()):
            result.notes.append(
                f"not schema-validated (no schema for {api_version}): " + ", ".join(sorted(kinds))
            )
        return result


def validate_objects(
    objects: Iterable[SourcedObject | tuple[str, Any]], crds: CRDSet | None = None
) -> list[str]:
    """Validate manifest objects; returns error messages (empty when all are valid).

    Each item is a SourcedObject (from ``load_manifest_file``, with lines) or a
    ``(file, object)`` pair. Each message reads ``FILE[:LINE]: KIND/NAME: FIELD.PATH: what``.
    """
    return SchemaValidator(crds or load_crds()).validate(objects).errors


def check_objects(
    objects: Iterable[SourcedObject | tuple[str, Any]], crds: CRDSet | None = None
) -> ValidationResult:
    """Like validate_objects, but raises InputError (exit 2) listing every error."""
    result = SchemaValidator(crds or load_crds()).validate(objects)
    if result.errors:
        first = result.errors[0]
        more = "\n".join(result.errors[1:])
        raise InputError(
            f"{len(result.errors)} schema error(s):\n  " + "\n  ".join(result.errors)
            if len(result.errors) > 1
            else first,
            hint=None if not more else "fix the manifests; each line names file, object, field",
        )
    return result


def validate_files(
    files: Iterable[str | Path], crds: CRDSet | None = None, *, base: str | Path | None = None
) -> ValidationResult:
    """Load and validate manifest files (paths shown relative to ``base`` when given)."""
    objects: list[SourcedObject] = []
    for f in files:
        p = Path(f)
        display = str(p)
        if base is not None:
            try:
                display = str(p.resolve().relative_to(Path(base).resolve()))
            except ValueError:
                display = str(p)
        objects.extend(load_manifest_file(p, display=display))
    return SchemaValidator(crds or load_crds()).validate(objects)


# --------------------------------------------------------------------------------------------
# the check of a scenario's manifests: the CRD schemas when at hand, else the model's fields
# --------------------------------------------------------------------------------------------

CHECK_DOWNLOAD_TIMEOUT = 8.0  # s, for the whole download `sandbox check` may try
CRDS = "crds"  # ManifestCheck.method: validated against the CRD schemas
MODEL = "model"  # the reference model's field check (sandbox.scenario.fields)


@dataclass
class ManifestCheck:
    """What the check of a scenario's manifests found, and how it checked."""

    problems: list[SchemaProblem]
    method: str  # CRDS | MODEL
    source: str  # "Gateway API v1.6.1 experimental CRDs from PATH" | "CRDs not at hand (...)"
    notes: list[str] = field(default_factory=list)  # kinds not validated, a download tried

    @property
    def headline(self) -> str:
        """``schema: ...``: which validation was done, with what or why."""
        if self.method == CRDS:
            return f"schema: {self.source}"
        return f"schema: {self.source}; the reference model's field check"

    @property
    def note(self) -> str:
        """The headline and the notes (kinds not validated, a download done), one line."""
        return self.headline + "".join(f"; {n}" for n in self.notes)

    @property
    def summary(self) -> str:
        """A few words for the ``ok`` line."""
        if self.method == CRDS:
            return "manifests valid against the CRD schemas"
        return "CRDs not at hand, manifests pass the reference model's field check"


def _scenario_manifests(scenario: Scenario) -> list[Manifest]:
    found: list[Manifest] = list(scenario.manifest_objects)
    if found or not scenario.objects:
        return found
    problems: list[Problem] = []  # a Scenario built by hand: read its files
    found = manifests.load_manifests(list(scenario.manifests), problems)
    if problems:
        raise InvalidInput(problems, what="manifests")
    return found


def model_field_problems(objects: Iterable[Manifest]) -> list[SchemaProblem]:
    """The reference model's field check (``sandbox.scenario.fields``) as schema problems,
    worded as the CRD validation words them."""

    return [
        SchemaProblem(
            display_path(p.manifest.file),
            p.manifest.line_of(p.path) or None,
            p.manifest.label,
            format_path(p.path) or None,
            p.message,
        )
        for p in fields.check_manifests(objects)
    ]


def check_scenario_manifests(
    scenario: Scenario, *, download: bool = False, timeout: float | None = None
) -> ManifestCheck:
    """Check a loaded scenario's manifests against the Gateway API CRD schemas when they are
    at hand (``crds_at_hand``; downloaded first only when ``download`` and nothing is cached,
    within ``timeout``, default ``CHECK_DOWNLOAD_TIMEOUT``), else with the reference model's field check."""

    objects = _scenario_manifests(scenario)
    notes: list[str] = []
    try:
        found = crds_at_hand()
        if found is None and download:
            notes.append("downloaded the CRDs now (nothing was cached)")
        crds = load_crds(
            found, download=download, timeout=CHECK_DOWNLOAD_TIMEOUT if timeout is None else timeout
        )
    except SandboxError as e:
        if isinstance(e, InputError):
            raise
        why = not_at_hand_reason()
        if download:
            why += f"; the download failed: {e}"
        return ManifestCheck(model_field_problems(objects), MODEL, f"CRDs not at hand ({why})")
    result = SchemaValidator(crds).validate(sourced(m) for m in objects)
    source = (
        f"Gateway API {crds.bundle_version} {crds.channel} CRDs from {display_path(crds.source)}"
    )
    return ManifestCheck(result.problems, CRDS, source, notes + result.notes)
