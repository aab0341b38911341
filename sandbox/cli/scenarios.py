"""Scenario commands: ``sandbox list``, ``check``, ``run`` and the ``echo`` backend.

Thin: loading and validation live in :mod:`sandbox.scenario.load`, running in :mod:`sandbox.runner`,
rendering in :mod:`sandbox.report.text`. Targets are imported lazily so that ``list``/``check``/``echo``
work without any cluster tooling.

Long on purpose: the scenario commands (list, check, run, echo) share their options, error
reporting and target building; each command is a few short functions.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from sandbox.cli.common import ConsoleReporter, err, handle_errors, out, output_option, print_json
from sandbox.echo.http import EchoServer
from sandbox.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    SandboxError,
)
from sandbox.manifests import display_path
from sandbox.probe.prober import Prober
from sandbox.reference.verify import build_model, unattached_lines, verify_scenario
from sandbox.report import json as report_json
from sandbox.report import text as report_mod
from sandbox.report.write import write_reports
from sandbox.runner import Runner, RunReport
from sandbox.scenario import crds as schema
from sandbox.scenario import crds as schema_mod
from sandbox.scenario import features
from sandbox.scenario.library import find_scenarios, list_scenarios, resolve_scenario
from sandbox.scenario.load import ScenarioInvalid, load_scenario
from sandbox.scenario.model import Scenario
from sandbox.settings import CLUSTER_PROVIDERS, DEFAULT_GATEWAY_CLASS, PROVIDERS
from sandbox.targets import Target, factory
from sandbox.targets.factory import sandbox_api_hint

# where `run` sends scenarios: the sandbox's own cluster made by k3d or kind, the reference
# gateway on loopback, or an existing kubeconfig context


SANDBOX_API_HINT = sandbox_api_hint()


# --------------------------------------------------------------------------------------------
# sandbox list
# --------------------------------------------------------------------------------------------


def _list_command() -> click.Command:
    @click.command("list")
    @output_option
    @handle_errors
    def list_(output: str) -> None:
        """List the scenarios (name and description).

        Scenarios are looked up in $SANDBOX_SCENARIOS, ./scenarios and the scenarios folder
        beside the installed package.
        """
        rows: list[dict[str, Any]] = []
        for folder in list_scenarios():
            row: dict[str, Any] = {
                "name": folder.name,
                "path": display_path(folder),
                "file": display_path(folder / "scenario.yaml"),
                "description": None,
                "checks": None,
                "features": [],
                "valid": False,
                "problems": [],
            }
            try:
                s = load_scenario(folder)
                row.update(
                    name=s.name,
                    description=s.description,
                    checks=len(s.checks),
                    features=s.features,
                    valid=True,
                )
            except InputError as e:
                row["problems"] = problem_dicts(e)
            rows.append(row)
        if output == "json":
            print_json(rows)
            return
        if not rows:
            err.print("no scenarios found (looked in $SANDBOX_SCENARIOS, ./scenarios)")
            return
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            if r["valid"]:
                out.print(f"{r['name'].ljust(width)}  {r['description']}", markup=False)
            else:
                out.print(
                    f"{r['name'].ljust(width)}  INVALID: {len(r['problems'])} problem(s); "
                    f"see `sandbox check {r['path']}`",
                    markup=False,
                )

    return list_


# --------------------------------------------------------------------------------------------
# sandbox check
# --------------------------------------------------------------------------------------------


def expand_args(args: tuple[str, ...]) -> list[str]:
    """Scenario arguments with a folder *of* scenarios (no scenario.yaml, scenarios deeper
    down, like ``scenarios/``) replaced by those scenarios, as pytest collects a folder."""
    out: list[str] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir() and not (p / "scenario.yaml").is_file():
            found = find_scenarios(p)
            if found:
                out.extend(str(f) for f in found)
                continue
        out.append(arg)
    return out


def problem_dicts(error: InputError) -> list[dict[str, Any]]:
    """An input error as JSON problems, the same shape in ``list`` and ``check``:
    ``{file, line, field, message, text}`` (``text`` is the line a person reads)."""
    if isinstance(error, ScenarioInvalid):
        return [
            {
                "file": display_path(p.file),
                "line": p.line,
                "field": p.field,
                "message": p.message,
                "text": str(p),
            }
            for p in error.problems
        ]
    text = str(error)
    where = (error.file + (f":{error.line}" if error.line else "") + ": ") if error.file else ""
    where += f"{error.field}: " if error.field else ""
    return [
        {
            "file": error.file,
            "line": error.line,
            "field": error.field,
            "message": text[len(where) :] if text.startswith(where) else text,
            "text": text,
        }
    ]


def _verify(scenario: Scenario) -> tuple[list[str] | None, str | None]:
    """The reference model's disagreements with the scenario's expectations (no note); when
    there are some, also each route attached to no listener, and why."""

    model = build_model(scenario)
    messages = list(verify_scenario(scenario, model))
    if messages:
        messages.extend(unattached_lines(model))
    return messages, None


@dataclass
class _CheckRun:
    """What ``sandbox check`` carries from one scenario to the next."""

    quiet: bool
    output: str
    no_model: bool
    invalid: bool = False
    disagree: bool = False
    tried_download: bool = False
    said_schema: str = ""


def _check_entry(arg: str) -> dict[str, Any]:
    """The JSON result of one ``check`` argument, before it is checked."""
    return {
        "arg": arg,
        "name": None,
        "path": None,
        "file": None,
        "valid": False,
        "problems": [],
        "schema_note": None,
        "schema": None,
        "model": None,
        "model_note": None,
    }


def _check_one(arg: str, entry: dict[str, Any], run: _CheckRun) -> None:
    """Check one scenario argument: load it, check its manifests, ask the reference model;
    fill ``entry`` and say what was found (not with --output json)."""
    scenario = _check_load(arg, entry, run)
    if scenario is None:
        return
    checked = _check_manifests(scenario, entry, run)
    if checked.problems:
        return
    entry["valid"] = True
    note = None
    messages: list[str] | None = None
    if run.no_model:
        note = "model not consulted (--no-model)"
    else:
        try:
            messages, note = _verify(scenario)
        except InputError as e:
            run.invalid = True
            entry["valid"] = False
            entry["problems"] = problem_dicts(e)
            if run.output != "json":
                err.print(f"[bold red]invalid:[/] {e}", markup=True, highlight=False)
            return
    entry["model"] = messages
    entry["model_note"] = note
    if messages:
        run.disagree = True
    if run.output == "json":
        return
    _print_check_outcome(scenario, checked, messages, note, run.quiet)


def _check_load(arg: str, entry: dict[str, Any], run: _CheckRun) -> Scenario | None:
    """The scenario ``arg`` names, or None (and its problems in ``entry``) when invalid."""
    try:
        folder = resolve_scenario(arg)
        entry.update(path=display_path(folder), file=display_path(folder / "scenario.yaml"))
        scenario = load_scenario(folder)
    except ScenarioInvalid as e:
        run.invalid = True
        entry["problems"] = problem_dicts(e)
        if run.output != "json":
            err.print(f"[bold red]invalid:[/] {e}", markup=True, highlight=False)
        return None
    except InputError as e:
        run.invalid = True
        entry["problems"] = problem_dicts(e)
        if run.output != "json":
            err.print(f"[bold red]invalid:[/] {e}", markup=True, highlight=False)
            if e.hint:
                err.print(f"  hint: {e.hint}", markup=False, highlight=False)
        return None
    entry.update(
        name=scenario.name,
        path=display_path(scenario.path),
        file=display_path(scenario.file),
    )
    return scenario


def _check_manifests(
    scenario: Scenario, entry: dict[str, Any], run: _CheckRun
) -> schema_mod.ManifestCheck:
    """The manifests against the Gateway API CRD schemas when at hand, else the reference
    model's field check (sandbox.scenario.crds); a download only when nothing is cached,
    tried once per command and bounded. Problems go to ``entry`` and are listed."""
    checked = schema_mod.check_scenario_manifests(scenario, download=not run.tried_download)
    run.tried_download = True
    entry["schema_note"], entry["schema"] = checked.note, checked.method
    if run.output != "json" and not run.quiet and checked.method != run.said_schema:
        err.print(checked.headline, markup=False, highlight=False)  # once
        run.said_schema = checked.method
    if checked.problems:
        run.invalid = True
        entry["problems"] = [
            {
                "file": p.file,
                "line": p.line,
                "field": p.field,
                "message": f"{p.object}: {p.message}",
                "text": str(p),
            }
            for p in checked.problems
        ]
        if run.output != "json":
            what = (
                "CRD schema"
                if checked.method == schema_mod.CRDS
                else "field (the reference model's check; CRDs not at hand)"
            )
            err.print(
                f"[bold red]invalid:[/] {scenario.name}: "
                f"{len(checked.problems)} manifest {what} error(s)",
                markup=True,
                highlight=False,
            )
            for p in checked.problems:
                err.print(f"  {p}", markup=False, highlight=False)
    return checked


def _print_check_outcome(
    scenario: Scenario,
    checked: schema_mod.ManifestCheck,
    messages: list[str] | None,
    note: str | None,
    quiet: bool,
) -> None:
    """The model's disagreements with a valid scenario, or its ``ok`` line (not with -q)."""
    if messages:
        err.print(f"[bold red]model disagrees:[/] {scenario.name}", markup=True)
        for m in messages:
            err.print(f"  {m}", markup=False, highlight=False)
    elif not quiet:  # -q: problems and disagreements only
        suffix = f"; {note}" if note else "; the reference model agrees"
        n = len(scenario.checks)
        out.print(
            f"ok {scenario.name}: {n} check{'' if n == 1 else 's'}; {checked.summary}{suffix}",
            markup=False,
        )


def _print_check_summary(results: list[dict[str, Any]], output: str) -> None:
    """The JSON results, or a count line when several scenarios were checked."""
    if output == "json":
        print_json(results)
    elif len(results) > 1:
        bad = sum(1 for r in results if not r["valid"])
        differ = sum(1 for r in results if r["model"])
        out.print(
            f"{len(results)} scenarios: {len(results) - bad - differ} ok, {bad} invalid, "
            f"{differ} where the reference model disagrees",
            markup=False,
            highlight=False,
        )


def _check_command() -> click.Command:
    @click.command("check")
    @click.argument("paths", nargs=-1, required=True)
    @click.option(
        "--no-model",
        is_flag=True,
        help="Only validate; do not ask the reference model whether the "
        "expectations hold for the manifests.",
    )
    @output_option
    @click.pass_context
    @handle_errors
    def check(ctx: click.Context, paths: tuple[str, ...], no_model: bool, output: str) -> None:
        """Validate scenarios without a cluster (PATHS: folders, scenario.yaml files or names;
        a folder of scenarios, like scenarios/, checks every one).

        Exit 0 when valid, 2 when a scenario is invalid (every problem is listed with file,
        line and field), 1 when the reference model disagrees with an expectation.
        """
        run = _CheckRun(quiet=bool((ctx.obj or {}).get("quiet")), output=output, no_model=no_model)
        results: list[dict[str, Any]] = []
        for arg in expand_args(paths):
            entry = _check_entry(arg)
            results.append(entry)
            _check_one(arg, entry, run)
        _print_check_summary(results, output)
        sys.exit(EXIT_USAGE if run.invalid else EXIT_CHECK_FAILED if run.disagree else EXIT_OK)

    return check


# --------------------------------------------------------------------------------------------
# sandbox run
# --------------------------------------------------------------------------------------------


def make_target(
    *,
    address: str | None,
    provider: str | None,
    gateway_class: str | None,
    context: str | None,
    keep: bool,
    quiet: bool,
    cluster: str | None = None,
    scenarios: list[Scenario] | None = None,
) -> Target:
    """``sandbox.targets.factory.make_target`` with the CLI's progress: the stack's phases and
    the cluster target's lines on stderr (none with --quiet), the local target's warnings."""

    def progress(line: str) -> None:
        if not quiet:
            err.print(f"  {line}", markup=False, highlight=False, style="dim")

    def warn(line: str) -> None:
        err.print(f"[bold yellow]warning:[/] {escape(line)}", markup=True, highlight=False)

    return factory.make_target(
        address=address,
        provider=provider,
        gateway_class=gateway_class,
        context=context,
        keep=keep,
        cluster=cluster,
        scenarios=scenarios or [],
        reporter=ConsoleReporter(err, quiet=quiet),
        progress=progress,
        warn=warn,
    )


def _manifest_errors(scenarios: list[Scenario]) -> list[SandboxError]:
    """The manifests checked as ``sandbox check`` does (the CRD schemas when at hand, else the
    reference model's field check; never a download): one InputError per invalid scenario."""

    errors: list[SandboxError] = []
    for scenario in scenarios:
        checked = schema.check_scenario_manifests(scenario, download=False)
        if checked.problems:
            errors.append(
                InputError(
                    f"scenario {scenario.name!r}: {len(checked.problems)} manifest error(s) "
                    f"({checked.headline}):" + "".join(f"\n  {p}" for p in checked.problems),
                    hint=f"`sandbox check {display_path(scenario.path)}` lists them too",
                )
            )
    return errors


def _load_run_scenarios(
    args: tuple[str, ...], *, provider: str | None, address: str | None
) -> list[Scenario]:
    """The scenarios ``run`` was given, loaded; every problem is said and the last raised.
    The local target's manifests are checked too (the reference gateway ignores typos)."""
    loaded: list[Scenario] = []
    problems: list[SandboxError] = []
    for arg in expand_args(args):
        try:
            loaded.append(load_scenario(resolve_scenario(arg)))
        except InputError as e:
            problems.append(e)
    if provider == "local" and not address:
        problems.extend(_manifest_errors(loaded))  # the reference gateway ignores typos
    if problems:
        for problem in problems[:-1]:
            err.print(f"[bold red]error:[/] {problem}", markup=True, highlight=False)
        raise problems[-1]
    return loaded


class _ResultLines:
    """``run``'s live line per check result on ``live``; ``shown`` counts the lines printed
    (before the summary)."""

    def __init__(self, live: Console, quiet: bool) -> None:
        self.live = live
        self.quiet = quiet
        self.shown = 0

    def __call__(self, scenario: Scenario, result: Any) -> None:
        if self.quiet and result.status == "passed":
            return  # -q: failures, skips and the summary only
        self.shown += 1
        style = {"passed": "green", "failed": "bold red", "skipped": "yellow"}[result.status]
        self.live.print(
            report_mod.check_line(scenario, result), markup=False, highlight=False, style=style
        )


def _slow_check_lines(quiet: bool) -> Callable[[Any, int, float, Any, list[Any]], None]:
    """The prober's ``on_miss`` for ``run``: what a slow check is still seeing."""
    waiting: dict[int, float] = {}  # check -> elapsed when last said

    def on_miss(
        check: Any, attempts: int, elapsed: float, observed: Any, mismatches: list[Any]
    ) -> None:
        # on a terminal only, every 5 s: what a slow check is still seeing
        if quiet or not err.is_terminal or elapsed - waiting.get(id(check), 0.0) < 5:
            return
        waiting[id(check)] = elapsed
        first = mismatches[0] if mismatches else None
        seen = f"{first.field} {first.observed}, want {first.expected}" if first else "no match"
        err.print(
            f"  {check.name}: {seen} ({attempts} requests, {elapsed:.0f}s of {check.timeout:g}s)",
            markup=False,
            highlight=False,
            style="dim",
        )

    return on_miss


def _print_run_summary(run_report: RunReport, details: str, output: str, *, shown: int) -> None:
    """The details of failures and the summary line (stderr and JSON on stdout with
    --output json)."""
    summary = report_mod.format_summary(run_report)
    if output == "json":
        if details:
            err.print("\n" + details, markup=False, highlight=False)
        err.print(summary, markup=False, highlight=False)
        print_json(report_json.to_json(run_report))
    else:
        if details:
            out.print("\n" + details, markup=False, highlight=False)
        style = "green" if run_report.exit_code == EXIT_OK else "bold red"
        out.print(
            ("\n" if shown or details else "") + summary,
            markup=False,
            highlight=False,
            style=style,
        )


def _run_command() -> click.Command:
    @click.command("run")
    @click.argument("scenarios", nargs=-1, required=True)
    @click.option("--keep", is_flag=True, help="Leave the run's namespaces for inspection.")
    @click.option("--fail-fast", is_flag=True, help="Stop at the first failed check.")
    @click.option(
        "-k",
        "pattern",
        metavar="PATTERN",
        help="Only checks whose 'scenario/check name' contains PATTERN "
        "(glob with * ? [ ]; 'not PATTERN' inverts).",
    )
    @click.option(
        "--junit",
        "junit",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write a JUnit XML report to FILE.",
    )
    @click.option(
        "--conformance-report",
        "conformance_report",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the upstream ConformanceReport YAML (gateway.networking.k8s.io/v1) "
        "to FILE [implementation fields: env SANDBOX_CONFORMANCE_IMPLEMENTATION].",
    )
    @output_option
    @click.option(
        "--address",
        metavar="HOST:PORT",
        help="Send the checks to a gateway already listening there; nothing is "
        "deployed (every Gateway and port of the scenario maps to it).",
    )
    @click.option(
        "--provider",
        type=click.Choice(PROVIDERS),
        default=None,
        help="Where to deploy: k3d (the sandbox's k3d cluster, brought up if needed; "
        "default), kind (the sandbox's kind cluster), local (the reference gateway "
        "on loopback), existing (--context of your kubeconfig).",
    )
    @click.option(
        "--cluster",
        type=click.Choice(CLUSTER_PROVIDERS),
        default=None,
        envvar="SANDBOX_CLUSTER",
        show_envvar=True,
        help="Which tool makes the sandbox's cluster (same as --provider k3d|kind).",
    )
    @click.option(
        "--gateway-class",
        metavar="NAME",
        help="GatewayClass given to every Gateway [default: the sandbox's, eg].",
    )
    @click.option("--context", metavar="NAME", help="kubeconfig context for --provider existing.")
    @click.option(
        "--timeout",
        "check_timeout",
        type=click.FloatRange(min=0, min_open=True),
        envvar="SANDBOX_CHECK_TIMEOUT",
        metavar="SECONDS",
        help="Seconds every check may take to converge, instead of its own timeout "
        "(scenario.yaml; default 30) [env SANDBOX_CHECK_TIMEOUT].",
    )
    @click.pass_context
    @handle_errors
    def run(
        ctx: click.Context,
        scenarios: tuple[str, ...],
        keep: bool,
        fail_fast: bool,
        pattern: str | None,
        junit: Path | None,
        output: str,
        address: str | None,
        provider: str | None,
        gateway_class: str | None,
        context: str | None,
        conformance_report: Path | None = None,
        cluster: str | None = None,
        check_timeout: float | None = None,
    ) -> None:
        """Run scenarios (names or folders; a folder of scenarios runs every one) and report
        every check.

        Exit 0 when every check passed, 1 when one failed, 2 for bad input, 3 when the
        environment (Docker, cluster, cleanup) failed.
        """

        quiet = bool((ctx.obj or {}).get("quiet"))
        loaded = _load_run_scenarios(scenarios, provider=provider, address=address)

        target = make_target(
            address=address,
            provider=provider,
            gateway_class=gateway_class,
            context=context,
            keep=keep,
            quiet=quiet,
            cluster=None if address else cluster,
            scenarios=loaded,
        )

        def progress(line: str) -> None:
            if not quiet:
                err.print(line, markup=False, highlight=False, style="dim")

        on_result = _ResultLines(out if output == "text" else err, quiet)
        runner = Runner(
            target,
            progress=progress,
            on_result=on_result,
            prober=Prober(on_miss=_slow_check_lines(quiet)),
            timeout=check_timeout,
        )
        run_report = runner.run(loaded, keep=keep, fail_fast=fail_fast, pattern=pattern)

        details = report_mod.render_details(run_report)
        for sr in run_report.scenarios:  # lines not shown live: skipped and not run
            for r in sr.checks:
                if r.status == "skipped" or (r.error and not r.attempts):
                    on_result(sr.scenario, r)
        supported, exempt = features.default_support(
            target.name, gateway_class in (None, "", DEFAULT_GATEWAY_CLASS)
        )
        notes = write_reports(
            [run_report],
            provider=target.name,
            junit=junit,
            conformance_report=conformance_report,
            kubectl=target.kubectl,
            scenarios=loaded,
            supported_features=supported,
            exempt_features=exempt,
        )
        for note in notes:
            if not quiet or "UNDEFINED" in note:
                err.print(f"note: {note}", markup=False, highlight=False)
        _print_run_summary(run_report, details, output, shown=on_result.shown)
        if junit is not None and not quiet:
            err.print(f"JUnit report: {junit}", markup=False, highlight=False)
        sys.exit(run_report.exit_code)

    return run


# --------------------------------------------------------------------------------------------
# sandbox echo
# --------------------------------------------------------------------------------------------


def _echo_command() -> click.Command:
    @click.command("echo")
    @click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=3000,
        show_default=True,
        help="Port to listen on (0 picks a free one).",
    )
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--pod", default=None, help="Pod name echoed back [env POD_NAME].")
    @click.option("--namespace", default=None, help="Namespace echoed back [env NAMESPACE].")
    @click.option("--service", default=None, help="Service echoed back [env SERVICE_NAME].")
    @click.option("--ingress", default=None, help="Ingress echoed back [env INGRESS_NAME].")
    @click.pass_context
    @handle_errors
    def echo(
        ctx: click.Context,
        port: int,
        host: str,
        pod: str | None,
        namespace: str | None,
        service: str | None,
        ingress: str | None,
    ) -> None:
        """Run an HTTP echo backend that answers like the upstream echo-basic image.

        JSON with path (with query), host, method, proto, headers, httpPort, namespace,
        ingress, service, pod; X-Echo-Set-Header sets response headers; /status/NNN;
        ?delay=1s; /health. Foreground; Ctrl-C stops it; -v logs each request on stderr.
        """

        try:
            server = EchoServer(
                host,
                port,
                pod=pod if pod is not None else os.environ.get("POD_NAME", ""),
                namespace=namespace if namespace is not None else os.environ.get("NAMESPACE", ""),
                service=service if service is not None else os.environ.get("SERVICE_NAME", ""),
                ingress=ingress if ingress is not None else os.environ.get("INGRESS_NAME", ""),
                log=(lambda line: err.print(line, markup=False, highlight=False))
                if (ctx.obj or {}).get("verbose")
                else None,
            )
        except OSError as e:
            hint = (
                (
                    "another program listens there (`ss -ltnp` names it); pick another "
                    "--port, or --port 0 for a free one"
                )
                if e.errno == errno.EADDRINUSE
                else None
            )
            raise InputError(
                f"cannot listen on {host}:{port}: {e.strerror or e}", field="--port", hint=hint
            ) from None
        err.print(f"echo backend listening on {server.url} (Ctrl-C stops)")
        sys.stderr.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            err.print("stopped")
        finally:
            server.close()

    return echo


def register(group: click.Group) -> None:
    """Add this module's commands to the ``sandbox`` group."""
    group.add_command(_list_command())
    group.add_command(_check_command())
    group.add_command(_run_command())
    group.add_command(_echo_command())
