"""``sandbox up / down / status / doctor``: thin shells over :mod:`sandbox.stack`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sandbox import settings as settings_mod
from sandbox import stack
from sandbox.cli_common import err, handle_errors, output_option, print_json
from sandbox.errors import CheckFailed, DockerUnavailable, EnvironmentProblem
from sandbox.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def stack_options(func: F) -> F:
    """Flags shared by the stack commands, each mirrored by a SANDBOX_* variable."""
    options = [
        click.option("--name", envvar="SANDBOX_CLUSTER_NAME", show_envvar=True,
                     help=f"Cluster name [default: {settings_mod.DEFAULT_CLUSTER_NAME}]."),
        click.option("--k3s-image", envvar="SANDBOX_K3S_IMAGE", show_envvar=True,
                     help=f"k3s image for a new cluster [default: {settings_mod.K3S_IMAGE}]."),
        click.option("--k3d-version", envvar="SANDBOX_K3D_VERSION", show_envvar=True,
                     help=f"k3d to use (PATH if it fits, else downloaded) [default: {settings_mod.K3D_VERSION}]."),
        click.option("--kubectl-version", envvar="SANDBOX_KUBECTL_VERSION", show_envvar=True,
                     help=f"kubectl to use [default: {settings_mod.KUBECTL_VERSION}]."),
        click.option("--envoy-gateway-version", envvar="SANDBOX_ENVOY_GATEWAY_VERSION", show_envvar=True,
                     help=f"Envoy Gateway release [default: {settings_mod.ENVOY_GATEWAY_VERSION}]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(**flags: str | None) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    base = Settings()
    mapping = {
        "name": "cluster_name",
        "k3s_image": "k3s_image",
        "k3d_version": "k3d_version",
        "kubectl_version": "kubectl_version",
        "envoy_gateway_version": "envoy_gateway_version",
    }
    changes = {mapping[k]: v for k, v in flags.items() if k in mapping and v}
    settings = dataclasses.replace(base, **changes)
    stack.validate_cluster_name(settings.cluster_name)
    return settings


def _reporter(ctx: click.Context) -> stack.ConsoleReporter:
    quiet = bool((ctx.obj or {}).get("quiet"))
    return stack.ConsoleReporter(err, quiet=quiet)


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=stack.DEFAULT_TIMEOUT,
    show_default=True,
    envvar="SANDBOX_TIMEOUT",
    show_envvar=True,
    help="Seconds the whole command may take.",
)


@click.command()
@stack_options
@timeout_option
@click.option(
    "--merge-kubeconfig",
    is_flag=True,
    envvar="SANDBOX_MERGE_KUBECONFIG",
    show_envvar=True,
    help="Also merge the cluster into your default kubeconfig (current context unchanged).",
)
@output_option
@click.pass_context
@handle_errors
def up(ctx: click.Context, /, timeout: float, merge_kubeconfig: bool, output: str, **flags: str | None) -> None:
    """Create (or confirm) the k3d cluster with Envoy Gateway and GatewayClass eg.

    Idempotent: on a ready stack it returns within seconds; an interrupted `up` is finished by
    the next one. Your ~/.kube/config is never changed unless --merge-kubeconfig is given.
    """
    settings = settings_from(**flags)
    result = stack.ensure_up(settings, _reporter(ctx), timeout=timeout, merge_kubeconfig=merge_kubeconfig)
    if output == "json":
        print_json(result.summary())
        return
    total = sum(p.seconds for p in result.phases)
    err.print(
        f"[bold green]ready[/] in {total:.1f}s: cluster {settings.cluster_name}, "
        f"GatewayClass {result.gateway_class}",
        highlight=False,
    )
    err.print(f"  kubectl --kubeconfig {result.kubeconfig} --context {result.context} get gatewayclass",
              highlight=False, markup=False)


@click.command()
@stack_options
@click.option("--timeout", type=click.FloatRange(min=1), default=180, show_default=True,
              envvar="SANDBOX_TIMEOUT", show_envvar=True, help="Seconds the delete may take.")
@output_option
@click.pass_context
@handle_errors
def down(ctx: click.Context, /, timeout: float, output: str, **flags: str | None) -> None:
    """Delete the sandbox's cluster and its state (only a cluster the sandbox created).

    Idempotent: nothing to delete is not an error. A failure exits non-zero.
    """
    settings = settings_from(**flags)
    outcome = stack.down(settings, _reporter(ctx), timeout=timeout)
    if output == "json":
        print_json({"cluster": settings.cluster_name, "result": outcome})
    else:
        err.print(f"cluster {settings.cluster_name}: {outcome}", highlight=False)


def _status_text(report: dict[str, Any]) -> list[str]:
    c = report["cluster"]
    lines = [f"health:        {report.get('health')}"]
    if c.get("exists"):
        lines.append(
            f"cluster:       {c['name']} (servers {c.get('servers')}, agents {c.get('agents')}, "
            f"api 127.0.0.1:{c.get('apiPort')}, {'ours' if c.get('owned') else 'NOT created by the sandbox'})"
        )
    else:
        lines.append(f"cluster:       {c['name']} (absent)")
    for n in report.get("nodes") or []:
        lines.append(f"node:          {n['name']} {'Ready' if n['ready'] else 'NotReady'} {n.get('kubelet') or ''}")
    if "controller" in report:
        ctl = report["controller"]
        lines.append(
            f"controller:    {ctl['name']} {ctl['version']} "
            f"{'Available' if ctl['available'] else 'not Available'} ({ctl['status']})"
        )
    if "gatewayClass" in report:
        gc = report["gatewayClass"]
        lines.append(f"gatewayclass:  {gc['name']} {'Accepted' if gc['accepted'] else 'not Accepted'}")
    lines.append(f"kubeconfig:    {report['kubeconfig']} (context {report['context']})")
    lines.append("versions:      " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    for p in report.get("problems") or []:
        lines.append(f"problem:       {p}")
    return lines


@click.command()
@stack_options
@output_option
@handle_errors
def status(output: str, **flags: str | None) -> None:
    """Show the cluster, node, controller, GatewayClass, versions and health.

    Exit 0 when healthy, 1 when the stack is absent or degraded, 3 without a Docker engine.
    """
    settings = settings_from(**flags)
    report = stack.status(settings)
    if output == "json":
        print_json(report)
    else:
        for line in _status_text(report):
            click.echo(line)
    health = report.get("health")
    if health == "docker-unavailable":
        docker = report.get("docker") or {}
        raise DockerUnavailable(str(docker.get("error")), hint=docker.get("fix"))
    if health != "ok":
        raise CheckFailed(f"the stack is {health}", hint="`sandbox up` creates or repairs it")


@click.command()
@stack_options
@output_option
@handle_errors
def doctor(output: str, **flags: str | None) -> None:
    """Check the Docker engine, tools, ports and cluster name; say how to fix each problem.

    Exit 0 when nothing is wrong, 3 when something is.
    """
    settings = settings_from(**flags)
    checks = stack.doctor(settings)
    problems = [c for c in checks if not c.ok]
    if output == "json":
        print_json({"ok": not problems, "checks": [dataclasses.asdict(c) for c in checks]})
    else:
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            click.echo(f"{mark} {c.name}: {c.detail}")
            if c.fix and not c.ok:
                click.echo(f"     fix: {c.fix}")
    if problems:
        names = ", ".join(c.name for c in problems)
        raise EnvironmentProblem(
            f"{len(problems)} problem(s) found: {names}", hint=problems[0].fix
        )


def register(group: click.Group) -> None:
    """Add up, down, status and doctor to the ``sandbox`` group."""
    for command in (up, down, status, doctor):
        group.add_command(command)
