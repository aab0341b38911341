"""What every CLI command shares: consoles, verbosity, ``-o``, error-to-exit-code handling.

Data goes to stdout; progress, logs and errors go to stderr (rich, colour only on a terminal,
``NO_COLOR`` honoured by rich itself).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console
from rich.markup import escape

from sandbox.errors import EXIT_USAGE, SandboxError
from sandbox.infra.progress import PhaseResult, Reporter
from sandbox.scenario.library import find_scenarios

F = TypeVar("F", bound=Callable[..., Any])

#: stderr: progress, logs, errors
err = Console(stderr=True, highlight=False, soft_wrap=True)
#: stdout: data (tables, JSON, reports)
out = Console(highlight=False, soft_wrap=True)

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="SANDBOX_OUTPUT",
    help="text for people, json for machines (printed on stdout).",
)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def report_error(error: SandboxError) -> None:
    err.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
    if error.hint:
        err.print(f"[bold]hint:[/] {escape(error.hint)}", markup=True, highlight=False)


def handle_errors(func: F) -> F:
    """Turn SandboxError into its message and exit code; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SandboxError as e:
            report_error(e)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return cast(F, wrapper)  # functools.wraps keeps the signature; mypy cannot see it


def usage_error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(EXIT_USAGE)


class ConsoleReporter(Reporter):
    """Phase lines with durations on a rich Console (stderr)."""

    def __init__(self, console: Any, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    def start(self, phase: str, title: str) -> None:
        if not self.quiet:
            self.console.print(f"[bold]▶[/] {title} ...", highlight=False)

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"  {message}", highlight=False, markup=False)

    def done(self, result: PhaseResult) -> None:
        if not self.quiet:
            self.console.print(
                f"[green]✓[/] {result.name}: {result.action} [dim]({result.seconds:.1f}s)[/]",
                highlight=False,
            )

    def failed(self, phase: str, seconds: float, error: BaseException) -> None:
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        self.console.print(f"[red]✗[/] {phase}: {what} [dim]({seconds:.1f}s)[/]", highlight=False)
        if isinstance(error, KeyboardInterrupt):
            self.console.print("  run `sandbox up` again: it resumes where this one stopped")


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
