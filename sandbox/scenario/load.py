"""The scenario model: what a scenario folder says, as typed data.

A scenario is a folder ``scenarios/NAME/`` holding ``scenario.yaml`` and Kubernetes manifests.
Key names are a contract (see docs/scenario-format.md); loading and validation live in
``load_scenario`` below, which reports every error with file, line and field.

Namespaces in manifests and expectations are *logical*: objects without a namespace and the
namespace ``default`` are the run's namespace; any other namespace N is mapped by a cluster run to
``<run-namespace>-N`` (see ``sandbox.targets``). The reference model works on logical names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import InputError
from sandbox.manifests import (
    FieldPath,
    InvalidInput,
    Located,
    Manifest,
    Problem,
    describe_value,
    did_you_mean,
    display_path,
    folder_manifests,
    load_manifests,
    load_yaml_document,
)
from sandbox.scenario import features as upstream
from sandbox.scenario.model import (
    DEFAULT_CONSECUTIVE,
    DEFAULT_CONVERGENCE_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SAMPLES,
    DEFAULT_TOLERANCE,
    GATEWAY_API_GROUP,
    ROUTE_KINDS,
    SCENARIO_FILE,
    Check,
    Expect,
    ExpectedRedirect,
    ExpectedRequest,
    GrpcRequest,
    Request,
    Scenario,
    TlsSecret,
)

if TYPE_CHECKING:
    import jsonschema

# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    return display_path(path)


class ScenarioInvalid(InvalidInput):
    """Every problem found in one scenario (exit 2). ``problems`` holds them one by one."""

    def __init__(self, problems: list[Problem], *, name: str = "") -> None:
        super().__init__(problems, name=name, what="scenario")


@lru_cache(maxsize=1)
def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of scenario.yaml (sandbox/data/scenario.schema.json).

    It is a published file, not only code, so that editors (yaml-language-server:
    ``# yaml-language-server: $schema=...``) can complete and check scenario.yaml as people
    type; the loader validates with the very same schema and then adds the checks a schema
    cannot express (manifests, the Gateway, duplicate names).
    """
    text = resources.files("sandbox").joinpath("data/scenario.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
}


_describe = describe_value
_did_you_mean = did_you_mean


def _schema_problems(data: Any, loc: Located) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(scenario_schema())
    for error in validator.iter_errors(data):
        path: FieldPath = tuple(error.absolute_path)
        schema = error.schema if isinstance(error.schema, dict) else {}
        inst = error.instance
        kind = error.validator
        if kind == "additionalProperties" and isinstance(inst, dict):
            _unknown_keys(inst, schema, path, loc)
        elif kind == "required":
            missing = error.validator_value
            for name in missing if isinstance(missing, list) else []:
                if isinstance(inst, dict) and name not in inst:
                    loc.problem((*path, name), "missing (required)", line=loc.line(path))
        elif kind == "type":
            wanted = error.validator_value
            words = " or ".join(
                _TYPE_WORDS.get(str(w), str(w))
                for w in (wanted if isinstance(wanted, list) else [wanted])
            )
            quote = (
                " (quote it in YAML)"
                if wanted == "string" and isinstance(inst, (bool, int, float))
                else ""
            )
            loc.problem(path, f"expected {words}, got {_describe(inst)}{quote}")
        elif kind == "enum":
            options = [str(o) for o in error.validator_value]
            hint = _did_you_mean(str(inst), options) if isinstance(inst, str) else ""
            loc.problem(path, f"must be one of {', '.join(options)}; got {_describe(inst)}{hint}")
        elif kind in ("anyOf", "oneOf", "pattern"):
            _not_expected(error, schema, path, loc)
        elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            op = {
                "minimum": ">=",
                "exclusiveMinimum": ">",
                "maximum": "<=",
                "exclusiveMaximum": "<",
            }[kind]
            loc.problem(path, f"must be {op} {error.validator_value}, got {inst}")
        elif kind in ("minItems", "minLength", "minProperties"):
            loc.problem(path, "must not be empty")
        else:  # pragma: no cover - schema keywords not used today
            loc.problem(path, error.message)


def _unknown_keys(
    inst: dict[str, Any], schema: dict[str, Any], path: FieldPath, loc: Located
) -> None:
    """additionalProperties: one problem per key the schema does not allow, with a hint."""
    allowed = sorted(schema.get("properties", {}))
    for key in inst:
        if key in allowed:
            continue
        hint = _did_you_mean(key, allowed)
        if not hint:
            hint = " (allowed: " + ", ".join(allowed) + ")"
        loc.problem((*path, key), "unknown key" + hint)


def _not_expected(
    error: jsonschema.ValidationError, schema: dict[str, Any], path: FieldPath, loc: Located
) -> None:
    """anyOf, oneOf, pattern: what was expected (the schema's ``x-expected``), per wrong item
    of a list where a list is allowed."""
    inst = error.instance
    expected = schema.get("x-expected", "a valid value")
    # a list where a list is allowed: name the items that are wrong (status: [200, 99])
    items = sorted(
        {
            e.relative_path[0]
            for e in error.context or []
            if len(e.relative_path) == 1 and isinstance(e.relative_path[0], int)
        }
    )
    if isinstance(inst, list) and items and inst:
        for i in items:
            loc.problem((*path, i), f"expected {expected}, got {_describe(inst[i])}")
    else:
        loc.problem(path, f"expected {expected}, got {_describe(inst)}")


def _is_gateway(obj: dict[str, Any]) -> bool:
    api = obj.get("apiVersion")
    return (
        obj.get("kind") == "Gateway"
        and isinstance(api, str)
        and api.startswith(GATEWAY_API_GROUP + "/")
    )


def _name(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def _listener_ports(gateway: dict[str, Any], objects: list[dict[str, Any]]) -> set[int]:
    """Listener ports of a Gateway, including those of ListenerSets whose parentRef names it."""
    ports: set[int] = set()
    sources = [gateway]
    name = _name(gateway)
    for obj in objects:
        spec = obj.get("spec")
        if obj.get("kind") in ("ListenerSet", "XListenerSet") and isinstance(spec, dict):
            parent = spec.get("parentRef")
            if isinstance(parent, dict) and parent.get("name") == name:
                sources.append(obj)
    for obj in sources:
        spec = obj.get("spec")
        listeners = spec.get("listeners") if isinstance(spec, dict) else None
        for listener in listeners if isinstance(listeners, list) else []:
            if isinstance(listener, dict) and isinstance(listener.get("port"), int):
                ports.add(listener["port"])
    return ports


def _load_manifests(
    folder: Path, scenario_file: Path, listed: Any, loc: Located, problems: list[Problem]
) -> tuple[list[Path], list[Manifest]]:
    files: list[Path] = []
    if isinstance(listed, list) and all(isinstance(m, str) for m in listed):
        for i, entry in enumerate(listed):
            file = folder / entry
            if not file.is_file():
                loc.problem(("manifests", i), f"file not found: {_display(file)}")
            elif file.resolve() == scenario_file.resolve():
                loc.problem(("manifests", i), f"{SCENARIO_FILE} is not a manifest")
            else:
                files.append(file)
    elif listed is None:
        files = folder_manifests(folder)
    return files, load_manifests(files, problems)


def _semantic_problems(
    data: dict[str, Any], loc: Located, objects: list[dict[str, Any]], manifests_ok: bool
) -> None:
    gateways = {_name(o): o for o in objects if _is_gateway(o)}
    names = sorted(n for n in gateways if n)

    def gateway_problem(path: FieldPath, name: str) -> None:
        if not manifests_ok:
            return
        if not names:
            loc.problem(
                path,
                f"no Gateway named {name!r}: the manifests have no Gateway "
                f"(apiVersion {GATEWAY_API_GROUP}/v1, kind Gateway)",
            )
        else:
            hint = _did_you_mean(name, names) or f" (Gateways: {', '.join(names)})"
            loc.problem(path, f"no Gateway named {name!r} in the manifests{hint}")

    gateway = data.get("gateway")
    if isinstance(gateway, str) and gateway and gateway not in gateways:
        gateway_problem(("gateway",), gateway)

    _feature_problems(data.get("features"), ("features",), loc)

    _tls_problems(data.get("tls"), loc, objects)

    _unaccepted_problems(data.get("unaccepted_routes"), loc, objects, manifests_ok)

    checks = data.get("checks")
    if not isinstance(checks, list):
        return
    first_seen: dict[str, int] = {}
    for i, check in enumerate(checks):
        if not isinstance(check, dict):
            continue
        name = check.get("name")
        if isinstance(name, str):
            if name in first_seen:
                loc.problem(
                    (("checks", i, "name")),
                    f"duplicate check name {name!r} (first at line {first_seen[name]})",
                )
            else:
                first_seen[name] = loc.line(("checks", i, "name")) or 0
        _feature_problems(check.get("features"), ("checks", i, "features"), loc)
        request = check.get("request")
        if isinstance(request, dict):
            _request_problems(
                request, ("checks", i, "request"), loc, gateways, gateway, objects, gateway_problem
            )
        expect = check.get("expect")
        if isinstance(expect, dict):
            _expect_problems(expect, ("checks", i, "expect"), loc)


def _tls_problems(tls: Any, loc: Located, objects: list[dict[str, Any]]) -> None:
    """A ``tls`` Secret the runner generates must not be in the manifests too."""
    if isinstance(tls, list):
        secrets = {_name(o) for o in objects if o.get("kind") == "Secret"}
        for i, entry in enumerate(tls):
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("secret"), str)
                and (entry["secret"] in secrets)
            ):
                loc.problem(
                    ("tls", i, "secret"),
                    f"Secret {entry['secret']!r} is also in the manifests; "
                    "the runner generates it: remove one",
                )


def _request_problems(
    request: dict[str, Any],
    at: FieldPath,
    loc: Located,
    gateways: dict[str | None, dict[str, Any]],
    gateway: Any,
    objects: list[dict[str, Any]],
    gateway_problem: Callable[[FieldPath, str], None],
) -> None:
    """A check's ``request`` (at ``at``): its Gateway is in the manifests and has a listener
    on its port."""
    gw_name = request.get("gateway")
    if isinstance(gw_name, str) and gw_name and gw_name not in gateways:
        gateway_problem((*at, "gateway"), gw_name)
    target = gateways.get(gw_name if isinstance(gw_name, str) else gateway)
    port = request.get("port")
    scheme = request.get("scheme", "http")
    if port is None and scheme in ("http", "https"):
        port = 443 if scheme == "https" else 80
    ports = _listener_ports(target, objects) if target is not None else set()
    if isinstance(port, int) and ports and port not in ports:
        where = (*at, "port" if "port" in request else "scheme")
        loc.problem(
            where,
            f"Gateway {_name(target or {})!r} has no listener on port "
            f"{port} (its ports: {', '.join(map(str, sorted(ports)))})",
        )


def _expect_problems(expect: dict[str, Any], at: FieldPath, loc: Located) -> None:
    """A check's ``expect`` (at ``at``): fields compared only on statuses it does not expect,
    backend shares that do not add up to 1."""
    status = expect.get("status", 200)
    statuses = status if isinstance(status, list) else [status]
    statuses = [s for s in statuses if isinstance(s, int)]
    if not statuses:
        return
    if expect.get("redirect") is not None and not any(300 <= s < 400 for s in statuses):
        loc.problem(
            (*at, "redirect"),
            "is compared only on a 3xx response, and expect.status has none (add e.g. status: 302)",
        )
    if not any(s in (200, 204) for s in statuses):
        for key in ("backend", "namespace", "request", "backends"):
            if expect.get(key) is not None:
                loc.problem(
                    (*at, key),
                    f"is compared only on a 200 or 204 response, and expect.status is {status}",
                )
    backends = expect.get("backends")
    if (
        isinstance(backends, dict)
        and backends
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in backends.values())
    ):
        total = sum(float(v) for v in backends.values())
        if abs(total - 1.0) > 0.001:
            loc.problem(
                (*at, "backends"),
                f"shares add up to {total:g}; they must add up to 1",
            )


def _unaccepted_problems(
    entries: Any, loc: Located, objects: list[dict[str, Any]], manifests_ok: bool
) -> None:
    """Each ``unaccepted_routes`` entry names a route of the manifests: ``name`` (any
    namespace) or ``namespace/name`` (logical: no namespace is ``default``)."""
    if not isinstance(entries, list) or not manifests_ok:
        return
    routes: set[str] = set()
    for obj in objects:
        api = obj.get("apiVersion")
        if (
            obj.get("kind") in ROUTE_KINDS
            and isinstance(api, str)
            and api.startswith(GATEWAY_API_GROUP + "/")
        ):
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
            routes.add(f"{ns or 'default'}/{_name(obj)}")
    names = {r.split("/", 1)[1] for r in routes}
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            continue
        if entry in (routes if "/" in entry else names):
            continue
        known = sorted(routes if "/" in entry else names)
        hint = _did_you_mean(entry, known) or (
            f" (routes: {', '.join(sorted(routes))})"
            if routes
            else " (the manifests have no route)"
        )
        loc.problem(
            ("unaccepted_routes", i),
            f"no route {entry!r} in the manifests{hint}; list routes as NAME or NAMESPACE/NAME",
        )


def _feature_problems(features: Any, path: FieldPath, loc: Located) -> None:
    if not isinstance(features, list):
        return
    for i, name in enumerate(features):
        if isinstance(name, str) and not upstream.is_known(name):
            loc.problem((*path, i), upstream.unknown_feature_message(name))


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _build_check(
    raw: dict[str, Any], line: int, scenario_consecutive: int, scenario_timeout: float
) -> Check:
    req = raw.get("request") or {}
    grpc_raw = req.get("grpc")
    grpc = None
    if isinstance(grpc_raw, dict):
        grpc = GrpcRequest(metadata=dict(grpc_raw.get("metadata") or {}))
        if "service" in grpc_raw:
            grpc.service = grpc_raw["service"]
        if "method" in grpc_raw:
            grpc.method = grpc_raw["method"]
    request = Request(
        host=_opt_str(req.get("host")),
        path=req.get("path", "/"),
        method=str(req.get("method", "GET")).upper(),
        headers=dict(req.get("headers") or {}),
        scheme=req.get("scheme", "http"),
        port=req.get("port"),
        gateway=_opt_str(req.get("gateway")),
        backend_response_headers=dict(req.get("backend_response_headers") or {}),
        grpc=grpc,
    )
    exp = raw.get("expect") or {}
    status = exp.get("status", 200)
    er = exp.get("request")
    expected_request = None
    if isinstance(er, dict):
        method = er.get("method")
        expected_request = ExpectedRequest(
            path=er.get("path"),
            host=er.get("host"),
            method=method.upper() if isinstance(method, str) else None,
            headers=dict(er.get("headers") or {}),
            absent_headers=list(er.get("absent_headers") or []),
        )
    rd = exp.get("redirect")
    redirect = None
    if isinstance(rd, dict):
        redirect = ExpectedRedirect(
            scheme=rd.get("scheme"), host=rd.get("host"), port=rd.get("port"), path=rd.get("path")
        )
    backends = exp.get("backends")
    expect = Expect(
        status=[int(s) for s in (status if isinstance(status, list) else [status])],
        backend=exp.get("backend"),
        namespace=exp.get("namespace"),
        request=expected_request,
        headers=dict(exp.get("headers") or {}),
        absent_headers=list(exp.get("absent_headers") or []),
        redirect=redirect,
        backends={k: float(v) for k, v in backends.items()} if isinstance(backends, dict) else None,
    )
    return Check(
        name=raw["name"],
        request=request,
        expect=expect,
        line=line,
        consecutive=int(raw.get("consecutive", scenario_consecutive)),
        timeout=float(raw.get("timeout", scenario_timeout)),
        request_timeout=float(raw.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)),
        samples=int(raw.get("samples", DEFAULT_SAMPLES)),
        tolerance=float(raw.get("tolerance", DEFAULT_TOLERANCE)),
        features=list(raw.get("features") or []),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate one scenario (its folder, or its scenario.yaml).

    Raises ``ScenarioInvalid`` (an ``InputError``, exit 2) listing *every* problem found, each
    with file, line and field.
    """
    p = Path(path)
    if p.is_dir():
        folder, file = p, p / SCENARIO_FILE
    else:
        folder, file = p.parent, p
    if not file.is_file():
        raise InputError(
            f"no {SCENARIO_FILE} in {_display(folder)}"
            if p.is_dir()
            else f"scenario not found: {_display(p)}",
            hint="a scenario is a folder holding scenario.yaml and its manifests",
        )
    name = folder.resolve().name
    problems: list[Problem] = []
    loaded = load_yaml_document(file, problems)
    if loaded is None:
        raise ScenarioInvalid(problems, name=name)
    data, loc = loaded
    if data is None and problems:  # e.g. excessive aliasing: the document was not read
        raise ScenarioInvalid(problems, name=name)
    if data is None:
        problems.append(
            Problem(
                file,
                1,
                None,
                "the file is empty: a scenario needs at least description, gateway and checks",
            )
        )
        raise ScenarioInvalid(problems, name=name)
    if not isinstance(data, dict):
        problems.append(
            Problem(file, 1, None, f"expected a mapping of scenario keys, got {_describe(data)}")
        )
        raise ScenarioInvalid(problems, name=name)

    _schema_problems(data, loc)
    before = len(problems)
    manifest_files, manifests = _load_manifests(folder, file, data.get("manifests"), loc, problems)
    objects = [m.obj for m in manifests]
    manifests_ok = len(problems) == before
    _semantic_problems(data, loc, objects, manifests_ok)
    if problems:
        raise ScenarioInvalid(problems, name=name)

    consecutive = int(data.get("consecutive", DEFAULT_CONSECUTIVE))
    timeout = float(data.get("timeout", DEFAULT_CONVERGENCE_TIMEOUT))
    checks = [
        _build_check(raw, loc.line(("checks", i)) or 0, consecutive, timeout)
        for i, raw in enumerate(data["checks"])
    ]
    return Scenario(
        name=name,
        path=folder,
        file=file,
        description=" ".join(str(data["description"]).split()),
        gateway=data["gateway"],
        manifests=manifest_files,
        objects=objects,
        checks=checks,
        features=list(data.get("features") or []),
        consecutive=consecutive,
        timeout=timeout,
        tls=[
            TlsSecret(secret=t["secret"], hosts=list(t["hosts"]), namespace=t.get("namespace"))
            for t in data.get("tls") or []
        ],
        unaccepted_routes=list(data.get("unaccepted_routes") or []),
        object_sources=[(m.file, m.line) for m in manifests],
        manifest_objects=manifests,
    )


# --------------------------------------------------------------------------------------------
# Finding scenarios by name
# --------------------------------------------------------------------------------------------
