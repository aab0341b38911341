"""``sandbox compare``: reading the route Envoy chose from its access log, and refusing a
target that is no real gateway. The comparison itself is tested in test_compare*.py; the
real run against Envoy Gateway is in tests/e2e."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sandbox.cli.main import main
from sandbox.infra.controllers.envoy_gateway import parse_route_name, route_from_access_log

# One line of Envoy Gateway v1.9.0's default JSON access log (the keys of
# internal/xds/translator/accesslog.go DefaultAccessLogFormat; the route name as
# internal/gatewayapi/helpers.go irRouteName makes it, then the virtual host's hostname).


def _line(agent: str, route: str, code: int = 200) -> str:
    return json.dumps(
        {
            "start_time": "2026-12-03T10:40:01.123Z",
            "method": "GET",
            "x-envoy-origin-path": "/",
            "protocol": "HTTP/1.1",
            "response_code": code,
            "response_flags": "-" if route != "-" else "NR",
            "user-agent": agent,
            ":authority": "www.example.com",
            "upstream_cluster": "httproute/ns/backend/rule/0",
            "route_name": route,
        }
    )


def test_route_names_are_read_as_kind_namespace_name_rule_match() -> None:
    assert parse_route_name("httproute/sbx-ab12/backend/rule/2/match/1/www_example_com") == (
        "httproute",
        "sbx-ab12",
        "backend",
        2,
        1,
    )
    assert parse_route_name("grpcroute/default/g/rule/0/match/0/*") == (
        "grpcroute",
        "default",
        "g",
        0,
        0,
    )
    assert parse_route_name("tcproute/default/t") is None
    assert parse_route_name("httproute/ns/x/rule/one/match/0/h") is None


def test_the_newest_line_of_the_tagged_request_names_the_route() -> None:
    log = "\n".join(
        [
            "[2026-12-03 10:40:00.000][1][info][main] starting",  # not JSON: skipped
            _line("curl/8.5.0", "httproute/ns/other/rule/0/match/0/*"),
            _line("gateway-sandbox-compare/1", "httproute/ns/backend/rule/0/match/0/*"),
            _line("gateway-sandbox-compare/1", "httproute/ns/backend/rule/1/match/0/*"),
            "[1, 2]",
        ]
    )
    assert (
        route_from_access_log(log, user_agent="gateway-sandbox-compare/1")
        == "httproute/ns/backend/rule/1/match/0/*"
    )


def test_no_route_is_empty_and_no_line_is_none() -> None:
    log = _line("gateway-sandbox-compare/2", "-", code=404)
    assert route_from_access_log(log, user_agent="gateway-sandbox-compare/2") == ""
    assert route_from_access_log(log, user_agent="gateway-sandbox-compare/3") is None
    assert route_from_access_log("", user_agent="x") is None


def test_compare_refuses_the_local_gateway() -> None:
    # the local gateway is the model's own twin: comparing with it would prove nothing
    result = CliRunner().invoke(main, ["compare", "quickstart", "--provider", "local"])
    assert result.exit_code == 2
    assert "'local' is not one of 'k3d', 'kind', 'existing'" in result.stderr
