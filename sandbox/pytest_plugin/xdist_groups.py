"""A scenario's checks stay on one pytest-xdist worker under ``--dist loadgroup``.

A scenario is deployed once for all its checks (``ScenarioFile.setup``) and removed after the
last one that runs in a row on the same worker. Every check carries ``xdist_group(name=<the
scenario>)``, and pytest-xdist 3.8 groups by it by appending ``@<group>`` to each item's
``_nodeid`` in the worker (xdist/remote.py ``pytest_collection_modifyitems``), which the
controller's ``LoadGroupScheduling._split_scope`` parses back. pytest 9.2 computes ``nodeid``
from the structured ``Node._id`` (_pytest/nodes.py), so that assignment no longer changes it:
loadgroup then takes each check for a group of its own and spreads a scenario's checks over the
workers (pytest-dev/pytest-xdist#1386, open; a fix proposed in #1388), and each worker deployed
the scenario again: the library at ``-n 3`` made about three deployments per scenario and took
longer than at ``-n 1``.

So for ``--dist loadgroup`` the plugin gives xdist a scheduler whose work unit of a scenario
check is its ``scenario.yaml`` (as ``--dist loadfile`` would group it, and as its group does
where xdist still sees groups); every other test is scheduled as xdist's own loadgroup
schedules it.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from sandbox.pytest_plugin.state import SCENARIO_FILE


def scope_of(nodeid: str, xdist_scope: str) -> str:
    """The work unit of ``nodeid``, given the scope xdist's loadgroup chose for it: a scenario
    check's is its scenario file (the same unit as its group, where xdist still sees groups; and
    a check named with an ``@`` is not split at it), any other test's is xdist's."""
    path, sep, _ = nodeid.partition("::")
    if sep and PurePosixPath(path).name == SCENARIO_FILE:
        return path
    return xdist_scope


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The scheduler for ``--dist loadgroup`` (None for any other mode: xdist's own)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]  # no py.typed

    class ScenarioGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]  # xdist: no py.typed
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid, str(super()._split_scope(nodeid)))

    return ScenarioGroupScheduling(config, log)
