"""Generates the field table of ``sandbox.scenario.fields`` from the Gateway API CRDs:
``python -m sandbox.scenario.fields_table CRD_DIR_OR_INSTALL_YAML > sandbox/data/gateway-api-fields.json``."""

from __future__ import annotations

import json
import sys

from sandbox.scenario import crds as schema
from sandbox.scenario.fields import build_table


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.scenario.fields_table CRD_DIR_OR_INSTALL_YAML``: the table as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m sandbox.scenario.fields_table CRD_DIR_OR_INSTALL_YAML\n")
        return 2
    crds = schema.load_crds(args[0], download=False)
    data = build_table(crds.schemas, crds.bundle_version, crds.channel)
    sys.stdout.write(json.dumps(data, sort_keys=True, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - the generator's entry point
    sys.exit(main())
