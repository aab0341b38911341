"""Whether an answer meets a check's expectation (upstream ``CompareRoundTrip``), and traffic shares over many answers (upstream ``conformance/utils/weight``)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from sandbox.probe.types import (
    Mismatch,
    Observed,
)
from sandbox.scenario.model import Check, ExpectedRequest

TIMEOUT_CODES = (408, 504)  # upstream IsTimeoutError


def backend_name(pod: str) -> str:
    """The backend a pod belongs to: its name minus the last two ``-`` parts (upstream weight)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _fmt_status(statuses: list[int]) -> str:
    return " or ".join(str(s) for s in statuses)


def compare(
    check: Check, observed: Observed, *, namespace_of: Callable[[str], str] = lambda ns: ns
) -> list[Mismatch]:
    """Every field where ``observed`` differs from ``check.expect`` (upstream CompareRoundTrip)."""
    exp = check.expect
    out: list[Mismatch] = []
    if observed.status is None:
        return [Mismatch("status", _fmt_status(exp.status), f"no response ({observed.error})")]
    status = observed.status
    if status not in exp.status:
        if not (status in TIMEOUT_CODES and any(s in TIMEOUT_CODES for s in exp.status)):
            out.append(Mismatch("status", _fmt_status(exp.status), str(status)))
            return out  # nothing else is meaningful for a different status
        return out  # a timeout that was expected: upstream stops here too

    if 300 <= status < 400 and exp.redirect is not None:
        out.extend(_compare_redirect(check, observed))

    if status in (200, 204):
        out.extend(_compare_backend(check, observed, namespace_of))

    for name, value in exp.headers.items():
        got = observed.header(name)
        if got != value:
            out.append(Mismatch(f"headers.{name}", value, "(absent)" if got is None else got))
    for name in exp.absent_headers:
        present = observed.header(name)
        if present is not None:
            out.append(Mismatch(f"absent_headers.{name}", "(absent)", present))
    return out


def _effective_expected_request(check: Check) -> ExpectedRequest:
    """What the backend must have seen: ``expect.request``, else the sent request unchanged."""
    req = check.request
    er = check.expect.request
    if er is None:
        return ExpectedRequest(
            path=req.path, host=req.host, method=req.method, headers=dict(req.headers)
        )
    return ExpectedRequest(
        path=er.path if er.path is not None else req.path,
        host=er.host,
        method=er.method if er.method is not None else req.method,
        headers=er.headers,
        absent_headers=er.absent_headers,
    )


def _compare_backend(
    check: Check, observed: Observed, namespace_of: Callable[[str], str]
) -> list[Mismatch]:
    exp = check.expect
    out: list[Mismatch] = []
    needs_echo = (
        exp.backend is not None
        or exp.namespace is not None
        or exp.request is not None
        or exp.backends is not None
    )
    seen = observed.request
    if seen is None:
        if needs_echo:
            snippet = observed.text[:80] if observed.text else "(empty body)"
            out.append(Mismatch("body", "the echo backend's JSON", f"not echo JSON: {snippet!r}"))
        return out
    er = _effective_expected_request(check)
    if er.host is not None and seen.host != er.host:
        out.append(Mismatch("request.host", er.host, seen.host))
    if er.path is not None and seen.path != er.path:
        out.append(Mismatch("request.path", er.path, seen.path))
    if er.method is not None and seen.method != er.method:
        out.append(Mismatch("request.method", er.method, seen.method))
    for name, value in er.headers.items():
        got = seen.header(name)
        if got != value:
            out.append(
                Mismatch(f"request.headers.{name}", value, "(absent)" if got is None else got)
            )
    for name in er.absent_headers:
        present = seen.header(name)
        if present is not None:
            out.append(Mismatch(f"request.absent_headers.{name}", "(absent)", present))
    if exp.namespace is not None:
        real = namespace_of(exp.namespace)
        if observed.namespace != real:
            shown = exp.namespace if real == exp.namespace else f"{exp.namespace} ({real})"
            out.append(Mismatch("namespace", shown, observed.namespace or "(none)"))
    if exp.backend is not None and not (observed.pod or "").startswith(exp.backend):
        out.append(Mismatch("backend", f"{exp.backend}*", observed.pod or "(no pod name)"))
    return out


def _compare_redirect(check: Check, observed: Observed) -> list[Mismatch]:
    exp = check.expect.redirect
    assert exp is not None
    req = check.request
    if not observed.location:
        return [Mismatch("redirect", _describe_redirect(check), "(no Location header)")]
    loc = urlsplit(observed.location)
    out: list[Mismatch] = []
    scheme = loc.scheme or req.scheme
    want_scheme = exp.scheme or req.scheme
    if scheme != want_scheme:
        out.append(Mismatch("redirect.scheme", want_scheme, scheme))
    host = loc.hostname or ""
    if exp.host is not None and host.lower() != exp.host.lower():
        out.append(Mismatch("redirect.host", exp.host, host or "(none)"))
    try:
        port = loc.port
    except ValueError:
        port = None
    if exp.port is None:
        if port not in (None, _default_port(scheme)):
            out.append(Mismatch("redirect.port", f"(none) or {_default_port(scheme)}", str(port)))
    elif port != exp.port:
        out.append(
            Mismatch("redirect.port", str(exp.port), "(none)" if port is None else str(port))
        )
    want_path = exp.path if exp.path is not None else urlsplit(req.path).path
    if loc.path != want_path:
        out.append(Mismatch("redirect.path", want_path, loc.path or "(empty)"))
    return out


def _describe_redirect(check: Check) -> str:
    r = check.expect.redirect
    assert r is not None
    parts = [
        f"{k}={v}"
        for k, v in (("scheme", r.scheme), ("host", r.host), ("port", r.port), ("path", r.path))
        if v
    ]
    return "a Location" + (f" with {', '.join(parts)}" if parts else "")


def compare_shares(check: Check, pods: list[str | None]) -> tuple[dict[str, float], list[Mismatch]]:
    """Traffic shares by backend over a round of samples, and where they miss expectations."""
    want = check.expect.backends or {}
    total = len(pods)
    counts: dict[str, int] = {}
    for pod in pods:
        name = backend_name(pod) if pod else "(no backend)"
        counts[name] = counts.get(name, 0) + 1
    shares = {k: v / total for k, v in sorted(counts.items())} if total else {}
    out: list[Mismatch] = []
    for name, share in sorted(want.items()):
        got = shares.get(name, 0.0)
        n = counts.get(name, 0)
        if share > 0 and n == 0:
            out.append(
                Mismatch(f"backends.{name}", f"{share:.2f}", f"0.00 (0/{total}): no traffic")
            )
        elif share == 0 and n > 0:
            out.append(
                Mismatch(f"backends.{name}", "0.00 (no traffic)", f"{got:.2f} ({n}/{total})")
            )
        elif abs(got - share) > check.tolerance:
            out.append(
                Mismatch(
                    f"backends.{name}",
                    f"{share:.2f} ± {check.tolerance:g}",
                    f"{got:.2f} ({n}/{total})",
                )
            )
    for name, n in sorted(counts.items()):
        if name not in want:
            out.append(
                Mismatch(
                    f"backends.{name}", "0.00 (not expected)", f"{n / total:.2f} ({n}/{total})"
                )
            )
    return shares, out
