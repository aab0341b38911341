"""Scenario commands: ``sandbox list``, ``check``, ``run`` and the ``echo`` backend."""

from __future__ import annotations

import os
import sys

import click

from sandbox.cli_common import err, handle_errors


def _echo_command() -> click.Command:
    @click.command("echo")
    @click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True,
                  help="Port to listen on (0 picks a free one).")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--pod", default=None, help="Pod name echoed back [env POD_NAME].")
    @click.option("--namespace", default=None, help="Namespace echoed back [env NAMESPACE].")
    @click.option("--service", default=None, help="Service echoed back [env SERVICE_NAME].")
    @click.option("--ingress", default=None, help="Ingress echoed back [env INGRESS_NAME].")
    @handle_errors
    def echo(port: int, host: str, pod: str | None, namespace: str | None,
             service: str | None, ingress: str | None) -> None:
        """Run an HTTP echo backend that answers like the upstream echo-basic image.

        Foreground; Ctrl-C stops it.
        """
        from sandbox.echo import EchoServer
        from sandbox.errors import InputError

        try:
            server = EchoServer(
                host, port,
                pod=pod if pod is not None else os.environ.get("POD_NAME", ""),
                namespace=namespace if namespace is not None else os.environ.get("NAMESPACE", ""),
                service=service if service is not None else os.environ.get("SERVICE_NAME", ""),
                ingress=ingress if ingress is not None else os.environ.get("INGRESS_NAME", ""),
            )
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                             field="--port") from None
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
    group.add_command(_echo_command())
