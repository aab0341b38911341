"""Pure parts of the local reference gateway: weighted choice, header handling, byte sniffing."""

from __future__ import annotations

import collections
import io
import random

import pytest

from sandbox.reference.decision import BackendChoice, Decision, ModelRequest
from sandbox.reference.model import Model
from sandbox.reference.objects import HeaderOps
from sandbox.targets.local.http import _PrefixedReader
from sandbox.targets.local.router import _backend_request, _modify_response_headers, _Router


def router(seed: int = 0) -> _Router:
    return _Router(Model(), random.Random(seed))


def choice(name: str, weight: int, valid: bool = True) -> BackendChoice:
    return BackendChoice(name, "default", 8080, weight, valid=valid)


def test_weighted_choice_follows_weights_and_skips_zero() -> None:
    r = router(1)
    backends = [choice("a", 70), choice("b", 30), choice("c", 0), choice("bad", 0, valid=False)]
    counts = collections.Counter(r.choose_backend(backends).name for _ in range(5000))  # type: ignore[union-attr]
    assert set(counts) == {"a", "b"}
    assert abs(counts["a"] / 5000 - 0.7) < 0.03


def test_invalid_backends_keep_their_share() -> None:
    r = router(2)
    backends = [choice("a", 1), choice("bad", 3, valid=False)]
    counts = collections.Counter(r.choose_backend(backends).valid for _ in range(4000))  # type: ignore[union-attr]
    assert abs(counts[False] / 4000 - 0.75) < 0.03


def test_all_zero_weights_choose_nothing() -> None:
    assert router().choose_backend([choice("a", 0), choice("b", 0)]) is None
    assert router().choose_backend([]) is None


def _decision(**kw: object) -> Decision:
    return Decision(
        status=200,
        gateway="default/eg",
        listener="http",
        route="default/r",
        rule=0,
        backends=[],
        request=ModelRequest("GET", "h", "/rule"),
        response_headers={},
        redirect=None,
        reason="",
        **kw,  # type: ignore[arg-type]
    )


def test_backend_own_request_wins_over_the_rules() -> None:
    d = _decision()
    b = choice("a", 1)
    assert _backend_request(d, b).path == "/rule"
    b.request = ModelRequest("GET", "h", "/own")
    assert _backend_request(d, b).path == "/own"


def test_response_header_ops_apply_in_order_to_joined_headers() -> None:
    rule_ops = HeaderOps(set=[("X-A", "1")], remove=["X-Gone"])
    own_ops = HeaderOps(add=[("X-Multi", "3")])
    d = _decision(response_header_ops=[rule_ops])
    b = choice("a", 1)
    b.response_header_ops = [rule_ops, own_ops]
    headers = [("X-Multi", "1"), ("x-multi", "2"), ("X-Gone", "g"), ("X-A", "0")]
    assert dict(_modify_response_headers(d, b, headers)) == {"X-Multi": "1,2,3", "X-A": "1"}
    # a backend without its own list gets the rule's
    assert dict(_modify_response_headers(d, choice("b", 1), headers)) == {
        "X-Multi": "1,2",
        "X-A": "1",
    }
    # nothing to do: headers untouched (repeats kept)
    assert _modify_response_headers(_decision(), choice("c", 1), headers) == headers


@pytest.mark.parametrize("chunk", [1, 2, 4, 100])
def test_prefixed_reader_gives_back_the_sniffed_bytes(chunk: int) -> None:
    data = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nBODY"
    inner = io.BufferedReader(io.BytesIO(data))
    head = inner.read(4)
    reader = _PrefixedReader(head, inner)
    assert reader.readline(65537) == b"GET /x HTTP/1.1\r\n"
    first = reader.readline(chunk)  # a limit shorter than the line stops there
    assert first == b"Host: a\r\n"[:chunk]
    rest = b"" if first.endswith(b"\n") else reader.readline(65537)
    assert first + rest == b"Host: a\r\n"
    assert reader.readline() == b"\r\n"
    assert reader.read(4) == b"BODY"
    assert reader.read() == b""


def test_prefixed_reader_read_spans_prefix_and_inner() -> None:
    reader = _PrefixedReader(b"PRI ", io.BufferedReader(io.BytesIO(b"* HTTP/2.0")))
    assert reader.read(6) == b"PRI * "
    assert reader.read() == b"HTTP/2.0"


def test_prefixed_reader_readline_limit_inside_the_prefix() -> None:
    reader = _PrefixedReader(b"GET ", io.BufferedReader(io.BytesIO(b"/ HTTP/1.1\r\n")))
    assert reader.readline(2) == b"GE"
    assert reader.readline(5) == b"T / H"
    assert reader.readline() == b"TTP/1.1\r\n"


def test_weighted_choice_follows_the_weights_for_http_and_grpc() -> None:
    from sandbox.targets.local.router import weighted_choice

    def name_at(fraction: float) -> str | None:
        picked = weighted_choice(backends, lambda: fraction)
        return picked.name if picked else None

    backends = [choice("a", 1), choice("zero", 0), choice("b", 3)]
    # the fraction lands in [0, 1) * total (4): a owns [0, 1), zero nothing, b [1, 4)
    assert [name_at(f) for f in (0.0, 0.24, 0.25, 0.99)] == ["a", "a", "b", "b"]
    assert weighted_choice([choice("x", -2), choice("y", 0)], lambda: 0.5) is None
    calls: list[float] = []

    def fraction() -> float:
        calls.append(0.0)
        return 0.0

    assert weighted_choice([choice("z", 0)], fraction) is None
    assert calls == []  # no random number drawn when nothing can be chosen
