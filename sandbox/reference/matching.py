"""Match semantics of Gateway API v1: hostnames, paths, headers, query params, gRPC methods.

Sources: HTTPRoute/GRPCRoute/Gateway field docs in the v1.6.1 CRDs (spec.hostnames,
spec.listeners[].hostname, rules[].matches) and apis/v1/httproute_types.go (PathMatchType).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qsl

from sandbox.reference.objects import GRPCMatch, HTTPMatch, StringMatch

# ---------------------------------------------------------------- hostnames


def strip_port(host: str) -> str:
    """The Host header without its port ("MUST ignore any port value"), lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_matches(pattern: str, host: str) -> bool:
    """``*.example.com`` is a suffix match on one or more labels; never ``example.com``."""
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        return host.endswith(suffix) and len(host) > len(suffix)
    return pattern == host


def intersect(listener: str | None, route: str) -> str | None:
    """Intersection of a listener hostname and one route hostname (the more specific one)."""
    if listener is None:
        return route
    if host_matches(listener, route) or listener == route:
        return route
    if route.startswith("*.") and host_matches(route, listener):
        return listener
    return None


def effective_hostnames(listener: str | None, route_hostnames: list[str]) -> list[str] | None:
    """Hostnames a route answers on a listener: [] = any host the listener takes;
    None = no intersection (the route does not attach to that listener)."""
    if not route_hostnames:
        return [listener] if listener else []
    out = []
    for h in route_hostnames:
        i = intersect(listener, h)
        if i is not None and i not in out:
            out.append(i)
    return out or None


def listener_host_rank(hostname: str | None, host: str) -> tuple[int, int] | None:
    """How specifically a listener hostname matches a request host; None when it does not.
    Exact > wildcard (more dots to the right of the ``*`` first) > empty (catch-all)."""
    if hostname is None:
        return (0, 0)
    if not host_matches(hostname, host):
        return None
    if hostname.startswith("*."):
        return (1, hostname.count("."))
    return (2, 0)


def hostname_rank(hostname: str | None) -> tuple[int, int]:
    """HTTPRoute/GRPCRoute precedence: characters in a matching non-wildcard hostname, then
    characters in a matching hostname."""
    if not hostname:
        return (0, 0)
    if hostname.startswith("*."):
        return (0, len(hostname))
    return (len(hostname), len(hostname))


def best_hostname(hostnames: list[str], host: str) -> str | Literal[False] | None:
    """The most specific of ``hostnames`` matching ``host``: None when the list is empty (any
    host), False when none matches."""
    if not hostnames:
        return None
    matching = [h for h in hostnames if host_matches(h, host)]
    if not matching:
        return False
    return max(matching, key=hostname_rank)


# ---------------------------------------------------------------- paths


def split_target(target: str) -> tuple[str, str]:
    """``/a/b?x=1`` -> ("/a/b", "x=1")."""
    path, _, query = target.partition("?")
    return (path or "/"), query


def prefix_matches(prefix: str, path: str) -> bool:
    """PathPrefix: element by element, a trailing ``/`` in the prefix is ignored:
    ``/abc`` matches ``/abc``, ``/abc/``, ``/abc/def`` but not ``/abcd``."""
    p = prefix.rstrip("/")
    if p == "":
        return path.startswith("/")
    return path == p or path.startswith(p + "/")


def path_matches(m: HTTPMatch, path: str) -> bool:
    if m.path_type == "Exact":
        return path == m.path_value
    if m.path_type == "PathPrefix":
        return prefix_matches(m.path_value, path)
    return re.fullmatch(m.path_value, path) is not None


def _value_matches(sm: StringMatch, value: str | None) -> bool:
    if value is None:
        return False
    if sm.type == "Exact":
        return value == sm.value
    return re.fullmatch(sm.value, value) is not None


def header_value(headers: dict[str, str], name: str) -> str | None:
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return v
    return None


def _header_failure(matches: list[StringMatch], headers: dict[str, str]) -> str | None:
    """Why the request's headers (gRPC metadata) fail a match's header conditions, or None."""
    for h in matches:
        v = header_value(headers, h.name)
        if not _value_matches(h, v):
            got = "absent" if v is None else repr(v)
            return f"header {h.name} {got} does not match {h.type} {h.value!r}"
    return None


def query_value(query: str, name: str) -> str | None:
    """The first value of a query param (the spec recommends the first when repeated)."""
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k == name:
            return v
    return None


def http_match_failure(
    m: HTTPMatch, method: str, path: str, query: str, headers: dict[str, str]
) -> str | None:
    """None when the match accepts the request, else why not."""
    if not path_matches(m, path):
        return f"path {path} does not match {m.path_type} {m.path_value}"
    if m.method and m.method != method.upper():
        return f"method {method} is not {m.method}"
    why = _header_failure(m.headers, headers)
    if why:
        return why
    for q in m.query:
        v = query_value(query, q.name)
        if not _value_matches(q, v):
            got = "absent" if v is None else repr(v)
            return f"query param {q.name} {got} does not match {q.type} {q.value!r}"
    return None


# Path match kinds, higher first. RegularExpression precedence is implementation-specific; like
# Envoy Gateway (envoyproxy/gateway internal/gatewayapi/sort.go: "Exact > RegularExpression >
# PathPrefix") it ranks between Exact and PathPrefix.
_PATH_KIND_RANK = {"Exact": 2, "RegularExpression": 1, "PathPrefix": 0}


def http_match_rank(m: HTTPMatch) -> tuple[int, int, int, int, int]:
    """Spec order: Exact path; PathPrefix with the most characters; method; most header
    matches; most query param matches (larger tuple wins)."""
    return (
        _PATH_KIND_RANK[m.path_type],
        len(m.path_value),
        1 if m.method else 0,
        len(m.headers),
        len(m.query),
    )


HTTP_RANK_NAMES = (
    "path match type (Exact > RegularExpression > PathPrefix)",
    "path characters",
    "method match",
    "number of header matches",
    "number of query param matches",
)


# ---------------------------------------------------------------- gRPC


def grpc_match_failure(
    m: GRPCMatch, service: str, method: str, metadata: dict[str, str]
) -> str | None:
    if m.type == "Exact":
        if m.service and m.service != service:
            return f"service {service} is not {m.service}"
        if m.method and m.method != method:
            return f"method {method} is not {m.method}"
    else:
        if m.service and re.fullmatch(m.service, service) is None:
            return f"service {service} does not match /{m.service}/"
        if m.method and re.fullmatch(m.method, method) is None:
            return f"method {method} does not match /{m.method}/"
    return _header_failure(m.headers, metadata)


def grpc_match_rank(m: GRPCMatch) -> tuple[int, int, int]:
    """Characters in a matching service, in a matching method, number of header matches."""
    return (len(m.service or ""), len(m.method or ""), len(m.headers))


GRPC_RANK_NAMES = ("service characters", "method characters", "number of header matches")
