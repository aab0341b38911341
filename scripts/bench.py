#!/usr/bin/env python3
"""Time the real path, phase by phase, and the tutorial's own steps on the same images.

    python scripts/bench.py [--cluster kind] [--skip-library] [--workers 1,3] [--repeat N]

Each figure is a wall-clock run on this machine; with ``--repeat N`` the stack's phases (cold up,
warm up, run quickstart, down) and the tutorial are run N times, alternating, and the table shows
the median with every value in the JSON (the tutorial's own waits vary by seconds from run to
run: one run of each is not a ratio):

- cold ``sandbox up`` of a new cluster (its phases: cluster, node, preload, Envoy Gateway, class);
- warm ``sandbox up`` (the stack is ready);
- ``sandbox run quickstart`` (namespace, apply, ready, port-forward, checks, cleanup);
- the whole library, ``pytest scenarios -n N --dist loadgroup``, for each N of ``--workers``;
- ``sandbox down``;
- scripts/tutorial.sh: the Envoy Gateway quickstart's steps as a user pastes them (kind create,
  apply install.yaml, wait, apply the quickstart, find the Service, port-forward, curl until
  200), on the same node image with the same host tweaks, then its cluster deleted.

The ratio is (cold up + run quickstart) / tutorial. Prints a table and writes
``reports/bench.json``. Needs the images local (``sandbox up --offline`` must succeed): on our
machines after ``python3 ../shared/realstack/realstack.py up``, ``eval "$(... env)"`` and
``export SANDBOX_KIND_NODE_IMAGE=$REALSTACK_KIND_IMAGE`` (kind v0.33.0's default node image is
not built here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def timed(
    argv: list[str], *, env: dict[str, str], timeout: float
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    return time.monotonic() - started, result


def must(what: str, result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"bench: {what} failed (exit {result.returncode})")


def junit_counts(path: Path) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return {
        "checks": total,
        "passed": total - failed - skipped,
        "failed": failed,
        "skipped": skipped,
    }


def tutorial(env: dict[str, str], cluster: str) -> dict[str, Any]:
    """scripts/tutorial.sh on a cluster config with the sandbox's host tweaks and nothing else."""
    import yaml

    from sandbox.infra import docker_engine
    from sandbox.infra.providers import kind as kind_mod
    from sandbox.infra.stack import tweaks_for
    from sandbox.settings import Settings

    settings = Settings(cluster="kind")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = kind_mod.config(
            cluster,
            owner_file=Path(tmp) / "unused",
            api_port=None,
            tweaks=tweaks_for(docker_engine.ping()),
        )
        del cfg["nodes"][0]["extraMounts"]  # the sandbox's owner mark: not the tutorial's
        (Path(tmp) / "kind.yaml").write_text(yaml.safe_dump(cfg))
        run_env = {
            **env,
            "TUTORIAL_CLUSTER": cluster,
            "TUTORIAL_KIND_IMAGE": settings.kind_node_image,
            "TUTORIAL_KIND_CONFIG": str(Path(tmp) / "kind.yaml"),
            "TUTORIAL_QUICKSTART": str(ROOT / "scenarios/quickstart/quickstart.yaml"),
            "TUTORIAL_KUBECONFIG": str(Path(tmp) / "kubeconfig"),
        }
        try:
            seconds, result = timed(
                ["bash", str(ROOT / "scripts/tutorial.sh")], env=run_env, timeout=900
            )
            must("scripts/tutorial.sh", result)
        finally:
            subprocess.run(
                [
                    "kind",
                    "delete",
                    "cluster",
                    "--name",
                    cluster,
                    "--kubeconfig",
                    str(Path(tmp) / "kubeconfig"),
                ],
                capture_output=True,
                timeout=300,
                env=run_env,
            )
    steps = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^step (\S+) ([0-9.]+)$", result.stdout, re.M)
    }
    return {"seconds": round(seconds, 1), "steps": steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cluster", default=os.environ.get("SANDBOX_CLUSTER", "kind"), choices=("kind", "k3d")
    )
    ap.add_argument(
        "--name", default="sandbox-bench", help="the cluster the bench makes and deletes"
    )
    ap.add_argument("--workers", default="1,3", help="library runs, comma-separated -n values")
    ap.add_argument("--skip-library", action="store_true", help="no library runs (minutes each)")
    ap.add_argument("--skip-tutorial", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "reports/bench.json"))
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of the stack's phases and the tutorial"
    )
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.repeat == 1:
        return bench_once(args)
    return bench_repeated(args)


def bench_repeated(args: argparse.Namespace) -> int:
    """``--repeat N``: N single runs (the library only in the first), medians reported."""
    runs: list[dict[str, Any]] = []
    out = Path(args.out)
    for i in range(args.repeat):
        one = argparse.Namespace(**vars(args))
        one.skip_library = args.skip_library or i > 0
        one.out = str(out.with_name(f"{out.stem}-run{i + 1}{out.suffix}"))
        if bench_once(one) != 0:
            return 1
        runs.append(json.loads(Path(one.out).read_text()))
        Path(one.out).unlink()
    report: dict[str, Any] = {**runs[0], "repeat": args.repeat, "runs": runs}

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    rows = []
    for key in ("coldUp", "warmUp", "runQuickstart", "down", "tutorial"):
        values = [r[key]["seconds"] for r in runs if key in r]
        if values:
            report[key] = {**runs[0][key], "seconds": median(values), "all": values}
            rows.append((key, report[key]["seconds"], " ".join(f"{v:.1f}" for v in values)))
    ratios = [r["ratio"] for r in runs if "ratio" in r]
    if ratios:
        ours = report["coldUp"]["seconds"] + report["runQuickstart"]["seconds"]
        report["ratio"] = round(ours / report["tutorial"]["seconds"], 2)
        report["ratios"] = ratios
        rows.append(
            ("ratio", report["ratio"], "of the medians; per run: " + " ".join(map(str, ratios)))
        )
    print(f"medians of {args.repeat} runs:")
    for name, value, detail in rows:
        shown = f"{value:>7.2f}" if name == "ratio" else f"{value:>6.1f}s"
        print(f"{name:<14}  {shown}  {detail}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")
    return 0


def bench_once(args: argparse.Namespace) -> int:

    env = {
        **os.environ,
        "SANDBOX_CLUSTER": args.cluster,
        "SANDBOX_CLUSTER_NAME": args.name,
        "NO_COLOR": "1",
    }
    sandbox = [sys.executable, "-m", "sandbox"]
    rows: list[tuple[str, float, str]] = []
    report: dict[str, Any] = {
        "cluster": args.cluster,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
    }

    seconds, r = timed([*sandbox, "down"], env=env, timeout=300)  # start from nothing
    must("sandbox down (before)", r)
    seconds, r = timed([*sandbox, "up", "--offline", "-o", "json"], env=env, timeout=900)
    must("cold sandbox up", r)
    phases = {p["name"]: round(p["seconds"], 1) for p in json.loads(r.stdout)["phases"]}
    report["coldUp"] = {"seconds": round(seconds, 1), "phases": phases}
    rows.append(("cold up", seconds, ", ".join(f"{k} {v}" for k, v in phases.items())))

    seconds, r = timed([*sandbox, "up", "-q"], env=env, timeout=300)
    must("warm sandbox up", r)
    report["warmUp"] = {"seconds": round(seconds, 1)}
    rows.append(("warm up", seconds, ""))

    seconds, r = timed([*sandbox, "run", "quickstart"], env=env, timeout=900)
    must("sandbox run quickstart", r)
    report["runQuickstart"] = {"seconds": round(seconds, 1)}
    rows.append(("run quickstart", seconds, ""))

    if not args.skip_library:
        report["library"] = {}
        for n in [int(x) for x in args.workers.split(",") if x]:
            junit = ROOT / f"reports/bench-library-n{n}.xml"
            seconds, r = timed(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "scenarios",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                    "-n",
                    str(n),
                    "--dist",
                    "loadgroup",
                    f"--junitxml={junit}",
                ],
                env=env,
                timeout=3600,
            )
            counts = junit_counts(junit) if junit.exists() else {}
            report["library"][f"n{n}"] = {
                "seconds": round(seconds, 1),
                "exit": r.returncode,
                **counts,
            }
            rows.append(
                (
                    f"library -n {n}",
                    seconds,
                    f"{counts.get('passed', '?')}/{counts.get('checks', '?')} passed",
                )
            )

    seconds, r = timed([*sandbox, "down"], env=env, timeout=300)
    must("sandbox down", r)
    report["down"] = {"seconds": round(seconds, 1)}
    rows.append(("down", seconds, ""))

    if not args.skip_tutorial and args.cluster == "kind":
        t = tutorial(env, f"{args.name}-tutorial")
        report["tutorial"] = t
        rows.append(
            ("tutorial.sh", t["seconds"], ", ".join(f"{k} {v}" for k, v in t["steps"].items()))
        )
        ours = report["coldUp"]["seconds"] + report["runQuickstart"]["seconds"]
        report["ratio"] = round(ours / t["seconds"], 2)
        rows.append(
            ("ratio", report["ratio"], f"(cold up + run quickstart) {ours:.1f}s / tutorial")
        )

    width = max(len(r[0]) for r in rows)
    for name, value, detail in rows:
        shown = f"{value:>7.2f}" if name == "ratio" else f"{value:>6.1f}s"
        print(f"{name:<{width}}  {shown}  {detail}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
