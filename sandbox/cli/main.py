"""The ``sandbox`` command. Thin: every command lives in a ``cli_*`` module over the library.

Exit codes: 0 ok, 1 a check failed, 2 usage or input error, 3 environment error
(Docker engine, tools, cluster).
"""

from __future__ import annotations

import logging
from typing import Any

import click

from sandbox import __version__
from sandbox.cli import compare as cli_compare
from sandbox.cli import explain as cli_explain
from sandbox.cli import run as cli_run
from sandbox.cli import scenarios as cli_scenarios
from sandbox.cli import stack as cli_stack

EPILOG = """\b
Exit codes:
  0  ok
  1  a check failed
  2  usage or input error (flags, scenario files, manifests)
  3  environment error (Docker engine, k3d/kubectl, cluster)
"""


@click.group(
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "SANDBOX"},
)
@click.version_option(__version__, prog_name="gateway-sandbox")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final result.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """A disposable local Gateway API stack (k3d + Envoy Gateway) and scenario runner."""
    logging.basicConfig(
        level=_log_level(verbose, quiet), format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _log_level(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``-v``/``-q`` given after the command name (``sandbox run X -q``) mean the same as before
    it: they update the settings the group callback made (it runs before these are parsed)."""
    if not value:
        return
    obj = ctx.ensure_object(dict)
    if param.name == "quiet":
        obj["quiet"] = True
    else:
        obj["verbose"] = int(obj.get("verbose") or 0) + int(value)
    logging.getLogger().setLevel(_log_level(int(obj.get("verbose") or 0), bool(obj.get("quiet"))))


def _add_verbosity_options(group: click.Group) -> None:
    for command in group.commands.values():
        names = {opt for p in command.params for opt in getattr(p, "opts", [])}
        if "-v" not in names:
            command.params.append(
                click.Option(
                    ["-v", "--verbose"],
                    count=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_set_verbosity,
                    help="More detail on stderr (repeatable).",
                )
            )
        if "-q" not in names:
            command.params.append(
                click.Option(
                    ["-q", "--quiet"],
                    is_flag=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_set_verbosity,
                    help="Only errors and the final result.",
                )
            )


cli_stack.register(main)
cli_scenarios.register(main)
cli_run.register(main)
cli_explain.register(main)
cli_compare.register(main)
_add_verbosity_options(main)
