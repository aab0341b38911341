"""``sandbox run``: scenarios against a target (the sandbox's cluster, the reference gateway on loopback, an existing context, or --address), with live result lines, the summary and the report files."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from sandbox.cli.common import (
    ConsoleReporter,
    err,
    expand_args,
    handle_errors,
    out,
    output_option,
    print_json,
)
from sandbox.errors import (
    EXIT_OK,
    InputError,
    SandboxError,
)
from sandbox.manifests import display_path
from sandbox.probe.prober import Prober
from sandbox.report import json as report_json
from sandbox.report import text as report_mod
from sandbox.report.write import write_reports
from sandbox.runner import Runner, RunReport
from sandbox.scenario import crds as schema
from sandbox.scenario import features
from sandbox.scenario.library import resolve_scenario
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Scenario
from sandbox.settings import CLUSTER_PROVIDERS, DEFAULT_GATEWAY_CLASS, PROVIDERS
from sandbox.targets import Target, factory


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


def register(group: click.Group) -> None:
    """Add ``sandbox run`` to the ``sandbox`` group."""
    group.add_command(_run_command())
