"""The reference model against a real gateway, one response at a time.

A check's expectation says only what its author wrote down; the model predicts the whole answer
(status, the Deployment that answers, the request as the backend sees it, the headers filters
set, a redirect's Location). :func:`compare_check` holds one real response against that
prediction and lists every field where they differ. It is what lets the library run on the real
stack say "the model and Envoy Gateway disagree" even where a check passes, and what
``sandbox compare`` prints side by side.

The model does not claim to know everything: fields it cannot know are skipped, never guessed
(the proxy's own request headers, response headers no filter touches, traffic shares from one
response), and a check that needs a feature outside ``features.LOCAL_SUPPORTED`` (what the model
implements) is not compared at all (:func:`model_knows`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.probe.types import Observed
from sandbox.reference.decision import Decision
from sandbox.reference.filters import DEFAULT_PORTS, apply_header_ops
from sandbox.reference.model import Model
from sandbox.reference.verify import PROXY_HEADERS, _possible_statuses, decide_check
from sandbox.scenario import features as features_mod
from sandbox.scenario.model import Check, Scenario


@dataclass
class Difference:
    field: str
    model: str
    real: str


@dataclass
class Comparison:
    check: Check
    decision: Decision
    observed: Observed | None
    differences: list[Difference] = field(default_factory=list)
    known: bool = True  # False: the model does not claim to know (why_unknown says why)
    why_unknown: str | None = None

    @property
    def agree(self) -> bool:
        return not self.differences

    def model_route(self) -> str:
        d = self.decision
        if d.route is None:
            return f"no route ({d.status})"
        return f"{d.route} rule {d.rule}"


def model_knows(scenario: Scenario, check: Check) -> str | None:
    """None when the model claims to know the check's answer, else why not."""
    needed = set(scenario.features) | set(check.features)
    unknown = sorted(
        needed
        - features_mod.LOCAL_SUPPORTED
        - {"Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant"}
    )
    if unknown:
        return "the reference model does not implement " + ", ".join(unknown)
    if check.expect.backends is not None:
        return "traffic shares are not compared one response at a time"
    return None


def deployment_of(pod: str) -> str:
    """``backend-v1-7446699859-vx9f7`` -> ``backend-v1`` (a Deployment's pods are named
    ``<deployment>-<pod-template-hash>-<suffix>``: kube-controller-manager's ReplicaSet and
    pod name generators)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


def _norm_location(location: str, default_scheme: str) -> tuple[str, str, int | None, str]:
    u = urllib.parse.urlsplit(location)
    scheme = u.scheme or default_scheme
    port = u.port if u.port is not None else DEFAULT_PORTS.get(scheme)
    path = u.path + (f"?{u.query}" if u.query else "")
    return scheme, (u.hostname or ""), port, path


def compare_check(
    scenario: Scenario,
    model: Model,
    check: Check,
    observed: Observed | None,
    namespace_of: Callable[[str], str],
) -> Comparison:
    """Hold one real response of ``check`` against the model's prediction.

    ``namespace_of`` maps the scenario's logical namespaces onto the run's real ones."""
    d = decide_check(scenario, model, check)
    out = Comparison(check, d, observed)
    why = model_knows(scenario, check)
    if why is not None:
        out.known, out.why_unknown = False, why
        return out
    if observed is None or observed.status is None:
        out.differences.append(
            Difference(
                "status",
                str(_possible_statuses(d)),
                observed.summary() if observed else "no response",
            )
        )
        return out

    def differ(name: str, model_says: object, real: object) -> None:
        out.differences.append(Difference(name, str(model_says), str(real)))

    statuses = _possible_statuses(d)
    if observed.status not in statuses:
        differ("status", statuses[0] if len(statuses) == 1 else statuses, observed.status)
        return out  # the rest follows from a different answer
    if observed.status == 504:
        return out
    if observed.status == 200:
        answering = {
            (namespace_of(dep.namespace), dep.name)
            for b in d.backends
            if b.valid and b.weight > 0
            for dep in model.backends_of(b.namespace, b.name)
            if dep.replicas > 0
        }
        if observed.pod:
            seen = (observed.namespace or "", deployment_of(observed.pod))
            if answering and seen not in answering:
                differ(
                    "backend",
                    " or ".join(sorted(f"{ns}/{n}" for ns, n in answering)),
                    f"{seen[0]}/{seen[1]} (pod {observed.pod})",
                )
                return out
        if observed.request is not None and check.request.grpc is None:
            _compare_request(check, d, observed, differ)
        _compare_response_headers(check, d, observed, differ)
    if d.redirect is not None:
        if not observed.location:
            differ("redirect", d.redirect.location, "no Location")
        else:
            want = _norm_location(d.redirect.location, check.request.scheme)
            got = _norm_location(observed.location, check.request.scheme)
            if want != got:
                differ("redirect.location", d.redirect.location, observed.location)
    return out


def _compare_request(
    check: Check, d: Decision, observed: Observed, differ: Callable[[str, object, object], None]
) -> None:
    seen = observed.request
    assert seen is not None
    wanted = [b.request for b in d.backends if b.valid and b.weight > 0 and b.request] or [
        d.request
    ]
    if len({(r.path, r.host, r.method) for r in wanted}) > 1:
        return  # backends see different requests: one response cannot say which was meant
    r = wanted[0]
    if seen.path != r.path:
        differ("request.path", r.path, seen.path)
    # a check without a host sends the address it reaches (127.0.0.1:PORT); the model then
    # knows the host only when a filter rewrites it
    if (check.request.host is not None or r.host) and seen.host != r.host:
        differ("request.host", r.host, seen.host)
    if seen.method != r.method:
        differ("request.method", r.method, seen.method)
    names = {n.lower() for n in check.request.headers} | {n.lower() for n in r.headers}
    for name in sorted(names - {"host"}):
        if name.startswith(PROXY_HEADERS):
            continue
        want = next((v for k, v in r.headers.items() if k.lower() == name), None)
        got = seen.header(name)
        if want != got:
            differ(
                f"request.headers.{name}",
                want if want is not None else "absent",
                got if got is not None else "absent",
            )


def _compare_response_headers(
    check: Check, d: Decision, observed: Observed, differ: Callable[[str, object, object], None]
) -> None:
    valid = [b for b in d.backends if b.valid and b.weight > 0]
    if len(valid) != 1:
        return  # which backend's filters applied is not known from one response
    touched: set[str] = set()
    for ops in valid[0].response_header_ops:
        touched |= {n.lower() for n, _ in ops.set + ops.add} | {n.lower() for n in ops.remove}
    if not touched:
        return
    hdrs = dict(check.request.backend_response_headers)
    for ops in valid[0].response_header_ops:
        hdrs = apply_header_ops(ops, hdrs)
    for name in sorted(touched):
        want = next((v for k, v in hdrs.items() if k.lower() == name), None)
        got = observed.header(name)
        if want != got:
            differ(
                f"headers.{name}",
                want if want is not None else "absent",
                got if got is not None else "absent",
            )
