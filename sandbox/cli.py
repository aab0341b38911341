"""The ``sandbox`` command. Thin: every command lives in a ``cli_*`` module over the library.

Exit codes: 0 ok, 1 a check failed, 2 usage or input error, 3 environment error
(Docker engine, tools, cluster).
"""

from __future__ import annotations

import logging

import click

from sandbox import __version__, cli_explain, cli_scenarios, cli_stack

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
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"verbose": verbose, "quiet": quiet}


cli_stack.register(main)
cli_scenarios.register(main)
cli_explain.register(main)
