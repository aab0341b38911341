"""``sandbox explain``: what the Gateway API says happens to one request, and why.

    sandbox explain -f quickstart http://www.example.com/get
    sandbox explain -f routes.yaml -f backends.yaml --gateway infra/gw -H 'X-Env: canary' \\
        -X POST 'https://app.example.com:8443/api?v=2' -o json
    sandbox explain -f scenarios/quickstart --port 80 -H 'Host: other.example.com' \\
        http://127.0.0.1:18080/get          # a failure's curl line, forwarded port and all

``-f`` takes manifests, folders of them (every *.yaml / *.yml but scenario.yaml), or a scenario:
its folder, its scenario.yaml or its name (as ``sandbox run`` finds it); a scenario brings its
own manifests (its ``manifests:``) and its Gateway (``gateway:``) as the default for --gateway.
A scenario whose scenario.yaml is not valid is read as a folder of manifests (a note says so).

The URL's host is the Host header (and the SNI for https), its port picks the listener (default
80 / 443; ``--port`` names the listener port instead, for a URL whose port is a forwarded one),
its path and query are sent as they are. A port that is no listener's port is an error naming
the listeners, since a failure's curl line carries the local port of a port-forward. Exit 0
whenever the model answers (a 404 included), 2 for bad input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from sandbox.cli.common import err, handle_errors, out, output_option, print_json
from sandbox.errors import InputError
from sandbox.manifests import InvalidInput, display_path
from sandbox.reference.decision import Decision
from sandbox.reference.filters import DEFAULT_PORTS
from sandbox.reference.loader import field_problems, load_manifests
from sandbox.reference.model import Model
from sandbox.scenario.library import resolve_scenario
from sandbox.scenario.load import ScenarioInvalid, load_scenario

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 7230 token (method, header name)


def parse_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, Host header, listener port, path?query) of ``http://host[:port]/path?query``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InputError(f"invalid URL {url!r}: {e}", field="URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InputError(
            f"invalid URL {url!r}: want http://host[:port]/path or https://...", field="URL"
        )
    if not parts.hostname:
        raise InputError(f"invalid URL {url!r}: no host", field="URL")
    if parts.username or parts.password:
        raise InputError(f"invalid URL {url!r}: user info is not supported", field="URL")
    default = DEFAULT_PORTS[scheme]
    listener_port = port if port is not None else default
    host = parts.hostname + (f":{port}" if port is not None and port != default else "")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, host, listener_port, target


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not _TOKEN.match(name):
        raise InputError(f"invalid header {text!r}: want 'Name: value'", field="-H")
    return name, value.strip()


_SCENARIO_FILES = ("scenario.yaml", "scenario.yml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a scenario name (sandbox.scenario.load)
_HOST = re.compile(r"^(\[[^\]]*\]|[^:\[\]]+)(?::\d+)?$")  # host[:port], [v6][:port]


def _scenario_folder(arg: str) -> Path | None:
    """The scenario folder ``arg`` names (folder, its scenario.yaml, or a name), else None."""

    p = Path(arg)
    if p.is_file():
        return p.parent if p.name in _SCENARIO_FILES else None
    if p.is_dir():
        return p if any((p / f).is_file() for f in _SCENARIO_FILES) else None
    if not _NAME.match(arg):
        return None  # a path that does not exist: load_manifests says so
    try:
        return resolve_scenario(arg)
    except InputError as e:
        raise InputError(
            f"no such file, folder or scenario: {arg}", field="-f", hint=e.hint
        ) from None


def load_sources(args: list[str]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(objects, "file:line" sources, the scenarios' Gateways) of ``-f`` arguments."""

    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    gateways: list[str] = []
    for arg in args:
        folder = _scenario_folder(arg)
        if folder is not None:
            try:
                scenario = load_scenario(folder)
            except ScenarioInvalid as e:
                err.print(
                    f"note: {display_path(folder / _SCENARIO_FILES[0])} is not valid "
                    f"({len(e.problems)} problem(s); `sandbox check {arg}` lists them): "
                    "reading every manifest of the folder",
                    markup=False,
                )
            else:
                # the scenario's manifests get the same field check as a folder of manifests:
                # a typo is refused, never routed around (a misspelt key would be dropped)
                problems = field_problems(scenario.manifest_objects)
                if problems:
                    raise InvalidInput(problems, what="manifests")
                objects.extend(scenario.objects)
                sources.extend(f"{f}:{line}" for f, line in scenario.object_sources)
                gateways.append(scenario.gateway)
                continue
            arg = str(folder)
        found, where = load_manifests([arg])
        objects.extend(found)
        sources.extend(where)
    return objects, sources, gateways


def check_port(
    model: Model, gateway: str, scheme: str, host: str, target: str, port: int, *, from_option: bool
) -> None:
    """InputError when ``port`` is the port of no listener of the Gateway, saying which ports
    are (the port of a failure's curl line is a port-forward's local one)."""
    gw = model.resolve_gateway(gateway)
    if any(ls.port == port for ls in gw.listeners):
        return
    listeners = ", ".join(f"{ls.name}:{ls.port}" for ls in gw.listeners) or "none"
    what = f"--port {port}" if from_option else f"port {port}"
    message = f"{what} matches no listener of Gateway {gw.meta.key} (listeners: {listeners})"
    if from_option:
        raise InputError(message, field="--port")
    protocol = "HTTPS" if scheme == "https" else "HTTP"
    ports = sorted({ls.port for ls in gw.listeners if ls.protocol == protocol})
    if not ports:
        message += f"; it has no {protocol} listener at all"
    else:
        named = _HOST.match(host)  # the Host without its port (an IPv6 literal in brackets)
        if len(ports) == 1 and named:
            suffix = "" if ports[0] == DEFAULT_PORTS[scheme] else f":{ports[0]}"
            use = f"use {scheme}://{named.group(1)}{suffix}{target} or --port {ports[0]}"
        else:
            use = "use " + " or ".join(f"--port {n}" for n in ports)
        message += (
            "; the port in a failure's curl line is the forwarded one (kubectl "
            f"port-forward or the local provider): {use}"
        )
    raise InputError(message, field="URL")


def render_text(d: Decision, model: Model, method: str, url: str) -> str:
    lines = [f"{method} {url}  ->  {d.status}"]
    lines.append(f"gateway    {d.gateway}")
    lines.append(f"listener   {d.listener or '(none)'}")
    if d.route is not None:
        lines.append(f"route      {d.route}, rule {d.rule}")
        lines.append(f"match      {d.match}")
    if d.redirect is not None:
        lines.append(f"redirect   {d.status} Location: {d.redirect.location}")
    if d.backends:
        total = sum(b.weight for b in d.backends) or 1
        lines.append("backends")
        for b in d.backends:
            state = "" if b.valid else f"  INVALID: {b.invalid_reason}"
            pods = f"  (Deployments: {', '.join(b.deployments)})" if b.deployments else ""
            lines.append(
                f"  {b.namespace}/{b.name}:{b.port}  weight {b.weight} ({b.weight / total:.0%}){pods}{state}"
            )
    if d.mirrors:
        for m in d.mirrors:
            lines.append(f"mirror     {m.namespace}/{m.name}:{m.port} ({m.percent:g}%)")
    if d.request_timeout is not None or d.backend_timeout is not None:
        lines.append(f"timeouts   request={d.request_timeout}s backendRequest={d.backend_timeout}s")
    if d.status < 300 or d.backends:
        r = d.request
        lines.append(f"backend receives  {r.method} {r.path}  Host: {r.host}")
        for k, v in r.headers.items():
            lines.append(f"  {k}: {v}")
    if d.response_headers:
        lines.append("response headers set by the gateway")
        for k, v in d.response_headers.items():
            lines.append(f"  {k}: {v}")
    lines.append(f"why        {d.summary or d.reason}")
    if d.losers:
        lines.append("other candidates")
        lines.extend(f"  - {x}" for x in d.losers)
    if model.notes:
        lines.append("not attached")
        lines.extend(f"  - {x}" for x in model.notes)
    return "\n".join(lines)


def register(group: click.Group) -> None:
    """Add this module's commands to the ``sandbox`` group."""

    @group.command("explain")
    @click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        required=True,
        metavar="PATH",
        help="Manifest file, folder of manifests, or a scenario: its folder, scenario.yaml or "
        "name (repeatable).",
    )
    @click.option(
        "--gateway",
        metavar="NAMESPACE/NAME",
        help="Gateway taking the request (default: the scenario's, else the only one).",
    )
    @click.option(
        "--port",
        "listener_port",
        type=click.IntRange(1, 65535),
        metavar="N",
        help="The listener port the request is for, instead of the URL's port (e.g. "
        "the 80 behind a failure's forwarded 127.0.0.1:18080).",
    )
    @click.option(
        "-X", "--request", "method", default="GET", show_default=True, help="HTTP method."
    )
    @click.option(
        "-H",
        "--header",
        "headers",
        multiple=True,
        metavar="'Name: value'",
        help="Request header (repeatable).",
    )
    @click.option(
        "--grpc",
        "grpc_call",
        metavar="SERVICE/METHOD",
        help="Explain a gRPC call instead (GRPCRoutes; -H headers are its metadata).",
    )
    @click.argument("url")
    @output_option
    @handle_errors
    def explain(
        files: tuple[str, ...],
        gateway: str | None,
        listener_port: int | None,
        method: str,
        headers: tuple[str, ...],
        grpc_call: str | None,
        url: str,
        output: str,
    ) -> None:
        """Explain which listener, route, rule and backend the Gateway API picks for URL.

        URL is http://host[:port]/path?query: host is the Host header (unless -H 'Host: ...'
        names another, as with curl), port picks the listener; without a scheme, http.
        """
        if not _TOKEN.match(method):
            raise InputError(f"invalid method {method!r}", field="-X")
        if "://" not in url:
            url = "http://" + url  # like curl: no scheme means http
        scheme, host, port, target = parse_url(url)
        hdrs: dict[str, str] = {}
        for h in headers:
            name, value = parse_header(h)
            if name.lower() == "host":
                # like curl -H 'Host: ...': the header names the host, the URL where to connect
                # (so the request of a failed check's curl line can be pasted here)
                if not value:
                    raise InputError(f"invalid header {h!r}: empty Host", field="-H")
                host = value
                url = f"{url} (Host: {value})"
                continue
            existing = next((k for k in hdrs if k.lower() == name.lower()), None)
            if existing:
                hdrs[existing] += "," + value
            else:
                hdrs[name] = value
        objects, sources, scenario_gateways = load_sources(list(files))
        model = Model.from_objects(objects, sources)
        if gateway is None and len(set(scenario_gateways)) == 1:
            gateway = model.resolve_gateway(scenario_gateways[0]).meta.key
        if gateway is None:
            gws = model.gateways()
            if len(gws) != 1:
                raise InputError(
                    f"{len(gws)} Gateways in the manifests ({', '.join(gws) or 'none'}); choose one",
                    field="--gateway",
                )
            gateway = gws[0]
        check_port(
            model,
            gateway,
            scheme,
            host,
            target,
            listener_port if listener_port is not None else port,
            from_option=listener_port is not None,
        )
        if listener_port is not None:
            port = listener_port
            url = f"{url} [listener port {port}]"
        if grpc_call is not None:
            service, _, rpc = grpc_call.strip("/").rpartition("/")
            if not service or not rpc:
                raise InputError(
                    f"invalid gRPC call {grpc_call!r}: want SERVICE/METHOD", field="--grpc"
                )
            decision = model.decide_grpc(gateway, port, host, service, rpc, hdrs, scheme=scheme)
            method = "POST"
            url = f"{scheme}://{host}/{service}/{rpc}"
        else:
            decision = model.decide(
                gateway, port, method.upper(), host, target, hdrs, scheme=scheme
            )
        if output == "json":
            print_json(decision.to_json())
        else:
            out.print(
                render_text(decision, model, method.upper(), url), markup=False, highlight=False
            )
