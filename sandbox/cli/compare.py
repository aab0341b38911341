"""``sandbox compare``: the reference model and a real gateway, check by check, side by side.

Each scenario is deployed on the sandbox's cluster (or ``--provider existing``); each check's
request is sent to the real gateway as ``sandbox run`` sends it (converging the same way), and
its last response is held against the model's whole prediction (:mod:`sandbox.probe.compare`). The
route and rule each side chose are shown: the model's from its decision, the real gateway's from
the data plane's access log (Envoy Gateway logs the xDS route name of every request). Exit 0
when they agree wherever the model claims to know, 1 when they differ, 2/3 as usual.
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from typing import Any

import click

from sandbox.cli.common import err, expand_args, handle_errors, out, output_option, print_json
from sandbox.cli.run import make_target
from sandbox.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError, SandboxError
from sandbox.probe.compare import compare_check
from sandbox.probe.http import send_http
from sandbox.probe.prober import Prober
from sandbox.reference.verify import build_model
from sandbox.runner import Runner
from sandbox.scenario.library import resolve_scenario
from sandbox.scenario.load import load_scenario
from sandbox.scenario.model import Scenario
from sandbox.targets.cluster import ClusterDeployment


def _model_route(decision: Any) -> str:
    if decision.route is None:
        return ""
    kind = "grpcroute" if decision.grpc_status is not None else "httproute"
    return f"{kind} {decision.route} rule {decision.rule}"


def compare_scenario(scenario: Scenario, target: Any, runner: Any) -> list[dict[str, Any]]:
    """Deploy, run every check, compare each with the model; one row per check."""

    model = build_model(scenario)
    rows: list[dict[str, Any]] = []
    with target.deploy(scenario) as dep:
        for check in scenario.checks:
            result = runner.run_check(scenario, check, dep)
            comparison = compare_check(scenario, model, check, result.observed, dep.namespace_of)
            real_route: str | None = None
            if (
                isinstance(dep, ClusterDeployment)
                and result.request is not None
                and check.request.grpc is None
            ):
                # one more request, marked with its own User-Agent, whose access-log line
                # names the route Envoy chose (gRPC requests cannot be marked so)
                agent = f"gateway-sandbox-compare/{uuid.uuid4().hex}"
                tagged = dataclasses.replace(
                    result.request, headers={**result.request.headers, "User-Agent": agent}
                )
                send_http(tagged)
                real_route = dep.served_route(
                    check.request.gateway or scenario.gateway, user_agent=agent
                )
            model_route = _model_route(comparison.decision)
            route_differs = (
                comparison.known and real_route is not None and real_route != model_route
            )
            rows.append(
                {
                    "scenario": scenario.name,
                    "check": check.name,
                    "passed": result.status == "passed",
                    "status": result.observed.status if result.observed else None,
                    "modelRoute": model_route or "no route",
                    "realRoute": None if real_route is None else (real_route or "no route"),
                    "known": comparison.known,
                    "whyNotCompared": comparison.why_unknown,
                    "agree": comparison.agree and not route_differs,
                    "differences": [
                        {"field": d.field, "model": d.model, "real": d.real}
                        for d in comparison.differences
                    ]
                    + (
                        [
                            {
                                "field": "route",
                                "model": model_route or "no route",
                                "real": real_route or "no route",
                            }
                        ]
                        if route_differs
                        else []
                    ),
                }
            )
    return rows


def _compare_command() -> click.Command:
    @click.command("compare")
    @click.argument("scenarios", nargs=-1, required=True)
    @click.option(
        "--cluster",
        type=click.Choice(("k3d", "kind")),
        default=None,
        envvar="SANDBOX_CLUSTER",
        show_envvar=True,
        help="The sandbox's cluster to deploy on [default: k3d].",
    )
    @click.option(
        "--provider",
        type=click.Choice(("k3d", "kind", "existing")),
        default=None,
        help="existing: a cluster of your kubeconfig (--context).",
    )
    @click.option("--context", metavar="NAME", help="kubeconfig context for --provider existing.")
    @click.option("--gateway-class", metavar="NAME", help="GatewayClass for every Gateway.")
    @output_option
    @click.pass_context
    @handle_errors
    def compare(
        ctx: click.Context,
        scenarios: tuple[str, ...],
        cluster: str | None,
        provider: str | None,
        context: str | None,
        gateway_class: str | None,
        output: str,
    ) -> None:
        """Send each check to the real gateway and to the reference model; show where they
        differ (status, backend, request, headers, redirect) and the route each side chose.

        Exit 0 when they agree wherever the model claims to know the answer, 1 when not.
        """

        quiet = bool((ctx.obj or {}).get("quiet"))
        loaded = []
        for arg in expand_args(scenarios):
            loaded.append(load_scenario(resolve_scenario(arg)))
        target = make_target(
            address=None,
            provider=provider,
            gateway_class=gateway_class,
            context=context,
            keep=False,
            quiet=quiet,
            cluster=cluster,
            scenarios=loaded,
        )
        if target.name in ("local", "address"):
            raise InputError(
                "compare needs a real gateway: --cluster k3d|kind or --provider existing",
                field="--provider",
            )
        runner = Runner(target, prober=Prober())
        rows: list[dict[str, Any]] = []
        try:
            for scenario in loaded:
                if not quiet:
                    err.print(f"{scenario.name}: deploying on {target.name}", markup=False)
                rows.extend(compare_scenario(scenario, target, runner))
        finally:
            failures = target.finish()
        if failures:
            first = next(iter(failures.values()))
            raise first if isinstance(first, SandboxError) else SandboxError(str(first))
        differ = [r for r in rows if not r["agree"]]
        if output == "json":
            print_json(
                {
                    "target": target.name,
                    "rows": rows,
                    "summary": {
                        "checks": len(rows),
                        "compared": sum(1 for r in rows if r["known"]),
                        "differ": len(differ),
                    },
                }
            )
        else:
            for r in rows:
                mark = "same" if r["agree"] and r["known"] else "DIFF" if not r["agree"] else "n/a "
                out.print(
                    f"{mark} {r['scenario']} / {r['check']}: {r['status']}; model "
                    f"{r['modelRoute']}; real {r['realRoute'] or '(not in the access log)'}",
                    markup=False,
                    highlight=False,
                )
                if not r["known"]:
                    out.print(f"     not compared: {r['whyNotCompared']}", markup=False)
                for d in r["differences"]:
                    out.print(
                        f"     {d['field']}: model {d['model']}, real {d['real']}",
                        markup=False,
                        highlight=False,
                    )
            out.print(
                f"\n{len(rows)} checks: {sum(1 for r in rows if r['known'])} compared, "
                f"{len(differ)} where the model and {target.name} differ",
                markup=False,
            )
        sys.exit(EXIT_CHECK_FAILED if differ else EXIT_OK)

    return compare


def register(group: click.Group) -> None:
    group.add_command(_compare_command())
