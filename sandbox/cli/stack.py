"""``sandbox up / down / status / doctor``: thin shells over :mod:`sandbox.infra.stack`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sandbox import settings as settings_mod
from sandbox.cli.common import ConsoleReporter, err, handle_errors, output_option, print_json
from sandbox.errors import CheckFailed, DockerUnavailable, EnvironmentProblem, InputError
from sandbox.infra import doctor as doctor_mod
from sandbox.infra import images as images_mod
from sandbox.infra import stack
from sandbox.infra.controllers.envoy_gateway import EnvoyGateway
from sandbox.scenario.library import list_scenarios, resolve_scenario
from sandbox.scenario.load import load_scenario
from sandbox.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

cluster_option = click.option(
    "--cluster",
    type=click.Choice(settings_mod.CLUSTER_PROVIDERS),
    envvar="SANDBOX_CLUSTER",
    show_envvar=True,
    default=None,
    help=f"Which tool makes the sandbox's cluster [default: {settings_mod.DEFAULT_CLUSTER_PROVIDER}].",
)


def stack_options(func: F) -> F:
    """Flags shared by the stack commands, each mirrored by a SANDBOX_* variable."""
    options = [
        cluster_option,
        click.option(
            "--name",
            envvar="SANDBOX_CLUSTER_NAME",
            show_envvar=True,
            help=f"Cluster name [default: {settings_mod.DEFAULT_CLUSTER_NAME}].",
        ),
        click.option(
            "--k3s-image",
            envvar="SANDBOX_K3S_IMAGE",
            show_envvar=True,
            help=f"k3s image for a new cluster [default: {settings_mod.K3S_IMAGE}].",
        ),
        click.option(
            "--k3d-version",
            envvar="SANDBOX_K3D_VERSION",
            show_envvar=True,
            help=f"k3d to use (PATH if it fits, else downloaded) [default: {settings_mod.K3D_VERSION}].",
        ),
        click.option(
            "--kind-version",
            envvar="SANDBOX_KIND_VERSION",
            show_envvar=True,
            help=f"kind to use with --cluster kind [default: {settings_mod.KIND_VERSION}].",
        ),
        click.option(
            "--kind-node-image",
            envvar="SANDBOX_KIND_NODE_IMAGE",
            show_envvar=True,
            help="kind node image for a new cluster (a tag without a digest works and is "
            f"not pulled when the engine has it) [default: {settings_mod.KIND_NODE_IMAGE}].",
        ),
        click.option(
            "--kubectl-version",
            envvar="SANDBOX_KUBECTL_VERSION",
            show_envvar=True,
            help=f"kubectl to use [default: {settings_mod.KUBECTL_VERSION}].",
        ),
        click.option(
            "--envoy-gateway-version",
            envvar="SANDBOX_ENVOY_GATEWAY_VERSION",
            show_envvar=True,
            help=f"Envoy Gateway release [default: {settings_mod.ENVOY_GATEWAY_VERSION}].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(**flags: str | None) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    base = Settings()
    mapping = {
        "cluster": "cluster",
        "kind_version": "kind_version",
        "kind_node_image": "kind_node_image",
        "name": "cluster_name",
        "k3s_image": "k3s_image",
        "k3d_version": "k3d_version",
        "kubectl_version": "kubectl_version",
        "envoy_gateway_version": "envoy_gateway_version",
    }
    changes = {mapping[k]: v for k, v in flags.items() if k in mapping and v}
    settings = dataclasses.replace(base, **changes)
    stack.validate_cluster_provider(settings)
    stack.validate_cluster_name(settings.cluster_name, settings.cluster)
    return settings


def _reporter(ctx: click.Context) -> ConsoleReporter:
    quiet = bool((ctx.obj or {}).get("quiet"))
    return ConsoleReporter(err, quiet=quiet)


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
@click.option(
    "--offline",
    is_flag=True,
    envvar="SANDBOX_OFFLINE",
    show_envvar=True,
    help="Never pull: fail at once, naming every needed image that is neither in the "
    "Docker engine nor in the cluster.",
)
@click.option(
    "--pull",
    is_flag=True,
    envvar="SANDBOX_PULL",
    show_envvar=True,
    help="Pull on the host the needed images that neither the engine nor the cluster "
    "has, then load them into the cluster.",
)
@output_option
@click.pass_context
@handle_errors
def up(
    ctx: click.Context,
    /,
    timeout: float,
    merge_kubeconfig: bool,
    offline: bool,
    pull: bool,
    output: str,
    **flags: str | None,
) -> None:
    """Create (or confirm) the k3d (or kind) cluster with Envoy Gateway and GatewayClass eg.

    Idempotent: on a ready stack it returns within seconds; an interrupted `up` is finished by
    the next one. Images the Docker engine has are loaded into the cluster instead of pulled.
    Your ~/.kube/config is never changed unless --merge-kubeconfig is given.
    """
    settings = settings_from(**flags)
    result = stack.ensure_up(
        settings,
        _reporter(ctx),
        timeout=timeout,
        merge_kubeconfig=merge_kubeconfig,
        offline=offline,
        pull=pull,
    )
    if output == "json":
        print_json(result.summary())
        return
    total = sum(p.seconds for p in result.phases)
    err.print(
        f"[bold green]ready[/] in {total:.1f}s: {settings.cluster} cluster {settings.cluster_name}, "
        f"GatewayClass {result.gateway_class}",
        highlight=False,
    )
    err.print(
        f"  kubectl --kubeconfig {result.kubeconfig} --context {result.context} get gatewayclass",
        highlight=False,
        markup=False,
    )


@click.command()
@stack_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=180,
    show_default=True,
    envvar="SANDBOX_TIMEOUT",
    show_envvar=True,
    help="Seconds the delete may take.",
)
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
            f"cluster:       {c.get('provider', '')} {c['name']} (servers {c.get('servers')}, agents {c.get('agents')}, "
            f"api 127.0.0.1:{c.get('apiPort')}, {'ours' if c.get('owned') else 'NOT created by the sandbox'})"
        )
    else:
        lines.append(f"cluster:       {c.get('provider', '')} {c['name']} (absent)")
    for n in report.get("nodes") or []:
        lines.append(
            f"node:          {n['name']} {'Ready' if n['ready'] else 'NotReady'} {n.get('kubelet') or ''}"
        )
    if "controller" in report:
        ctl = report["controller"]
        lines.append(
            f"controller:    {ctl['name']} {ctl['version']} "
            f"{'Available' if ctl['available'] else 'not Available'} ({ctl['status']})"
        )
    if "gatewayClass" in report:
        gc = report["gatewayClass"]
        lines.append(
            f"gatewayclass:  {gc['name']} {'Accepted' if gc['accepted'] else 'not Accepted'}"
        )
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
    checks = doctor_mod.doctor(settings)
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
        raise EnvironmentProblem(f"{len(problems)} problem(s) found: {names}", hint=problems[0].fix)


@click.command()
@stack_options
@click.argument("scenarios", nargs=-1)
@output_option
@handle_errors
def images(scenarios: tuple[str, ...], output: str, **flags: str | None) -> None:
    """List every image the stack and the scenarios need, and whether the Docker engine and
    the cluster have it (SCENARIOS: names or folders; default: the whole library).

    Exit 0 when each image is in the engine or the cluster, 1 when one is in neither (the
    cluster would pull it), 3 without a Docker engine.
    """

    settings = settings_from(**flags)
    stack.preflight()
    controller = EnvoyGateway(settings.envoy_gateway_version, gateway_class=settings.gateway_class)
    folders = [resolve_scenario(a) for a in scenarios] if scenarios else list_scenarios()
    loaded = []
    for folder in folders:
        try:
            loaded.append(load_scenario(folder))
        except InputError as e:
            if scenarios:
                raise
            err.print(f"note: {folder.name} skipped: {e.message.splitlines()[0]}", markup=False)
    install = controller.install_yaml(progress=lambda line: err.print(line, markup=False))
    needs = images_mod.merge(
        {settings.node_image: [f"{settings.cluster} node"]},
        images_mod.stack_needs(install),
        images_mod.scenario_needs(loaded),
    )
    info = stack.cluster_from_docker(settings)
    nodes = list(info.nodes) if info is not None and info.running else None
    located = images_mod.locate(needs, nodes)
    node_ref = settings.node_image
    if info is not None:  # a node image is never inside its own cluster
        for n in located:
            if n.ref == node_ref:
                n.cluster = None
    if output == "json":
        print_json(
            {
                "cluster": settings.cluster_name,
                "provider": settings.cluster,
                "clusterRunning": bool(info and info.running),
                "images": [n.as_dict() for n in located],
            }
        )
    else:

        def mark(value: bool | None) -> str:
            return "-" if value is None else "yes" if value else "NO"

        width = max(len(n.ref) for n in located)
        click.echo(f"{'IMAGE'.ljust(width)}  ENGINE  CLUSTER  NEEDED BY")
        for n in located:
            by = ", ".join(n.needed_by[:3]) + (
                f" (+{len(n.needed_by) - 3})" if len(n.needed_by) > 3 else ""
            )
            click.echo(
                f"{n.ref.ljust(width)}  {mark(n.engine).ljust(6)}  {mark(n.cluster).ljust(7)}  {by}"
            )
        if info is None or not info.running:
            err.print(
                f"(no running {settings.cluster} cluster {settings.cluster_name}: CLUSTER is '-')",
                markup=False,
            )
    missing = [
        n.ref
        for n in located
        if not n.engine and not n.cluster and not (n.ref == node_ref and info is not None)
    ]
    if missing:
        raise CheckFailed(
            f"{len(missing)} image(s) in neither the engine nor the cluster: " + ", ".join(missing),
            hint="`sandbox up --pull` pulls them on the host and loads them",
        )


def register(group: click.Group) -> None:
    """Add up, down, status, doctor and images to the ``sandbox`` group."""
    for command in (up, down, status, doctor, images):
        group.add_command(command)
