"""Scenario commands: ``sandbox list``, ``check`` and the ``echo`` backend (``run`` is in
:mod:`sandbox.cli.run`).

Thin: loading and validation live in :mod:`sandbox.scenario.load`, the model's verdicts in
:mod:`sandbox.reference.verify`, the echo backend in :mod:`sandbox.echo.http`.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from sandbox.cli.common import (
    err,
    expand_args,
    handle_errors,
    out,
    output_option,
    print_json,
)
from sandbox.echo.http import EchoServer
from sandbox.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
)
from sandbox.manifests import display_path
from sandbox.reference.verify import build_model, unattached_lines, verify_scenario
from sandbox.scenario import crds as schema_mod
from sandbox.scenario.library import list_scenarios, resolve_scenario
from sandbox.scenario.load import ScenarioInvalid, load_scenario
from sandbox.scenario.model import Scenario

# where `run` sends scenarios: the sandbox's own cluster made by k3d or kind, the reference
# gateway on loopback, or an existing kubeconfig context


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
    group.add_command(_echo_command())
