"""Run a scenario's checks through the reference model; one message per disagreement.

Each message reads like a failed check: ``file:line: check 'NAME': FIELD: model says X,
expected Y``. Expectations the model cannot know are skipped rather than guessed:

- request headers a proxy adds on its own (``X-Forwarded-*``, ``X-Envoy-*``, ``X-Request-Id``,
  ``Via``...) when the model has no value for them;
- response headers that neither the route's filters nor ``backend_response_headers`` produce
  (``Content-Type``, ``Date``... come from the backend or the proxy).

Statuses are strict: every status the model can answer (e.g. 200 *and* 500 when part of the
weight goes to an invalid backendRef) must be among the expected ones, because a check that
passes only sometimes is flaky.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from sandbox.manifests import display_path
from sandbox.reference import matching as mt
from sandbox.reference.decision import Decision, ModelRedirect
from sandbox.reference.filters import DEFAULT_PORTS, apply_header_ops
from sandbox.reference.model import Model
from sandbox.scenario.model import Check, Expect, ExpectedRedirect, ExpectedRequest, Scenario

# headers a proxy may add on its way to the backend; unknown to the model
PROXY_HEADERS = ("x-forwarded-", "x-envoy-", "x-request-id", "via", "forwarded", "x-real-ip")
INVALID_SHARE = "(500: invalid backendRef)"
NO_PODS_SHARE = "(503: Service without pods)"


def build_model(scenario: Scenario) -> Model:
    sources = [f"{f}:{line}" for f, line in scenario.object_sources]
    return Model.from_objects(scenario.objects, sources or None)


def unattached_lines(model: Model) -> list[str]:
    """One line per route attached to no listener, with why: ``file:line: HTTPRoute ns/name
    is attached to no listener: parentRef Gateway ns/gw sectionName=https: not accepted
    (sectionName https names no listener of Gateway ns/gw (listeners: http:80))``."""
    lines = []
    for u in model.unattached():
        where = ""
        if u.source:
            file, _, line = u.source.rpartition(":")
            where = (
                f"{display_path(Path(file))}:{line}: "
                if line.isdigit()
                else f"{display_path(Path(u.source))}: "
            )
        lines.append(where + u.describe())
    return lines


def verify_scenario(scenario: Scenario, model: Model | None = None) -> list[str]:
    """Return one message per check field where the model disagrees with the expectation.

    Raises InputError when the manifests are invalid (the API server would refuse them)."""
    model = model or build_model(scenario)
    messages: list[str] = []
    for check in scenario.checks:
        messages.extend(verify_check(scenario, model, check))
    return messages


def _where(scenario: Scenario, check: Check) -> str:
    return f"{scenario.check_location(check)}: check '{check.name}'"


def decide_check(scenario: Scenario, model: Model, check: Check) -> Decision:
    req = check.request
    gateway = req.gateway or scenario.gateway
    port = req.port or DEFAULT_PORTS.get(req.scheme, 80)
    host = req.host or ""
    if req.grpc is not None:
        return model.decide_grpc(
            gateway,
            port,
            host,
            req.grpc.service,
            req.grpc.method,
            dict(req.grpc.metadata),
            scheme=req.scheme,
        )
    return model.decide(
        gateway, port, req.method, host, req.path or "/", dict(req.headers), scheme=req.scheme
    )


_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def echo_delay(target: str) -> float | None:
    """The delay the upstream echo backend is asked for with ``?delay=<Go duration>``
    (gateway-api conformance/echo-basic: "?delay=10s on any echo path delays the reply")."""
    value = mt.query_value(mt.split_target(target)[1], "delay")
    if not value:
        return None
    parts = _GO_DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _timed_out(d: Decision) -> bool:
    """A rule timeout (0 disables it) shorter than the echo delay: the gateway answers 504."""
    delay = echo_delay(d.request.path)
    if delay is None:
        return False
    limits = [t for t in (d.request_timeout, d.backend_timeout) if t]
    return any(delay > t for t in limits)


def _possible_statuses(d: Decision) -> list[int]:
    if d.status != 200:
        return [d.status]
    if _timed_out(d):
        return [504]
    shares = d.backend_shares()
    out = []
    if any(k not in ("500", "503") for k in shares):
        out.append(200)
    out.extend(code for code in (500, 503) if str(code) in shares)
    return out or [d.status]


def deployment_shares(model: Model, d: Decision) -> dict[str, float]:
    """Traffic share per Deployment name (pods answer in proportion to their replicas)."""
    out: dict[str, float] = {}
    for key, share in d.backend_shares().items():
        if key in ("500", "503"):
            label = INVALID_SHARE if key == "500" else NO_PODS_SHARE
            out[label] = out.get(label, 0.0) + share
            continue
        ns, _, name = key.partition("/")
        deps = model.backends_of(ns, name)
        pods = sum(max(x.replicas, 0) for x in deps)
        if not deps or pods == 0:
            label = f"(Service {key} without pods)"
            out[label] = out.get(label, 0.0) + share
            continue
        for dep in deps:
            out[dep.name] = out.get(dep.name, 0.0) + share * max(dep.replicas, 0) / pods
    return out


def _answering(model: Model, d: Decision) -> list[tuple[str, str]]:
    """(namespace, deployment) of every Deployment that may answer."""
    out = []
    for b in d.backends:
        if b.valid and b.weight > 0:
            for dep in model.backends_of(b.namespace, b.name):
                if dep.replicas > 0:
                    out.append((dep.namespace, dep.name))
    return out


def _get_ci(headers: dict[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


# one disagreement: bad(field, what the model says, what the check expects)
_Bad = Callable[[str, object, object], None]


def verify_check(scenario: Scenario, model: Model, check: Check) -> list[str]:
    where = _where(scenario, check)
    exp = check.expect
    d = decide_check(scenario, model, check)
    msgs: list[str] = []

    def bad(field: str, got: object, want: object) -> None:
        msgs.append(f"{where}: {field}: model says {got!r}, expected {want!r} ({d.reason})")

    statuses = _possible_statuses(d)
    missing = [s for s in statuses if s not in exp.status]
    if missing:
        bad(
            "status",
            statuses if len(statuses) > 1 else statuses[0],
            exp.status if len(exp.status) > 1 else exp.status[0],
        )
        return msgs  # the rest follows from a different answer
    if statuses == [504]:
        return msgs
    ok = 200 in statuses
    answering = _answering(model, d) if ok else []

    if ok:
        _verify_answering(exp, answering, bad)
    if exp.request is not None and ok:
        _verify_request(exp.request, d, bad)
    if exp.headers or exp.absent_headers:
        _verify_response_headers(check, d, ok, bad)
    if exp.redirect is not None:
        _verify_redirect(exp.redirect, d.redirect, bad)
    if exp.backends is not None:
        shares = deployment_shares(model, d) if ok or 500 in statuses else {}
        _verify_shares(exp.backends, shares, check.tolerance, bad)
    return msgs


def _verify_answering(exp: Expect, answering: list[tuple[str, str]], bad: _Bad) -> None:
    """``expect.backend`` and ``expect.namespace`` against every Deployment that may answer."""
    if exp.backend is not None:
        if not answering:
            bad("backend", "no Deployment behind the chosen Service", exp.backend)
        for _ns, dep in answering:
            pod = f"{dep}-"
            if not (pod.startswith(exp.backend) or exp.backend.startswith(pod)):
                bad("backend", dep, exp.backend)
    if exp.namespace is not None:
        for ns, _dep in answering:
            if ns != exp.namespace:
                bad("namespace", ns, exp.namespace)


def _verify_request(er: ExpectedRequest, d: Decision, bad: _Bad) -> None:
    """``expect.request`` against the request every backend that may answer gets."""
    seen = [b.request for b in d.backends if b.valid and b.weight > 0 and b.request] or [d.request]
    for r in seen:
        if er.path is not None and r.path != er.path:
            bad("request.path", r.path, er.path)
        if er.host is not None and r.host != er.host:
            bad("request.host", r.host, er.host)
        if er.method is not None and r.method != er.method.upper():
            bad("request.method", r.method, er.method)
        for name, value in er.headers.items():
            got = _get_ci(r.headers, name)
            if got is None and name.lower().startswith(PROXY_HEADERS):
                continue
            if got != value:
                bad(f"request.headers.{name}", got, value)
        for name in er.absent_headers:
            got = _get_ci(r.headers, name)
            if got is not None:
                bad(f"request.absent_headers.{name}", got, "absent")


def _response_variants(check: Check, d: Decision, ok: bool) -> list[dict[str, str]]:
    """The response headers the client may get: one set per backend that may answer (the
    backend's own headers, then the filters'), or the gateway's own answer."""
    if d.redirect is not None or not ok:
        return [dict(d.response_headers)]
    base = dict(check.request.backend_response_headers)
    variants = []
    for b in d.backends:
        if b.valid and b.weight > 0:
            hdrs = dict(base)
            for ops in b.response_header_ops:
                hdrs = apply_header_ops(ops, hdrs)
            variants.append(hdrs)
    return variants or [base]


def _touched_headers(check: Check, d: Decision) -> set[str]:
    """Response header names (lower case) the model knows about: the backend's, the filters'
    and the gateway's own."""
    touched = {n.lower() for n in check.request.backend_response_headers}
    for b in d.backends:
        for ops in b.response_header_ops:
            touched |= {n.lower() for n, _ in ops.set + ops.add} | {n.lower() for n in ops.remove}
    touched |= {n.lower() for n in d.response_headers}
    return touched


def _verify_response_headers(check: Check, d: Decision, ok: bool, bad: _Bad) -> None:
    """``expect.headers`` and ``expect.absent_headers`` against every possible response."""
    exp = check.expect
    variants = _response_variants(check, d, ok)
    touched = _touched_headers(check, d)
    for hdrs in variants:
        for name, value in exp.headers.items():
            got = _get_ci(hdrs, name)
            if got is None and name.lower() not in touched:
                continue  # set by the backend or the proxy: unknown to the model
            if got != value:
                bad(f"headers.{name}", got, value)
        for name in exp.absent_headers:
            got = _get_ci(hdrs, name)
            if got is not None:
                bad(f"absent_headers.{name}", got, "absent")


def _verify_redirect(er2: ExpectedRedirect, rd: ModelRedirect | None, bad: _Bad) -> None:
    """``expect.redirect`` against the model's redirect."""
    if rd is None:
        bad("redirect", None, "a redirect")
        return
    if er2.scheme is not None and rd.scheme != er2.scheme:
        bad("redirect.scheme", rd.scheme, er2.scheme)
    if er2.host is not None and rd.host != er2.host:
        bad("redirect.host", rd.host, er2.host)
    if er2.path is not None and rd.path != er2.path:
        bad("redirect.path", rd.path, er2.path)
    want_port = er2.port
    got_port = rd.port if rd.port is not None else DEFAULT_PORTS.get(rd.scheme)
    if want_port is None:
        if rd.port is not None and rd.port != DEFAULT_PORTS.get(rd.scheme):
            bad("redirect.port", rd.port, f"the default port of {rd.scheme}")
    elif got_port != want_port:
        bad("redirect.port", got_port, want_port)


def _verify_shares(
    want: dict[str, float], shares: dict[str, float], tolerance: float, bad: _Bad
) -> None:
    """``expect.backends`` against the model's traffic share per Deployment."""
    names = set(shares) | set(want)
    for name in sorted(names):
        got_share = shares.get(name, 0.0)
        want_share = want.get(name, 0.0)
        if abs(got_share - want_share) > tolerance + 1e-9:
            bad(f"backends.{name}", round(got_share, 4), want_share)
