"""The work unit of a check under ``--dist loadgroup`` (sandbox.pytest_plugin.xdist_groups).

xdist's own LoadGroupScheduling._split_scope (pytest-xdist 3.8, xdist/scheduler/loadgroup.py)
returns the text after the last ``@`` when the worker suffixed the nodeid with its group, else
the whole nodeid: that is the second argument here."""

from __future__ import annotations

from sandbox.pytest_plugin.xdist_groups import scope_of


def test_a_check_without_its_group_suffix_is_grouped_by_its_scenario_file() -> None:
    nodeid = "scenarios/method-matching/scenario.yaml::GET"
    assert scope_of(nodeid, nodeid) == "scenarios/method-matching/scenario.yaml"
    # xdist splits an unsuffixed nodeid at a check name's own "@": the scenario file still wins
    nodeid = "scenarios/x/scenario.yaml::mail to a@b :: with colons"
    assert scope_of(nodeid, "b :: with colons") == "scenarios/x/scenario.yaml"


def test_a_group_xdist_still_sees_is_the_same_unit_and_other_tests_are_xdists() -> None:
    # pytest < 9.2: the worker's suffix is there; one group per scenario file, as before
    nodeid = "scenarios/method-matching/scenario.yaml::GET@method-matching"
    assert scope_of(nodeid, "method-matching") == "scenarios/method-matching/scenario.yaml"
    assert scope_of("tests/test_a.py::test_b", "tests/test_a.py::test_b") == (
        "tests/test_a.py::test_b"
    )
    assert scope_of("tests/test_a.py::test_b@db", "db") == "db"
    assert scope_of("scenarios/x/scenario.yaml", "scenarios/x/scenario.yaml") == (
        "scenarios/x/scenario.yaml"
    )
