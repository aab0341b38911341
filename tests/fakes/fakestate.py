"""State shared by the fake ``k3d``, ``kubectl`` and Docker engine (tests only).

Everything lives in one JSON file, ``$FAKE_STATE_DIR/state.json``, guarded by an flock::

    {
      "clusters": {                       # what k3d created (the "containers")
        "<name>": {
          "name": "<name>",
          "image": "rancher/k3s:v1.35.5-k3s1",
          "apiPort": "41234",             # host port of the API (k3d.server.api.port label)
          "labels": {"k": "v"},           # --runtime-label values on the server node(s)
          "k3sArgs": ["--disable=traefik@server:*"],
          "running": true
        }
      },
      "objects": {                        # the Kubernetes API of each cluster
        "<cluster>": {"<kind>/<namespace or ''>/<name>": {...object...}}
      },
      "calls": [["k3d", "cluster", "create", ...], ["kubectl", ...]]   # every invocation
    }

Behaviour switches (environment of the fake processes):

    FAKE_STATE_DIR            required: where state.json is
    FAKE_K3D_VERSION          version the fake k3d reports (default v5.9.0)
    FAKE_KUBECTL_VERSION      version the fake kubectl reports (default v1.36.1)
    FAKE_NOT_READY            comma list of "kind/name" (e.g. deployment/envoy-gateway) whose
                              conditions stay False, so waits on them time out
    FAKE_KUBECTL_APPLY_SLEEP  seconds `kubectl apply -f <file>` sleeps before applying (to
                              interrupt an `up` in the middle of a phase)
    FAKE_K3D_CREATE_FAIL      make `k3d cluster create` fail after its preparation steps
    FAKE_KUBECTL_REFUSE       `always`: kubectl finds the API server refusing connections (the
                              cluster still "running" for k3d); SECONDS: only for that long after
                              the first refused call (state key ``refuse_since``)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

K3S_VERSION = "v1.35.5+k3s1"  # kubelet version the fake node reports for rancher/k3s:v1.35.5-k3s1


def state_path(base: str | Path | None = None) -> Path:
    base = base or os.environ.get("FAKE_STATE_DIR")
    if not base:
        sys.stderr.write("fake: FAKE_STATE_DIR is not set\n")
        sys.exit(99)
    return Path(base) / "state.json"


def empty() -> dict[str, Any]:
    return {"clusters": {}, "objects": {}, "calls": []}


def load(base: str | Path | None = None) -> dict[str, Any]:
    path = state_path(base)
    if not path.exists():
        return empty()
    return json.loads(path.read_text() or "{}") or empty()


@contextlib.contextmanager
def locked(base: str | Path | None = None) -> Iterator[dict[str, Any]]:
    """Read-modify-write the state (of ``base``, default $FAKE_STATE_DIR) under an exclusive
    lock."""
    path = state_path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load(base)
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)


def record_call(tool: str, argv: list[str]) -> None:
    with locked() as state:
        state.setdefault("calls", []).append([tool, *argv])


def not_ready() -> set[str]:
    return {s.strip() for s in os.environ.get("FAKE_NOT_READY", "").split(",") if s.strip()}
