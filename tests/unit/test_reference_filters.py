"""Filters of the reference model: header modifiers, ReplacePrefixMatch, redirect ports."""

from __future__ import annotations

import pytest

from sandbox.reference.filters import apply_header_ops, redirect_target, replace_prefix
from sandbox.reference.objects import HeaderOps, PathModifier, Redirect


def test_header_modifier_set_add_remove() -> None:
    ops = HeaderOps(
        set=[("X-Set", "new")], add=[("X-Add", "b"), ("X-New", "n")], remove=["x-remove"]
    )
    got = apply_header_ops(ops, {"x-set": "old", "x-add": "a", "X-Remove": "gone", "Keep": "k"})
    assert got == {"X-Set": "new", "x-add": "a,b", "X-New": "n", "Keep": "k"}


def test_header_modifier_add_joins_with_comma_like_the_spec_example() -> None:
    # responseHeaderModifier.add doc: my-header: foo + add "bar,baz" -> my-header: foo,bar,baz
    got = apply_header_ops(HeaderOps(add=[("my-header", "bar,baz")]), {"my-header": "foo"})
    assert got == {"my-header": "foo,bar,baz"}


def test_header_modifier_does_not_mutate_input() -> None:
    src = {"a": "1"}
    apply_header_ops(HeaderOps(remove=["a"]), src)
    assert src == {"a": "1"}


# The table in the spec (requestRedirect/urlRewrite path.replacePrefixMatch)
@pytest.mark.parametrize(
    ("path", "prefix", "replacement", "expected"),
    [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
    ],
)
def test_replace_prefix_match_table(
    path: str, prefix: str, replacement: str, expected: str
) -> None:
    assert replace_prefix(path, prefix, replacement) == expected


def _redirect(scheme: str | None = None, port: int | None = None, **kw: object) -> Redirect:
    return Redirect(scheme, kw.get("hostname"), port, kw.get("path"), 302)  # type: ignore[arg-type]


# requestRedirect.port: unset -> well-known port of the redirect scheme when a scheme is set,
# else the listener port; no port in Location for http:80 / https:443. The rows follow
# conformance/tests/httproute-redirect-port-and-scheme.go (gateway-api v1.6.1).
@pytest.mark.parametrize(
    ("listener_scheme", "listener_port", "scheme", "port", "expected_scheme", "expected_port"),
    [
        ("http", 80, None, None, "http", None),
        ("http", 80, None, 80, "http", None),
        ("http", 80, None, 8080, "http", 8080),
        ("http", 80, "https", None, "https", None),
        ("http", 80, "https", 443, "https", None),
        ("http", 80, "https", 8443, "https", 8443),
        ("http", 8080, None, None, "http", 8080),
        ("http", 8080, None, 80, "http", None),
        ("http", 8080, "https", None, "https", None),
        ("https", 443, None, None, "https", None),
        ("https", 443, None, 443, "https", None),
        ("https", 443, None, 8443, "https", 8443),
        ("https", 443, "http", None, "http", None),
        ("https", 443, "http", 80, "http", None),
        ("https", 443, "http", 8080, "http", 8080),
        ("https", 8443, None, None, "https", 8443),
    ],
)
def test_redirect_default_ports(
    listener_scheme: str,
    listener_port: int,
    scheme: str | None,
    port: int | None,
    expected_scheme: str,
    expected_port: int | None,
) -> None:
    got_scheme, _host, got_port, _path, location = redirect_target(
        _redirect(scheme, port), listener_scheme, "example.org", listener_port, "/p", "", None
    )
    assert (got_scheme, got_port) == (expected_scheme, expected_port)
    suffix = f":{expected_port}" if expected_port else ""
    assert location == f"{expected_scheme}://example.org{suffix}/p"


def test_redirect_hostname_path_and_query() -> None:
    r = Redirect(None, "example.org", None, PathModifier("ReplacePrefixMatch", "/new"), 301)
    _scheme, host, _port, path, location = redirect_target(
        r, "http", "www.example.com", 80, "/old/x", "a=1", "/old"
    )
    assert (host, path) == ("example.org", "/new/x")
    assert location == "http://example.org/new/x?a=1"
    full = Redirect(None, None, None, PathModifier("ReplaceFullPath", "/full"), 302)
    assert redirect_target(full, "http", "www.example.com", 80, "/old/x", "", "/old")[4] == (
        "http://www.example.com/full"
    )
