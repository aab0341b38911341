"""Match semantics of the reference model, one table per spec rule (Gateway API v1.6.1 CRD docs)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.reference import matching as mt
from sandbox.reference.objects import GRPCMatch, HTTPMatch, StringMatch


# spec.hostnames: "*.example.com" matches test.example.com and foo.test.example.com, not example.com
@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.example.com", "test.example.com", True),
        ("*.example.com", "foo.test.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "test.example.net", False),
        ("test.example.com", "test.example.com", True),
        ("test.example.com", "Test.example.com".lower(), True),
        ("test.example.com", "other.example.com", False),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert mt.host_matches(pattern, host) is expected


# listener test.example.com takes routes with test.example.com or *.example.com; listener
# *.example.com takes *.example.com, test.example.com, foo.test.example.com but not example.com
# or test.example.net. Non-matching route hostnames are ignored.
@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        ("test.example.com", [], ["test.example.com"]),
        ("test.example.com", ["test.example.com"], ["test.example.com"]),
        ("test.example.com", ["*.example.com"], ["test.example.com"]),
        ("test.example.com", ["other.example.com"], None),
        ("*.example.com", ["*.example.com"], ["*.example.com"]),
        ("*.example.com", ["test.example.com"], ["test.example.com"]),
        ("*.example.com", ["foo.test.example.com"], ["foo.test.example.com"]),
        ("*.example.com", ["example.com"], None),
        ("*.example.com", ["test.example.net"], None),
        ("*.example.com", ["test.example.com", "test.example.net"], ["test.example.com"]),
        ("*.example.com", ["*.foo.example.com"], ["*.foo.example.com"]),
        ("*.foo.example.com", ["*.example.com"], ["*.foo.example.com"]),
        (None, ["a.example.com"], ["a.example.com"]),
        (None, [], []),
    ],
)
def test_effective_hostnames(
    listener: str | None, route: list[str], expected: list[str] | None
) -> None:
    assert mt.effective_hostnames(listener, route) == expected


def test_listener_rank_exact_over_wildcard_over_more_dots_over_empty() -> None:
    host = "foo.bar.example.com"
    ranks = [
        mt.listener_host_rank("foo.bar.example.com", host),
        mt.listener_host_rank("*.bar.example.com", host),
        mt.listener_host_rank("*.example.com", host),
        mt.listener_host_rank(None, host),
    ]
    assert all(r is not None for r in ranks)
    assert ranks == sorted(ranks, reverse=True)  # type: ignore[type-var]
    assert len(set(ranks)) == 4
    assert mt.listener_host_rank("other.example.com", host) is None


def test_route_hostname_rank_non_wildcard_characters_first() -> None:
    # "Characters in a matching non-wildcard hostname", then "characters in a matching hostname"
    assert mt.hostname_rank("a.example.com") > mt.hostname_rank("*.long-name.example.com")
    assert mt.hostname_rank("*.b.example.com") > mt.hostname_rank("*.example.com")
    assert mt.hostname_rank("*.example.com") > mt.hostname_rank(None)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.com", "www.example.com"),
        ("WWW.Example.com:8080", "www.example.com"),
        ("[::1]:80", "[::1]"),
    ],
)
def test_host_header_port_is_ignored(host: str, expected: str) -> None:
    assert mt.strip_port(host) == expected


# PathPrefix: element-wise, trailing "/" of the prefix ignored (apis/v1/httproute_types.go)
@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/abc", "/abc", True),
        ("/abc", "/abc/", True),
        ("/abc", "/abc/def", True),
        ("/abc", "/abcd", False),
        ("/abc/", "/abc", True),
        ("/abc/", "/abc/def", True),
        ("/abc/", "/abcd", False),
        ("/", "/anything", True),
        ("/", "/", True),
        ("/v2/foo", "/v2", False),
    ],
)
def test_path_prefix_segments(prefix: str, path: str, expected: bool) -> None:
    assert mt.prefix_matches(prefix, path) is expected


_segment = st.text(alphabet="abcxyz-_.0", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(_segment, min_size=1, max_size=4), st.lists(_segment, max_size=3), st.booleans())
def test_path_prefix_property_whole_segments(
    prefix_segs: list[str], extra: list[str], slash: bool
) -> None:
    prefix = "/" + "/".join(prefix_segs) + ("/" if slash else "")
    path = "/" + "/".join(prefix_segs + extra)
    assert mt.prefix_matches(prefix, path)
    # appending characters to the last segment never matches
    assert not mt.prefix_matches(
        prefix, "/" + "/".join(prefix_segs) + "x" + "".join("/" + e for e in extra)
    )


def _m(path_type: str = "PathPrefix", value: str = "/", **kw: object) -> HTTPMatch:
    return HTTPMatch(
        path_type,
        value,
        list(kw.get("headers", [])),  # type: ignore[call-overload]
        list(kw.get("query", [])),  # type: ignore[call-overload]
        kw.get("method"),  # type: ignore[arg-type]
        0,
    )


def test_exact_path_is_case_sensitive_and_exact() -> None:
    m = _m("Exact", "/abc")
    assert mt.http_match_failure(m, "GET", "/abc", "", {}) is None
    for p in ("/abc/", "/Abc", "/abcd"):
        assert mt.http_match_failure(m, "GET", p, "", {}) is not None


def test_regex_path_is_a_full_match() -> None:
    m = _m("RegularExpression", "/v[0-9]+/.*")
    assert mt.http_match_failure(m, "GET", "/v2/x", "", {}) is None
    assert mt.http_match_failure(m, "GET", "/x/v2/x", "", {}) is not None


def test_header_names_case_insensitive_values_exact_or_regex() -> None:
    m = _m(
        headers=[
            StringMatch("Version", "Exact", "two"),
            StringMatch("env", "RegularExpression", "can.*"),
        ]
    )
    assert mt.http_match_failure(m, "GET", "/", "", {"version": "two", "ENV": "canary"}) is None
    assert mt.http_match_failure(m, "GET", "/", "", {"version": "Two", "ENV": "canary"}) is not None
    assert mt.http_match_failure(m, "GET", "/", "", {"version": "two"}) is not None


def test_query_params_exact_names_first_value() -> None:
    m = _m(query=[StringMatch("animal", "Exact", "whale")])
    assert mt.http_match_failure(m, "GET", "/", "animal=whale&animal=dolphin", {}) is None
    assert mt.http_match_failure(m, "GET", "/", "animal=dolphin&animal=whale", {}) is not None
    assert mt.http_match_failure(m, "GET", "/", "Animal=whale", {}) is not None


def test_method_match() -> None:
    m = _m(method="POST")
    assert mt.http_match_failure(m, "POST", "/", "", {}) is None
    assert mt.http_match_failure(m, "GET", "/", "", {}) == "method GET is not POST"


def test_http_match_rank_order() -> None:
    ranks = [
        mt.http_match_rank(_m("Exact", "/a")),
        mt.http_match_rank(_m("RegularExpression", "/a.*")),
        mt.http_match_rank(_m("PathPrefix", "/abc")),
        mt.http_match_rank(_m("PathPrefix", "/a", method="GET")),
        mt.http_match_rank(_m("PathPrefix", "/a", headers=[StringMatch("a", "Exact", "1")] * 2)),
        mt.http_match_rank(_m("PathPrefix", "/a", headers=[StringMatch("a", "Exact", "1")])),
        mt.http_match_rank(_m("PathPrefix", "/a", query=[StringMatch("a", "Exact", "1")])),
        mt.http_match_rank(_m("PathPrefix", "/a")),
    ]
    assert ranks == sorted(ranks, reverse=True)
    assert len(set(ranks)) == len(ranks)


def test_grpc_method_matching() -> None:
    exact = GRPCMatch("Exact", "pkg.Svc", "Echo", [], 0)
    assert mt.grpc_match_failure(exact, "pkg.Svc", "Echo", {}) is None
    assert mt.grpc_match_failure(exact, "pkg.Svc", "Other", {}) is not None
    only_service = GRPCMatch("Exact", "pkg.Svc", None, [], 0)
    assert mt.grpc_match_failure(only_service, "pkg.Svc", "Anything", {}) is None
    regex = GRPCMatch("RegularExpression", r"pkg\..*", "Ec.o", [StringMatch("k", "Exact", "v")], 0)
    assert mt.grpc_match_failure(regex, "pkg.Svc", "Echo", {"K": "v"}) is None
    assert mt.grpc_match_failure(regex, "other.Svc", "Echo", {"K": "v"}) is not None
    assert mt.grpc_match_rank(exact) > mt.grpc_match_rank(only_service)
