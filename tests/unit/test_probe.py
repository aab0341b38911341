"""Comparison and convergence, without the network or the wall clock (injected send/clock)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.errors import TargetUnreachable
from sandbox.probe.expect import backend_name, compare, compare_shares
from sandbox.probe.http import parse_echo
from sandbox.probe.prober import SETTLED_ROUNDS, Prober
from sandbox.probe.types import Address, Mismatch, Observed, ProbeRequest, Refusals, SeenRequest
from sandbox.scenario.model import (
    Check,
    Expect,
    ExpectedRedirect,
    ExpectedRequest,
    GrpcRequest,
    Request,
)

ADDR = Address("127.0.0.1", 8080)


def echo(
    path: str = "/",
    *,
    status: int = 200,
    pod: str = "backend-5d9f7-abcde",
    namespace: str = "default",
    host: str = "www.example.com",
    method: str = "GET",
    headers: dict[str, list[str]] | None = None,
    response_headers: dict[str, str] | None = None,
) -> Observed:
    return Observed(
        status=status,
        headers=response_headers or {},
        pod=pod,
        namespace=namespace,
        request=SeenRequest(path, host, method, headers or {}),
    )


def check(**kw: object) -> Check:
    request = kw.pop("request", Request(host="www.example.com"))
    expect = kw.pop("expect", Expect())
    return Check(name="c", request=request, expect=expect, **kw)  # type: ignore[arg-type]


def fields(mismatches: list[Mismatch]) -> list[str]:
    return [m.field for m in mismatches]


# --- status ---------------------------------------------------------------------------------


def test_status_in_list_passes_and_other_status_stops_comparison() -> None:
    c = check(expect=Expect(status=[301, 302]))
    assert compare(c, Observed(status=302, location="http://www.example.com/")) == []
    m = compare(check(expect=Expect(status=[200], backend="x")), Observed(status=404))
    assert [(x.field, x.expected, x.observed) for x in m] == [("status", "200", "404")]


def test_timeout_codes_are_interchangeable_when_a_timeout_is_expected() -> None:
    assert compare(check(expect=Expect(status=[504])), Observed(status=408)) == []
    assert fields(compare(check(expect=Expect(status=[200])), Observed(status=504))) == ["status"]


def test_no_response_is_a_status_mismatch_with_the_error() -> None:
    m = compare(check(), Observed(status=None, error="ConnectionError: Connection refused"))
    assert m[0].field == "status"
    assert "Connection refused" in m[0].observed


# --- what the backend saw (200/204) -----------------------------------------------------------


def test_default_expected_request_is_the_sent_request() -> None:
    c = check(request=Request(host="www.example.com", path="/a?b=1", headers={"x-foo": "bar"}))
    ok = echo("/a?b=1", headers={"X-Foo": ["bar"]})
    assert compare(c, ok) == []
    assert fields(compare(c, echo("/a"))) == ["request.path", "request.headers.x-foo"]
    assert fields(compare(c, echo("/a?b=1", headers={"X-Foo": ["bar"]}, host="other"))) == [
        "request.host"
    ]


def test_expected_request_fields_default_and_host_only_when_given() -> None:
    c = check(
        request=Request(host="a.example.com", path="/p", method="POST"),
        expect=Expect(request=ExpectedRequest(headers={"x-added": "1"})),
    )
    seen = echo("/p", method="POST", host="rewritten.example.com", headers={"X-Added": ["1"]})
    assert compare(c, seen) == []  # host not compared: expect.request has none
    assert fields(compare(c, echo("/p", method="GET", headers={"X-Added": ["1"]}))) == [
        "request.method"
    ]


def test_header_values_joined_with_comma_and_names_case_insensitive() -> None:
    c = check(
        expect=Expect(
            request=ExpectedRequest(path="/", headers={"x-multi": "a,b"}, absent_headers=["x-gone"])
        )
    )
    assert compare(c, echo("/", headers={"X-Multi": ["a", "b"]})) == []
    m = compare(c, echo("/", headers={"X-Multi": ["a"], "X-Gone": ["still"]}))
    assert [(x.field, x.expected, x.observed) for x in m] == [
        ("request.headers.x-multi", "a,b", "a"),
        ("request.absent_headers.x-gone", "(absent)", "still"),
    ]


def test_backend_is_a_pod_name_prefix_and_namespace_is_mapped() -> None:
    c = check(expect=Expect(backend="backend", namespace="web"))
    mapped = {"web": "sbx-run-web"}.get
    good = echo(namespace="sbx-run-web")
    assert compare(c, good, namespace_of=lambda ns: mapped(ns) or ns) == []
    m = compare(
        c,
        echo(pod="other-5d9f7-abcde", namespace="sbx-run"),
        namespace_of=lambda ns: mapped(ns) or ns,
    )
    assert [(x.field, x.expected, x.observed) for x in m] == [
        ("namespace", "web (sbx-run-web)", "sbx-run"),
        ("backend", "backend*", "other-5d9f7-abcde"),
    ]


def test_non_echo_body_when_the_backend_is_expected() -> None:
    m = compare(check(expect=Expect(backend="b")), Observed(status=200, text="hello"))
    assert [(x.field, x.observed) for x in m] == [("body", "not echo JSON: 'hello'")]
    assert compare(check(), Observed(status=200, text="hello")) == []  # nothing to compare


def test_response_headers_present_and_absent() -> None:
    c = check(expect=Expect(headers={"x-resp": "v1,v2"}, absent_headers=["Server"]))
    assert compare(c, echo(response_headers={"X-Resp": "v1,v2"})) == []
    m = compare(c, echo(response_headers={"Server": "envoy"}))
    assert [(x.field, x.expected, x.observed) for x in m] == [
        ("headers.x-resp", "v1,v2", "(absent)"),
        ("absent_headers.Server", "(absent)", "envoy"),
    ]


# --- redirects ------------------------------------------------------------------------------


def redirect_check(
    redirect: ExpectedRedirect, path: str = "/old?q=1", scheme: str = "http"
) -> Check:
    return check(
        request=Request(host="www.example.com", path=path, scheme=scheme),
        expect=Expect(status=[302], redirect=redirect),
    )


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        ("http://example.org/old", True),
        ("http://example.org:80/old", True),  # default port of http: allowed when none expected
        ("http://example.org:8080/old", False),
        ("https://example.org/old", False),  # scheme defaults to the request's
        ("http://example.org/old?q=1", True),  # path is compared without the query
        ("http://example.org/new", False),
    ],
)
def test_redirect_defaults(location: str, ok: bool) -> None:
    c = redirect_check(ExpectedRedirect(host="example.org"))
    assert (compare(c, Observed(status=302, location=location)) == []) is ok


def test_redirect_explicit_fields() -> None:
    c = redirect_check(ExpectedRedirect(scheme="https", host="Example.org", port=8443, path="/new"))
    assert compare(c, Observed(status=302, location="https://example.org:8443/new")) == []
    m = compare(c, Observed(status=302, location="https://example.org/new"))
    assert [(x.field, x.expected, x.observed) for x in m] == [("redirect.port", "8443", "(none)")]
    https = redirect_check(ExpectedRedirect(scheme="https"))
    assert compare(https, Observed(status=302, location="https://www.example.com:443/old")) == []
    missing = compare(c, Observed(status=302))
    assert fields(missing) == ["redirect"]


# --- backends and shares ------------------------------------------------------------------------


def test_backend_name_drops_the_last_two_parts() -> None:
    assert backend_name("infra-backend-v1-7d9f8c-abcde") == "infra-backend-v1"
    assert backend_name("a-b") == "a-b"


def test_shares_within_tolerance_and_exact_backend_set() -> None:
    c = check(expect=Expect(backends={"v1": 0.7, "v2": 0.3, "v3": 0.0}), tolerance=0.05)
    pods = ["v1-x-1"] * 68 + ["v2-x-1"] * 32
    shares, m = compare_shares(c, pods)  # type: ignore[arg-type]
    assert m == [] and shares == {"v1": 0.68, "v2": 0.32}
    _, m = compare_shares(c, ["v1-x-1"] * 60 + ["v2-x-1"] * 39 + ["v3-x-1"])  # type: ignore[arg-type]
    assert [(x.field, x.expected) for x in m] == [
        ("backends.v1", "0.70 ± 0.05"),
        ("backends.v2", "0.30 ± 0.05"),
        ("backends.v3", "0.00 (no traffic)"),
    ]
    _, m = compare_shares(c, ["v1-x-1"] * 100 + ["zz-x-1"])  # type: ignore[arg-type]
    assert "backends.v2" in fields(m) and "backends.zz" in fields(m)


# --- convergence ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(
    responses: list[Observed], clock: FakeClock, cost: float = 0.01
) -> tuple[Callable[[ProbeRequest], Observed], list[ProbeRequest]]:
    sent: list[ProbeRequest] = []

    def send(req: ProbeRequest) -> Observed:
        sent.append(req)
        clock.now += cost
        return responses.pop(0) if len(responses) > 1 else responses[0]

    return send, sent


def test_converges_after_misses_with_one_second_backoff() -> None:
    clock = FakeClock()
    bad = Observed(status=503)
    down = Observed(status=None, error="ConnectionError: Connection refused")
    send, sent = scripted([down, bad, echo("/"), bad, echo("/"), echo("/"), echo("/")], clock)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(
        check(request=Request(host="www.example.com")), ADDR
    )
    assert result.passed and result.attempts == 7 and result.matches == 3
    assert clock.sleeps == [1.0, 1.0, 1.0]  # after each miss, none after a match
    assert sent[0].url == "http://127.0.0.1:8080/" and sent[0].host == "www.example.com"


def test_every_miss_is_told_to_on_miss_for_live_progress() -> None:
    clock = FakeClock()
    send, _ = scripted([Observed(status=503), Observed(status=404), echo("/")], clock)
    misses: list[tuple[int, int | None, list[str]]] = []
    result = Prober(
        send=send,
        clock=clock,
        sleep=clock.sleep,
        on_miss=lambda c, n, t, o, m: misses.append((n, o.status, fields(m))),
    ).run(check(request=Request(host="www.example.com"), consecutive=1), ADDR)
    assert result.passed
    assert misses == [(1, 503, ["status"]), (2, 404, ["status"])]


def test_times_out_with_the_last_observation() -> None:
    clock = FakeClock()
    send, _ = scripted([Observed(status=404)], clock)
    c = check(timeout=5.0)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(c, ADDR)
    assert not result.passed
    assert result.attempts == 5 and result.elapsed <= 5.0
    assert result.observed is not None and result.observed.status == 404
    assert fields(result.mismatches) == ["status"]


def test_flapping_never_reaches_consecutive() -> None:
    clock = FakeClock()
    send, _ = scripted([echo("/"), echo("/"), Observed(status=500)] * 20, clock)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(
        check(consecutive=3, timeout=4.0), ADDR
    )
    assert not result.passed and result.attempts > 3


REFUSED = Observed(status=None, error="ConnectionError: Connection refused")


def test_refused_is_a_refused_connection_over_http_or_grpc() -> None:
    assert REFUSED.refused
    # grpcio's details for a closed port (sandbox.probe.grpc.grpc_send keeps them as the error)
    assert Observed(
        status=None,
        protocol="grpc",
        error=(
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:39425: Failed "
            "to connect to remote host: Connection refused"
        ),
    ).refused
    assert not Observed(status=None, error="timed out after 10s").refused
    assert not Observed(status=503, error=None).refused


def test_refusals_are_told_to_the_targets_hook_which_may_end_the_check() -> None:
    clock = FakeClock()
    send, sent = scripted([REFUSED], clock, cost=0.01)
    asked: list[Refusals] = []

    def unreachable(r: Refusals) -> TargetUnreachable | None:
        asked.append(r)
        return TargetUnreachable("nothing listens") if r.count >= 3 else None

    with pytest.raises(TargetUnreachable) as info:
        Prober(send=send, clock=clock, sleep=clock.sleep).run(
            check(timeout=30.0), ADDR, unreachable=unreachable
        )
    assert len(sent) == 3 and [r.count for r in asked] == [1, 2, 3]
    assert asked[-1].seconds == pytest.approx(2.03) and not asked[-1].answered
    assert not asked[-1].final and asked[-1].address == ADDR
    result = info.value.check_result  # the check's result so far, for the report
    assert result is not None and result.attempts == 3 and not result.passed  # type: ignore[attr-defined]
    assert fields(result.mismatches) == ["status"]  # type: ignore[attr-defined]


def test_refusals_after_an_answer_and_the_last_one_are_marked() -> None:
    clock = FakeClock()
    send, _ = scripted(
        [Observed(status=503), REFUSED, REFUSED, Observed(status=503), REFUSED, REFUSED], clock
    )
    asked: list[Refusals] = []

    def unreachable(r: Refusals) -> None:
        asked.append(r)

    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(
        check(timeout=6.0), ADDR, unreachable=unreachable
    )
    assert not result.passed and result.attempts == 6
    assert [(r.count, r.answered) for r in asked] == [(1, True), (2, True), (1, True), (2, True)]
    assert [r.final for r in asked] == [False, False, False, True]
    # without a hook nothing changes: refusals are misses like any other
    send, _ = scripted([REFUSED], clock)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(check(timeout=3.0), ADDR)
    assert not result.passed and result.attempts == 3


def test_a_weighted_round_refused_throughout_is_told_to_the_hook() -> None:
    clock = FakeClock()
    c = check(expect=Expect(backends={"v1": 1.0}), samples=5, timeout=30.0)
    with pytest.raises(TargetUnreachable):
        Prober(send=lambda req: REFUSED, clock=clock, sleep=clock.sleep).run(
            c, ADDR, unreachable=lambda r: TargetUnreachable("x") if r.count >= 10 else None
        )
    assert clock.sleeps == [1.0]  # two rounds of 5


def test_a_settled_target_is_decided_by_the_first_round_without_back_off() -> None:
    clock = FakeClock()
    send, sent = scripted([Observed(status=404)], clock)
    c = check(consecutive=3, timeout=30.0)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(c, ADDR, settled=True)
    assert not result.passed and result.attempts == 3 and result.settled
    assert clock.sleeps == [] and len(sent) == 3
    # a miss then two matches is not 3 in a row: still decided by that first round
    send, _ = scripted([Observed(status=404), echo("/"), echo("/"), echo("/")], clock)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(c, ADDR, settled=True)
    assert not result.passed and result.attempts == 3 and result.matches == 2
    send, _ = scripted([echo("/")], clock)
    assert Prober(send=send, clock=clock, sleep=clock.sleep).run(c, ADDR, settled=True).passed
    # weighted: the backends are drawn at random, so a few rounds (still no back-off)
    w = check(expect=Expect(backends={"v1": 1.0}), samples=4, timeout=30.0)
    send, _ = scripted([echo("/", pod="v2-a-1")], clock)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(w, ADDR, settled=True)
    assert not result.passed and result.attempts == 4 * SETTLED_ROUNDS and clock.sleeps == []


def test_weighted_check_rounds() -> None:
    clock = FakeClock()
    pods = iter(["v1-a-1", "v2-a-1", "v1-a-2", "v1-a-1"] * 100)

    def send(req: ProbeRequest) -> Observed:
        return echo("/", pod=next(pods))

    c = check(expect=Expect(backends={"v1": 0.75, "v2": 0.25}), samples=40)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(c, ADDR)
    assert result.passed and result.attempts == 40
    assert result.shares == {"v1": 0.75, "v2": 0.25}
    wrong = check(expect=Expect(backends={"v1": 0.5, "v2": 0.5}), samples=40, timeout=3.0)
    result = Prober(send=send, clock=clock, sleep=clock.sleep).run(wrong, ADDR)
    assert not result.passed and fields(result.mismatches) == ["backends.v1", "backends.v2"]


def test_grpc_check_goes_through_the_grpc_sender() -> None:
    c = check(request=Request(grpc=GrpcRequest()), expect=Expect(status=[404]))
    calls: list[Address] = []

    def grpc_send(chk: object, address: Address) -> Observed:
        calls.append(address)
        return Observed(status=404)

    def http_send(req: object) -> Observed:
        raise AssertionError("a gRPC check must not be sent as HTTP")

    result = Prober(send=http_send, grpc_send=grpc_send, sleep=lambda s: None).run(c, ADDR)
    assert result.status == "passed"
    assert calls and all(a == ADDR for a in calls)


def test_default_grpc_sender_is_the_grpc_echo_client() -> None:
    from sandbox.probe.grpc import grpc_send

    assert Prober().grpc_send is grpc_send


# --- building requests ----------------------------------------------------------------------


def test_request_building_and_curl() -> None:
    c = check(
        request=Request(
            host="www.example.com",
            path="/a?x='1'",
            method="POST",
            headers={"X-Foo": "bar"},
            backend_response_headers={"X-A": "1", "X-B": "2"},
        )
    )
    req = Prober().build(c, ADDR)
    assert req.headers == {"X-Foo": "bar", "X-Echo-Set-Header": "X-A:1,X-B:2"}
    assert req.curl() == (
        "curl -sS -i -X POST -H 'X-Foo: bar' -H 'X-Echo-Set-Header: X-A:1,X-B:2' "
        "-H 'Host: www.example.com' 'http://127.0.0.1:8080/a?x='\"'\"'1'\"'\"''"
    )
    https = Prober().build(
        check(request=Request(host="a.example.com", scheme="https")), Address("127.0.0.1", 8443)
    )
    assert https.curl() == (
        "curl -sS -i -k --resolve a.example.com:8443:127.0.0.1 "
        "-H 'Host: a.example.com' https://a.example.com:8443/"
    )


@pytest.mark.parametrize(
    ("request_", "flags"),
    [
        # curl reads [] {} as URL globs: -g
        (
            Request(path="/q?a[0]=1&b={x}"),
            "curl -sS -i -g -H 'Host: h' 'http://127.0.0.1:8080/q?a[0]=1&b={x}'",
        ),
        # curl merges /./ and /../ away unless --path-as-is
        (
            Request(path="/a/../b/./c"),
            "curl -sS -i --path-as-is -H 'Host: h' http://127.0.0.1:8080/a/../b/./c",
        ),
        (
            Request(path="/a/..?x=1"),
            "curl -sS -i --path-as-is -H 'Host: h' 'http://127.0.0.1:8080/a/..?x=1'",
        ),
        (
            Request(path="/.well-known/x"),
            "curl -sS -i -H 'Host: h' http://127.0.0.1:8080/.well-known/x",
        ),
        # -X HEAD makes curl wait for a body that never comes: -I
        (Request(method="HEAD"), "curl -sS -I -H 'Host: h' http://127.0.0.1:8080/"),
        # "X-E:" with no value removes a header in curl; "X-E;" sends it empty
        (Request(headers={"X-E": ""}), "curl -sS -i -H 'X-E;' -H 'Host: h' http://127.0.0.1:8080/"),
    ],
)
def test_curl_reproduces_what_is_sent(request_: Request, flags: str) -> None:
    request_.host = "h"
    assert Prober().build(check(request=request_), ADDR).curl() == flags


def test_curl_keeps_the_checks_own_request_timeout() -> None:
    req = Prober().build(check(request=Request(host="h"), request_timeout=0.5), ADDR)
    assert req.curl() == "curl -sS -i -m 0.5 -H 'Host: h' http://127.0.0.1:8080/"


def test_curl_resolves_https_to_an_ipv6_address_in_brackets() -> None:
    req = Prober().build(
        check(request=Request(host="a.example.com", scheme="https")), Address("::1", 8443)
    )
    assert "--resolve 'a.example.com:8443:[::1]'" in req.curl()


def test_parse_echo_ignores_other_json() -> None:
    o = Observed(status=200)
    parse_echo(o, {"message": "hi"})
    assert o.request is None and o.pod is None
    parse_echo(
        o,
        {
            "path": "/x",
            "host": "h",
            "method": "GET",
            "headers": {"A": ["1", "2"]},
            "pod": "p-1-2",
            "namespace": "ns",
        },
    )
    assert o.request is not None and o.request.header("a") == "1,2" and o.pod == "p-1-2"
