"""Typed views of the Kubernetes objects the reference model reads, parsed from plain dicts.

Field names, defaults and enum values follow the Gateway API v1.6.1 CRDs
(kubernetes-sigs/gateway-api config/crd/{standard,experimental}/*.yaml and apis/v1/*_types.go):

- HTTPRoute ``matches[].path`` defaults to ``{type: PathPrefix, value: /}``; header and query
  matches default to ``type: Exact``; a rule without ``matches`` matches every request.
- ``backendRefs[].weight`` defaults to 1, ``group`` to "" (core), ``kind`` to ``Service``.
- ``parentRefs[].group`` defaults to ``gateway.networking.k8s.io``, ``kind`` to ``Gateway``,
  ``namespace`` to the route's namespace.
- Listener ``allowedRoutes`` defaults to ``{namespaces: {from: Same}}``.
- ``requestRedirect.statusCode`` defaults to 302; ``requestMirror`` without percent/fraction
  mirrors 100%.

Anything the API server would refuse (schema or CEL validation) is an InputError naming the
object and field, because such a manifest never reaches a cluster.

Long on purpose: one parser per Gateway API kind and field group, each next to the spec rule it
follows; they share the validation helpers and the error wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sandbox.errors import InputError

GATEWAY_GROUP = "gateway.networking.k8s.io"
DEFAULT_NAMESPACE = "default"

PATH_TYPES = ("Exact", "PathPrefix", "RegularExpression")
MATCH_TYPES = ("Exact", "RegularExpression")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
REDIRECT_CODES = (301, 302, 303, 307, 308)
FILTER_TYPES = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
    "ExternalAuth",
)
GRPC_FILTER_TYPES = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
)

_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")  # GEP-2257 Duration (CRD pattern)
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")


class Where:
    """Names an object (kind ns/name, and its file:line when known) for error messages."""

    def __init__(self, kind: str, namespace: str, name: str, source: str | None) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.source = source

    def error(self, field_path: str, message: str) -> InputError:
        file, line = None, None
        if self.source:
            file, _, rest = self.source.rpartition(":")
            if rest.isdigit():
                line = int(rest)
            else:
                file = self.source
        ident = f"{self.kind} {self.namespace}/{self.name}"
        return InputError(f"{ident}: {message}", file=file, line=line, field=field_path)


# ---------------------------------------------------------------- small typed readers


def _get(d: dict[str, Any], key: str, where: Where, path: str, kind: type, default: Any) -> Any:
    value = d.get(key, default)
    if value is None:
        return default
    if kind is int and isinstance(value, bool):
        raise where.error(f"{path}.{key}", f"must be an integer, got {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind):
        raise where.error(f"{path}.{key}", f"must be a {kind.__name__}, got {value!r}")
    return value


def _str(d: dict[str, Any], key: str, where: Where, path: str, default: str = "") -> str:
    v = _get(d, key, where, path, str, default)
    assert isinstance(v, str)
    return v


def _opt_str(d: dict[str, Any], key: str, where: Where, path: str) -> str | None:
    v = _get(d, key, where, path, str, None)
    return v if isinstance(v, str) else None


def _opt_int(d: dict[str, Any], key: str, where: Where, path: str) -> int | None:
    v = _get(d, key, where, path, int, None)
    return v if isinstance(v, int) else None


def _list(d: dict[str, Any], key: str, where: Where, path: str) -> list[Any]:
    v = _get(d, key, where, path, list, [])
    assert isinstance(v, list)
    return v


def _dict(d: dict[str, Any], key: str, where: Where, path: str) -> dict[str, Any]:
    v = _get(d, key, where, path, dict, {})
    assert isinstance(v, dict)
    return v


def _items(
    d: dict[str, Any], key: str, where: Where, path: str
) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i, item in enumerate(_list(d, key, where, path)):
        p = f"{path}.{key}[{i}]"
        if not isinstance(item, dict):
            raise where.error(p, f"must be a mapping, got {item!r}")
        out.append((p, item))
    return out


def _enum(value: str, allowed: tuple[str, ...], where: Where, path: str) -> str:
    if value not in allowed:
        raise where.error(path, f"unsupported value {value!r}; one of {', '.join(allowed)}")
    return value


def parse_duration(text: str, where: Where, path: str) -> float:
    """GEP-2257 duration ("1h", "10s", "500ms", "1m30s") in seconds."""
    if not _DURATION.match(text):
        raise where.error(path, f"invalid duration {text!r} (e.g. 10s, 500ms, 1m30s)")
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * unit[u] for n, u in _DURATION_PART.findall(text))


# ---------------------------------------------------------------- core objects


@dataclass
class Meta:
    kind: str
    namespace: str
    name: str
    labels: dict[str, str]
    creation: str | None  # metadata.creationTimestamp as written (RFC 3339) or None
    order: int  # position in the input (file order)
    where: Where

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class LabelSelector:
    match_labels: dict[str, str] = field(default_factory=dict)
    expressions: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for key, op, values in self.expressions:
            present = key in labels
            if op == "In" and (not present or labels[key] not in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


def _selector(d: dict[str, Any], where: Where, path: str) -> LabelSelector:
    labels = {str(k): str(v) for k, v in _dict(d, "matchLabels", where, path).items()}
    exprs = []
    for p, e in _items(d, "matchExpressions", where, path):
        op = _enum(
            _str(e, "operator", where, p),
            ("In", "NotIn", "Exists", "DoesNotExist"),
            where,
            p + ".operator",
        )
        exprs.append((_str(e, "key", where, p), op, [str(v) for v in _list(e, "values", where, p)]))
    return LabelSelector(labels, exprs)


@dataclass
class RouteKind:
    group: str
    kind: str


@dataclass
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None
    allowed_from: str  # Same | All | Selector | None
    selector: LabelSelector | None
    kinds: list[RouteKind]  # empty: by protocol
    tls_secrets: list[str]  # "ns/name"

    def allowed_kinds(self) -> list[RouteKind]:
        if self.kinds:
            return self.kinds
        if self.protocol in ("HTTP", "HTTPS"):
            return [RouteKind(GATEWAY_GROUP, "HTTPRoute"), RouteKind(GATEWAY_GROUP, "GRPCRoute")]
        if self.protocol == "TLS":
            return [RouteKind(GATEWAY_GROUP, "TLSRoute")]
        if self.protocol == "TCP":
            return [RouteKind(GATEWAY_GROUP, "TCPRoute")]
        if self.protocol == "UDP":
            return [RouteKind(GATEWAY_GROUP, "UDPRoute")]
        return []


@dataclass
class Gateway:
    meta: Meta
    class_name: str
    listeners: list[Listener]


@dataclass
class ParentRef:
    group: str
    kind: str
    namespace: str
    name: str
    section_name: str | None
    port: int | None

    def describe(self) -> str:
        s = f"{self.kind} {self.namespace}/{self.name}"
        if self.section_name:
            s += f" sectionName={self.section_name}"
        if self.port is not None:
            s += f" port={self.port}"
        return s


@dataclass
class StringMatch:
    """A header / query param / gRPC header match."""

    name: str
    type: str  # Exact | RegularExpression
    value: str


@dataclass
class HTTPMatch:
    path_type: str  # Exact | PathPrefix | RegularExpression
    path_value: str
    headers: list[StringMatch]
    query: list[StringMatch]
    method: str | None
    index: int  # position within the rule's matches

    def describe(self) -> str:
        parts = [f"path {self.path_type} {self.path_value}"]
        if self.method:
            parts.append(f"method {self.method}")
        for h in self.headers:
            parts.append(f"header {h.name} {'=' if h.type == 'Exact' else '~'} {h.value}")
        for q in self.query:
            parts.append(f"query {q.name} {'=' if q.type == 'Exact' else '~'} {q.value}")
        return ", ".join(parts)


@dataclass
class GRPCMatch:
    type: str  # Exact | RegularExpression
    service: str | None
    method: str | None
    headers: list[StringMatch]
    index: int

    def describe(self) -> str:
        parts = []
        if self.service or self.method:
            parts.append(f"{self.type} service={self.service or '*'} method={self.method or '*'}")
        else:
            parts.append("any service and method")
        for h in self.headers:
            parts.append(f"header {h.name} {'=' if h.type == 'Exact' else '~'} {h.value}")
        return ", ".join(parts)


@dataclass
class HeaderOps:
    """RequestHeaderModifier / ResponseHeaderModifier."""

    set: list[tuple[str, str]] = field(default_factory=list)
    add: list[tuple[str, str]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


@dataclass
class PathModifier:
    type: str  # ReplaceFullPath | ReplacePrefixMatch
    value: str


@dataclass
class Redirect:
    scheme: str | None
    hostname: str | None
    port: int | None
    path: PathModifier | None
    status_code: int


@dataclass
class Rewrite:
    hostname: str | None
    path: PathModifier | None


@dataclass
class BackendRef:
    group: str
    kind: str
    name: str
    namespace: str
    port: int | None
    weight: int
    filters: list[Filter] = field(default_factory=list)

    def describe(self) -> str:
        kind = self.kind if not self.group else f"{self.kind}.{self.group}"
        port = f":{self.port}" if self.port is not None else ""
        return f"{kind} {self.namespace}/{self.name}{port}"


@dataclass
class MirrorSpec:
    backend: BackendRef
    percent: float


@dataclass
class Filter:
    type: str
    headers: HeaderOps | None = None  # Request/ResponseHeaderModifier
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirror: MirrorSpec | None = None
    extension: str | None = None  # ExtensionRef / CORS / ExternalAuth: described only


@dataclass
class Rule:
    index: int
    name: str | None
    http_matches: list[HTTPMatch]
    grpc_matches: list[GRPCMatch]
    filters: list[Filter]
    backend_refs: list[BackendRef]
    request_timeout: float | None = None
    backend_timeout: float | None = None


@dataclass
class Route:
    meta: Meta
    hostnames: list[str]
    parent_refs: list[ParentRef]
    rules: list[Rule]

    @property
    def kind(self) -> str:
        return self.meta.kind


@dataclass
class ServicePortSpec:
    port: int
    name: str
    target_port: int | str | None
    protocol: str
    app_protocol: str | None


@dataclass
class Service:
    meta: Meta
    type: str
    ports: list[ServicePortSpec]
    selector: dict[str, str]


@dataclass
class Deployment:
    meta: Meta
    replicas: int
    pod_labels: dict[str, str]
    env: dict[str, str]
    images: list[str] = field(default_factory=list)  # spec.template.spec.containers[].image


@dataclass
class GrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass
class GrantTo:
    group: str
    kind: str
    name: str | None


@dataclass
class ReferenceGrant:
    meta: Meta
    from_: list[GrantFrom]
    to: list[GrantTo]


# ---------------------------------------------------------------- parsers


_HOSTNAME = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)  # the CRD pattern for Hostname


def _hostname(value: str, where: Where, path: str) -> str:
    if not _HOSTNAME.match(value):
        raise where.error(path, f"invalid hostname {value!r} (RFC 1123, optional leading '*.')")
    return value


def parse_meta(obj: dict[str, Any], order: int, source: str | None) -> Meta:
    kind = obj.get("kind")
    where0 = Where(str(kind or "?"), "?", "?", source)
    if not isinstance(kind, str) or not kind:
        raise where0.error("kind", "missing or not a string")
    md = obj.get("metadata")
    if not isinstance(md, dict):
        raise where0.error("metadata", "missing or not a mapping")
    name = md.get("name")
    if not isinstance(name, str) or not name:
        raise where0.error("metadata.name", "missing or not a string")
    ns = md.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(ns, str):
        raise where0.error("metadata.namespace", "must be a string")
    where = Where(kind, ns, name, source)
    labels = {str(k): str(v) for k, v in _dict(md, "labels", where, "metadata").items()}
    created = _timestamp(md.get("creationTimestamp"), where)
    return Meta(kind, ns, name, labels, created, order, where)


def _timestamp(value: Any, where: Where) -> str | None:
    """metadata.creationTimestamp as a sortable UTC string "YYYY-MM-DDTHH:MM:SS.ffffffZ"."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise where.error(
                "metadata.creationTimestamp", f"not an RFC 3339 time: {value!r}"
            ) from None
    if not isinstance(value, datetime):
        raise where.error("metadata.creationTimestamp", f"not an RFC 3339 time: {value!r}")
    stamp: datetime = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(obj: dict[str, Any], meta: Meta) -> dict[str, Any]:
    spec = obj.get("spec", {})
    if not isinstance(spec, dict):
        raise meta.where.error("spec", "must be a mapping")
    return spec


def parse_gateway(obj: dict[str, Any], meta: Meta) -> Gateway:
    w = meta.where
    spec = _spec(obj, meta)
    listeners = []
    seen: set[str] = set()
    for p, ls in _items(spec, "listeners", w, "spec"):
        name = _str(ls, "name", w, p)
        if not name:
            raise w.error(p + ".name", "required")
        if name in seen:
            raise w.error(p + ".name", f"listener name {name!r} is not unique")
        seen.add(name)
        port = _opt_int(ls, "port", w, p)
        if port is None or not 1 <= port <= 65535:
            raise w.error(p + ".port", "required, 1..65535")
        protocol = _str(ls, "protocol", w, p)
        if not protocol:
            raise w.error(p + ".protocol", "required")
        hostname = _opt_str(ls, "hostname", w, p)
        if hostname is not None:
            hostname = _hostname(hostname, w, p + ".hostname")
        ar = _dict(ls, "allowedRoutes", w, p)
        nss = _dict(ar, "namespaces", w, p + ".allowedRoutes")
        frm = _enum(
            _str(nss, "from", w, p + ".allowedRoutes.namespaces", "Same"),
            ("All", "Same", "Selector", "None"),
            w,
            p + ".allowedRoutes.namespaces.from",
        )
        selector = None
        if frm == "Selector":
            if "selector" not in nss:
                raise w.error(
                    p + ".allowedRoutes.namespaces.selector", "required when from is Selector"
                )
            selector = _selector(
                _dict(nss, "selector", w, p), w, p + ".allowedRoutes.namespaces.selector"
            )
        kinds = [
            RouteKind(_str(k, "group", w, kp, GATEWAY_GROUP), _str(k, "kind", w, kp))
            for kp, k in _items(ar, "kinds", w, p + ".allowedRoutes")
        ]
        tls = _dict(ls, "tls", w, p)
        secrets = []
        for cp, c in _items(tls, "certificateRefs", w, p + ".tls"):
            secrets.append(
                f"{_str(c, 'namespace', w, cp, meta.namespace)}/{_str(c, 'name', w, cp)}"
            )
        listeners.append(Listener(name, port, protocol, hostname, frm, selector, kinds, secrets))
    if not listeners:
        raise w.error("spec.listeners", "at least one listener is required")
    return Gateway(meta, _str(spec, "gatewayClassName", w, "spec"), listeners)


def _parent_refs(spec: dict[str, Any], meta: Meta) -> list[ParentRef]:
    w = meta.where
    refs = []
    for p, r in _items(spec, "parentRefs", w, "spec"):
        name = _str(r, "name", w, p)
        if not name:
            raise w.error(p + ".name", "required")
        refs.append(
            ParentRef(
                group=_str(r, "group", w, p, GATEWAY_GROUP) if "group" in r else GATEWAY_GROUP,
                kind=_str(r, "kind", w, p, "Gateway") or "Gateway",
                namespace=_str(r, "namespace", w, p, meta.namespace) or meta.namespace,
                name=name,
                section_name=_opt_str(r, "sectionName", w, p) or None,
                port=_opt_int(r, "port", w, p),
            )
        )
    return refs


def _string_matches(d: dict[str, Any], key: str, w: Where, path: str) -> list[StringMatch]:
    out: list[StringMatch] = []
    seen: set[str] = set()
    for p, h in _items(d, key, w, path):
        name = _str(h, "name", w, p)
        if not name:
            raise w.error(p + ".name", "required")
        mtype = _enum(_str(h, "type", w, p, "Exact"), MATCH_TYPES, w, p + ".type")
        value = h.get("value")
        if not isinstance(value, str):
            raise w.error(p + ".value", f"required string, got {value!r}")
        if mtype == "RegularExpression":
            _compile(value, w, p + ".value")
        # header names are case-insensitive, query names exact; later duplicates are ignored
        ident = name.lower() if key == "headers" else name
        if ident in seen:
            continue
        seen.add(ident)
        out.append(StringMatch(name, mtype, value))
    return out


def _compile(pattern: str, w: Where, path: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise w.error(path, f"invalid regular expression {pattern!r}: {e}") from None


def _path_modifier(d: dict[str, Any], w: Where, p: str) -> PathModifier | None:
    if "path" not in d:
        return None
    pm = _dict(d, "path", w, p)
    pp = p + ".path"
    ptype = _enum(
        _str(pm, "type", w, pp), ("ReplaceFullPath", "ReplacePrefixMatch"), w, pp + ".type"
    )
    key = "replaceFullPath" if ptype == "ReplaceFullPath" else "replacePrefixMatch"
    if key not in pm:
        raise w.error(pp + "." + key, f"must be specified when type is {ptype}")
    return PathModifier(ptype, _str(pm, key, w, pp))


def _backend_ref(r: dict[str, Any], meta: Meta, p: str, with_weight: bool) -> BackendRef:
    w = meta.where
    name = _str(r, "name", w, p)
    if not name:
        raise w.error(p + ".name", "required")
    group = _str(r, "group", w, p, "")
    kind = _str(r, "kind", w, p, "Service") or "Service"
    port = _opt_int(r, "port", w, p)
    if group == "" and kind == "Service" and port is None:
        # CEL: "Must have port for Service reference"
        raise w.error(p + ".port", "Must have port for Service reference")
    weight = 1
    if with_weight:
        wv = _opt_int(r, "weight", w, p)
        weight = 1 if wv is None else wv
        if not 0 <= weight <= 1_000_000:
            raise w.error(p + ".weight", "must be 0..1000000")
    return BackendRef(
        group,
        kind,
        name,
        _str(r, "namespace", w, p, meta.namespace) or meta.namespace,
        port,
        weight,
    )


def _header_ops(d: dict[str, Any], w: Where, p: str) -> HeaderOps:
    def pairs(key: str) -> list[tuple[str, str]]:
        out = []
        seen: set[str] = set()
        for hp, h in _items(d, key, w, p):
            name = _str(h, "name", w, hp)
            if not name:
                raise w.error(hp + ".name", "required")
            if name.lower() in seen:  # the first entry with an equivalent name wins
                continue
            seen.add(name.lower())
            out.append((name, _str(h, "value", w, hp)))
        return out

    return HeaderOps(pairs("set"), pairs("add"), [str(x) for x in _list(d, "remove", w, p)])


def _redirect(body: dict[str, Any], w: Where, fp: str) -> Redirect:
    """A RequestRedirect filter's ``requestRedirect`` (at ``fp``)."""
    scheme = _opt_str(body, "scheme", w, fp)
    if scheme is not None:
        _enum(scheme, ("http", "https"), w, fp + ".scheme")
    code = _opt_int(body, "statusCode", w, fp)
    code = 302 if code is None else code
    if code not in REDIRECT_CODES:
        raise w.error(
            fp + ".statusCode", f"unsupported value {code}; one of 301, 302, 303, 307, 308"
        )
    hostname = _opt_str(body, "hostname", w, fp)
    if hostname is not None and hostname.startswith("*."):
        raise w.error(fp + ".hostname", "must be a precise hostname")
    return Redirect(
        scheme, hostname, _opt_int(body, "port", w, fp), _path_modifier(body, w, fp), code
    )


def _mirror(body: dict[str, Any], meta: Meta, fp: str) -> MirrorSpec:
    """A RequestMirror filter's ``requestMirror`` (at ``fp``): its backendRef and the percent
    of requests mirrored (``percent`` or ``fraction``; 100 without either)."""
    w = meta.where
    if "backendRef" not in body:
        raise w.error(fp + ".backendRef", "required")
    ref = _backend_ref(_dict(body, "backendRef", w, fp), meta, fp + ".backendRef", False)
    percent = 100.0
    if "percent" in body and "fraction" in body:
        raise w.error(fp, "Only one of percent or fraction may be specified")
    if "percent" in body:
        pv = _opt_int(body, "percent", w, fp)
        if pv is None or not 0 <= pv <= 100:
            raise w.error(fp + ".percent", "must be 0..100")
        percent = float(pv)
    elif "fraction" in body:
        fr = _dict(body, "fraction", w, fp)
        num = _opt_int(fr, "numerator", w, fp + ".fraction")
        den = _opt_int(fr, "denominator", w, fp + ".fraction")
        den = 100 if den is None else den
        if num is None or num < 0 or den <= 0 or num > den:
            raise w.error(fp + ".fraction", "numerator must be less than or equal to denominator")
        percent = 100.0 * num / den
    return MirrorSpec(ref, percent)


def _filters(d: dict[str, Any], meta: Meta, path: str, allowed: tuple[str, ...]) -> list[Filter]:
    w = meta.where
    out = []
    counts: dict[str, int] = {}
    for p, f in _items(d, "filters", w, path):
        ftype = _enum(_str(f, "type", w, p), allowed, w, p + ".type")
        counts[ftype] = counts.get(ftype, 0) + 1
        if counts[ftype] > 1 and ftype not in ("RequestMirror", "ExtensionRef"):
            raise w.error(p + ".type", f"{ftype} filter cannot be repeated")
        field_name = {
            "RequestHeaderModifier": "requestHeaderModifier",
            "ResponseHeaderModifier": "responseHeaderModifier",
            "RequestMirror": "requestMirror",
            "RequestRedirect": "requestRedirect",
            "URLRewrite": "urlRewrite",
            "ExtensionRef": "extensionRef",
            "CORS": "cors",
            "ExternalAuth": "externalAuth",
        }[ftype]
        if field_name not in f:
            raise w.error(f"{p}.{field_name}", f"must be specified for {ftype} filter.type")
        body = _dict(f, field_name, w, p)
        fp = f"{p}.{field_name}"
        flt = Filter(ftype)
        if ftype in ("RequestHeaderModifier", "ResponseHeaderModifier"):
            flt.headers = _header_ops(body, w, fp)
        elif ftype == "RequestRedirect":
            flt.redirect = _redirect(body, w, fp)
        elif ftype == "URLRewrite":
            flt.rewrite = Rewrite(_opt_str(body, "hostname", w, fp), _path_modifier(body, w, fp))
        elif ftype == "RequestMirror":
            flt.mirror = _mirror(body, meta, fp)
        else:
            flt.extension = ftype + (
                f" {body.get('kind', '?')}/{body.get('name', '?')}"
                if ftype == "ExtensionRef"
                else ""
            )
        out.append(flt)
    if "RequestRedirect" in counts and "URLRewrite" in counts:
        raise w.error(
            path + ".filters", "May specify either RequestRedirect or URLRewrite, but not both"
        )
    return out


def _http_matches(rule: dict[str, Any], w: Where, p: str) -> list[HTTPMatch]:
    if "matches" not in rule or rule["matches"] is None:
        return [HTTPMatch("PathPrefix", "/", [], [], None, 0)]
    out = []
    for i, (mp, m) in enumerate(_items(rule, "matches", w, p)):
        path = _dict(m, "path", w, mp)
        ptype = _enum(
            _str(path, "type", w, mp + ".path", "PathPrefix"), PATH_TYPES, w, mp + ".path.type"
        )
        pvalue = _str(path, "value", w, mp + ".path", "/")
        if ptype in ("Exact", "PathPrefix"):
            if not pvalue.startswith("/"):
                raise w.error(
                    mp + ".path.value", "value must be an absolute path and start with '/'"
                )
            for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
                if bad in pvalue:
                    raise w.error(mp + ".path.value", f"must not contain {bad!r}")
        else:
            _compile(pvalue, w, mp + ".path.value")
        method = _opt_str(m, "method", w, mp)
        if method is not None:
            _enum(method, METHODS, w, mp + ".method")
        out.append(
            HTTPMatch(
                ptype,
                pvalue,
                _string_matches(m, "headers", w, mp),
                _string_matches(m, "queryParams", w, mp),
                method,
                i,
            )
        )
    if not out:  # `matches: []` behaves as no matches: match everything
        out.append(HTTPMatch("PathPrefix", "/", [], [], None, 0))
    return out


def _grpc_matches(rule: dict[str, Any], w: Where, p: str) -> list[GRPCMatch]:
    out = []
    for i, (mp, m) in enumerate(_items(rule, "matches", w, p)):
        meth = _dict(m, "method", w, mp)
        mtype = _enum(
            _str(meth, "type", w, mp + ".method", "Exact"), MATCH_TYPES, w, mp + ".method.type"
        )
        service = _opt_str(meth, "service", w, mp + ".method") or None
        method = _opt_str(meth, "method", w, mp + ".method") or None
        if "method" in m and not service and not method:
            raise w.error(
                mp + ".method", "at least one of service and method must be a non-empty string"
            )
        if mtype == "RegularExpression":
            for v, f in ((service, "service"), (method, "method")):
                if v:
                    _compile(v, w, f"{mp}.method.{f}")
        out.append(GRPCMatch(mtype, service, method, _string_matches(m, "headers", w, mp), i))
    if not out:
        out.append(GRPCMatch("Exact", None, None, [], 0))
    return out


def parse_route(obj: dict[str, Any], meta: Meta) -> Route:
    w = meta.where
    spec = _spec(obj, meta)
    grpc = meta.kind == "GRPCRoute"
    hostnames = [
        _hostname(str(h), w, f"spec.hostnames[{i}]")
        for i, h in enumerate(_list(spec, "hostnames", w, "spec"))
    ]
    rules = []
    raw_rules = _items(spec, "rules", w, "spec")
    if "rules" not in spec and not grpc:
        raw_rules = [("spec.rules[0]", {})]  # CRD default: one rule matching PathPrefix /
    names: set[str] = set()
    for i, (p, r) in enumerate(raw_rules):
        name = _opt_str(r, "name", w, p)
        if name:
            if name in names:
                raise w.error(p + ".name", "Rule name must be unique within the route")
            names.add(name)
        filters = _filters(r, meta, p, GRPC_FILTER_TYPES if grpc else FILTER_TYPES)
        backends = []
        for bp, b in _items(r, "backendRefs", w, p):
            ref = _backend_ref(b, meta, bp, True)
            ref.filters = _filters(b, meta, bp, GRPC_FILTER_TYPES if grpc else FILTER_TYPES)
            backends.append(ref)
        if backends and any(f.type == "RequestRedirect" for f in filters):
            raise w.error(p, "RequestRedirect filter must not be used together with backendRefs")
        rule = Rule(
            i,
            name,
            [] if grpc else _http_matches(r, w, p),
            _grpc_matches(r, w, p) if grpc else [],
            filters,
            backends,
        )
        for f in filters:
            mod = (f.redirect.path if f.redirect else None) or (
                f.rewrite.path if f.rewrite else None
            )
            if (
                mod
                and mod.type == "ReplacePrefixMatch"
                and (len(rule.http_matches) != 1 or rule.http_matches[0].path_type != "PathPrefix")
            ):
                raise w.error(
                    p + ".matches",
                    f"When using {f.type} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
                )
        timeouts = _dict(r, "timeouts", w, p)
        if timeouts and not grpc:
            if "request" in timeouts:
                rule.request_timeout = parse_duration(
                    _str(timeouts, "request", w, p + ".timeouts"), w, p + ".timeouts.request"
                )
            if "backendRequest" in timeouts:
                rule.backend_timeout = parse_duration(
                    _str(timeouts, "backendRequest", w, p + ".timeouts"),
                    w,
                    p + ".timeouts.backendRequest",
                )
            if (
                rule.request_timeout
                and rule.backend_timeout is not None
                and rule.backend_timeout > rule.request_timeout
            ):
                raise w.error(
                    p + ".timeouts", "backendRequest timeout cannot be longer than request timeout"
                )
        rules.append(rule)
    return Route(meta, hostnames, _parent_refs(spec, meta), rules)


def parse_service(obj: dict[str, Any], meta: Meta) -> Service:
    w = meta.where
    spec = _spec(obj, meta)
    ports = []
    for p, sp in _items(spec, "ports", w, "spec"):
        port = _opt_int(sp, "port", w, p)
        if port is None:
            raise w.error(p + ".port", "required")
        tp = sp.get("targetPort")
        if tp is not None and not isinstance(tp, (int, str)):
            raise w.error(p + ".targetPort", "must be an integer or a name")
        ports.append(
            ServicePortSpec(
                port,
                _str(sp, "name", w, p),
                tp,
                _str(sp, "protocol", w, p, "TCP"),
                _opt_str(sp, "appProtocol", w, p),
            )
        )
    selector = {str(k): str(v) for k, v in _dict(spec, "selector", w, "spec").items()}
    return Service(meta, _str(spec, "type", w, "spec", "ClusterIP"), ports, selector)


def parse_deployment(obj: dict[str, Any], meta: Meta) -> Deployment:
    w = meta.where
    spec = _spec(obj, meta)
    replicas = _opt_int(spec, "replicas", w, "spec")
    template = _dict(spec, "template", w, "spec")
    tmeta = _dict(template, "metadata", w, "spec.template")
    labels = {
        str(k): str(v) for k, v in _dict(tmeta, "labels", w, "spec.template.metadata").items()
    }
    env: dict[str, str] = {}
    pod = _dict(template, "spec", w, "spec.template")
    containers = _items(pod, "containers", w, "spec.template.spec")
    if containers:
        cp, c = containers[0]
        for ep, e in _items(c, "env", w, cp):
            if "value" in e:
                env[_str(e, "name", w, ep)] = str(e.get("value", ""))
    images = [_str(c, "image", w, cp) for cp, c in containers]
    return Deployment(meta, 1 if replicas is None else replicas, labels, env, images)


def parse_reference_grant(obj: dict[str, Any], meta: Meta) -> ReferenceGrant:
    w = meta.where
    spec = _spec(obj, meta)
    frm = [
        GrantFrom(_str(f, "group", w, p), _str(f, "kind", w, p), _str(f, "namespace", w, p))
        for p, f in _items(spec, "from", w, "spec")
    ]
    to = [
        GrantTo(_str(t, "group", w, p), _str(t, "kind", w, p), _opt_str(t, "name", w, p) or None)
        for p, t in _items(spec, "to", w, "spec")
    ]
    return ReferenceGrant(meta, frm, to)
