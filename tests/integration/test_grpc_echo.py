"""The gRPC echo client and server (sandbox.echo.grpc) over real loopback sockets.

The wire-format vectors are written from the upstream proto (kubernetes-sigs/gateway-api
conformance/echo-basic/grpcecho.proto): EchoResponse{assertions=1{fully_qualified_method=1,
headers=2{key=1,value=2}, authority=3, context=4{namespace=1, ingress=2, service_name=3, pod=4}}}.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import grpc
import pytest

from sandbox.echo.grpc import GrpcEchoServer
from sandbox.echo.wire import (
    SERVICE,
    EchoContext,
    EchoResponse,
    grpc_code_for_http,
    http_status_for,
    split_method,
)
from sandbox.probe.grpc import grpc_probe, grpc_send
from sandbox.probe.types import Address
from sandbox.scenario.model import Check, Expect, GrpcRequest, Request

POD = "grpc-backend-v1-7d9c8b6f5-abcde"


@pytest.fixture
def echo() -> Iterator[GrpcEchoServer]:
    server = GrpcEchoServer(pod=POD, namespace="team-a", service="grpc-backend-v1").start()
    yield server
    server.close()


def _addr(server: GrpcEchoServer) -> Address:
    return Address("127.0.0.1", server.port)


# --------------------------------------------------------------------------------------------
# wire format
# --------------------------------------------------------------------------------------------


def test_encode_matches_hand_built_protobuf_bytes() -> None:
    resp = EchoResponse(
        fully_qualified_method="/s/M",
        headers=[("k", "v")],
        authority="a",
        context=EchoContext(namespace="ns", pod="p"),
    )
    header = b"\x0a\x01k" + b"\x12\x01v"  # key=1 "k", value=2 "v"
    context = b"\x0a\x02ns" + b"\x22\x01p"  # namespace=1, pod=4 (empty strings omitted)
    assertions = (
        b"\x0a\x04/s/M"
        + b"\x12"
        + bytes([len(header)])
        + header
        + b"\x1a\x01a"
        + b"\x22"
        + bytes([len(context)])
        + context
    )
    assert resp.encode() == b"\x0a" + bytes([len(assertions)]) + assertions


def test_decode_round_trip_and_skips_unknown_fields() -> None:
    original = EchoResponse(
        fully_qualified_method=f"/{SERVICE}/EchoTwo",
        headers=[(":authority", "x" * 200), ("version", "two"), ("version", "three")],
        authority="x" * 200,  # > 127 bytes: a two-byte length varint
        context=EchoContext(namespace="default", ingress="i", service_name="svc", pod=POD),
    )
    data = original.encode()
    # unknown fields of every wire type in the EchoResponse: varint, fixed64, fixed32, and the
    # (empty) EchoRequest field 2
    data += b"\x28\x96\x01" + b"\x31" + b"\x00" * 8 + b"\x3d" + b"\x00" * 4 + b"\x12\x00"
    decoded = EchoResponse.decode(data)
    assert decoded == original
    assert decoded.header_map() == {":authority": ["x" * 200], "version": ["two", "three"]}


@pytest.mark.parametrize("data", [b"\x0a\x05abc", b"\x0a", b"\x0b\x00", b"\x08\x80"])
def test_decode_rejects_truncated_or_invalid_messages(data: bytes) -> None:
    with pytest.raises(ValueError):
        EchoResponse.decode(data)


def test_status_mappings() -> None:
    assert http_status_for(grpc.StatusCode.OK) == 200
    assert http_status_for(grpc.StatusCode.UNIMPLEMENTED) == 404
    assert http_status_for(grpc.StatusCode.UNAVAILABLE) == 503
    assert http_status_for(grpc.StatusCode.UNKNOWN) == 500
    assert http_status_for(grpc.StatusCode.DEADLINE_EXCEEDED) == 504
    # grpcio's text when a gateway answered with a plain HTTP status and no grpc-status
    assert (
        http_status_for(grpc.StatusCode.UNIMPLEMENTED, "Received http2 header with status: 418")
        == 418
    )
    assert grpc_code_for_http(404) == grpc.StatusCode.UNIMPLEMENTED
    assert grpc_code_for_http(503) == grpc.StatusCode.UNAVAILABLE
    assert grpc_code_for_http(500) == grpc.StatusCode.UNKNOWN
    assert split_method(f"/{SERVICE}/Echo") == (SERVICE, "Echo")


# --------------------------------------------------------------------------------------------
# client against server
# --------------------------------------------------------------------------------------------


def test_probe_reads_what_the_backend_saw(echo: GrpcEchoServer) -> None:
    observed = grpc_probe(
        _addr(echo),
        "grpc.example.com",
        SERVICE,
        "Echo",
        {"Version": "one", "x-multi": "a"},
        timeout=5,
    )
    assert observed.status == 200, observed.summary()
    assert observed.protocol == "grpc"
    assert observed.pod == POD
    assert observed.namespace == "team-a"
    assert observed.request is not None
    assert observed.request.path == f"/{SERVICE}/Echo"
    assert observed.request.method == "POST"
    assert observed.request.host == "grpc.example.com"
    assert observed.request.header("version") == "one"  # metadata names are lowercased
    assert observed.request.header(":authority") == "grpc.example.com"
    assert observed.headers["grpc-status"] == "0"
    assert observed.body["context"]["service_name"] == "grpc-backend-v1"
    assert echo.calls == [f"/{SERVICE}/Echo"]


def test_probe_default_authority_is_the_address(echo: GrpcEchoServer) -> None:
    observed = grpc_probe(_addr(echo), None, SERVICE, "EchoTwo", timeout=5)
    assert observed.status == 200
    assert observed.request is not None
    assert observed.request.host == f"127.0.0.1:{echo.port}"
    assert observed.request.path == f"/{SERVICE}/EchoTwo"


@pytest.mark.parametrize(("service", "method"), [(SERVICE, "EchoThree"), ("other.Svc", "Echo")])
def test_unimplemented_methods_are_404(echo: GrpcEchoServer, service: str, method: str) -> None:
    # upstream echo-basic implements Echo and EchoTwo only (grpc.go); upstream expects
    # codes.Unimplemented for EchoThree (grpcroute-exact-method-matching.go)
    observed = grpc_probe(_addr(echo), None, service, method, timeout=5)
    assert observed.status == 404
    assert observed.headers["grpc-status"] == str(grpc.StatusCode.UNIMPLEMENTED.value[0])
    assert observed.pod is None and observed.request is None
    assert echo.calls == []


def test_nothing_listening_is_no_response() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    observed = grpc_probe(Address("127.0.0.1", port), None, timeout=3)
    assert observed.status is None
    assert observed.error


def test_silent_server_times_out() -> None:
    # accepts TCP but never speaks HTTP/2: the call ends at its deadline, with no status
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        t = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
        t.start()
        observed = grpc_probe(Address("127.0.0.1", port), None, timeout=0.5)
        t.join(2)
        for conn in accepted:
            conn.close()
    assert observed.status is None
    assert observed.error


def test_grpc_send_uses_the_check(echo: GrpcEchoServer) -> None:
    check = Check(
        name="c",
        request=Request(
            host="h.example", grpc=GrpcRequest(method="EchoTwo", metadata={"color": "blue"})
        ),
        expect=Expect(),
        request_timeout=5,
    )
    observed = grpc_send(check, _addr(echo))
    assert observed.status == 200
    assert observed.request is not None
    assert observed.request.path.endswith("/EchoTwo")
    assert observed.request.host == "h.example"
    assert observed.request.header("color") == "blue"
