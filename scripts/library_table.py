#!/usr/bin/env python3
"""The per-scenario table of a library run's JUnit XML (``pytest scenarios --junitxml=F`` on a
real cluster): scenario, checks, passed, skipped, and how many passed checks the reference
model agreed with (JUnit property ``model``: ``agrees``, ``differs``, ``not compared: why``).

    python scripts/library_table.py reports/real-scenarios.xml [--markdown]
"""

from __future__ import annotations

import argparse
import collections
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("junit")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case in ET.parse(args.junit).getroot().iter("testcase"):
        # classname "scenarios.NAME.scenario.yaml" (pytest's path of the collected file)
        classname = case.get("classname", "")
        if not classname.endswith(".scenario.yaml"):
            continue  # not a scenario check
        scenario = classname[: -len(".scenario.yaml")].rsplit(".", 1)[-1]
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        c = rows[scenario]
        c["checks"] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            c["failed"] += 1
        elif case.find("skipped") is not None:
            c["skipped"] += 1
        else:
            c["passed"] += 1
            model = props.get("model", "")
            c[
                "agrees"
                if model == "agrees"
                else "differs"
                if model == "differs"
                else "not compared"
            ] += 1
    head = [
        "scenario",
        "checks",
        "passed",
        "failed",
        "skipped",
        "model == real",
        "model differs",
        "not compared",
    ]
    keys = ["checks", "passed", "failed", "skipped", "agrees", "differs", "not compared"]
    total: collections.Counter[str] = collections.Counter()
    lines = []
    for name in sorted(rows):
        total.update(rows[name])
        lines.append([name, *[str(rows[name][k]) for k in keys]])
    lines.append(["total", *[str(total[k]) for k in keys]])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in lines:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
        for row in [head, *lines]:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return 1 if total["failed"] or total["differs"] else 0


if __name__ == "__main__":
    sys.exit(main())
