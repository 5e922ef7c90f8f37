"""The suite's module order (tests/support/schedule.py) and its table (scripts/test_durations.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from scripts.test_durations import module_durations
from tests import conftest
from tests.support.schedule import TABLE, ModuleWeights, load_durations, module_of


def test_recorded_modules_weigh_their_seconds_and_new_ones_their_directory_median() -> None:
    weights = ModuleWeights(
        {
            "tests/unit/test_a.py": 1.0,
            "tests/unit/test_b.py": 3.0,
            "tests/unit/test_c.py": 2.0,
            "tests/integration/test_x.py": 40.0,
            "tests/integration/test_y.py": 60.0,
        }
    )
    assert weights("tests/unit/test_b.py") == 3.0
    assert weights("tests/unit/test_new.py") == 2.0
    assert weights("tests/integration/test_new.py") == 50.0
    assert weights("tests/elsewhere/test_new.py") == 3.0  # the median of every module
    assert ModuleWeights({})("tests/unit/test_a.py") == 0.0


def test_module_of_a_node_id() -> None:
    assert module_of("tests/unit/test_a.py::test_b[x::y]") == "tests/unit/test_a.py"
    assert module_of("tests/unit/test_a.py") == "tests/unit/test_a.py"


def test_a_missing_or_broken_table_is_an_empty_one(tmp_path: Path) -> None:
    assert load_durations(tmp_path / "missing.json") == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert load_durations(tmp_path / "broken.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert load_durations(tmp_path / "list.json") == {}


def test_the_committed_table_names_existing_modules() -> None:
    table = load_durations(TABLE)
    assert len(table) > 100
    root = TABLE.parents[1]
    assert [module for module in table if not (root / module).is_file()] == []


def test_durations_are_summed_per_module_from_junit(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.unit.test_a" name="test_1" time="1.25"/>'
        '<testcase classname="tests.unit.test_a" name="test_2" time="0.5"/>'
        '<testcase classname="tests.integration.test_b.TestGroup" name="test_3" time="7"/>'
        "</testsuite></testsuites>"
    )
    assert module_durations(junit) == {"tests/integration/test_b.py": 7.0, "tests/unit/test_a.py": 1.8}
    assert json.loads(json.dumps(module_durations(junit)))  # what the script writes is plain JSON


def test_the_collection_starts_with_the_slowest_module_and_ends_with_the_log_scan() -> None:
    table = load_durations(TABLE)
    slow, fast = max(table, key=table.__getitem__), min(table, key=table.__getitem__)
    scan = "tests/integration/test_log_scan.py"
    items = [
        SimpleNamespace(nodeid=f"{scan}::test_logs"),
        SimpleNamespace(nodeid=f"{fast}::test_1"),
        SimpleNamespace(nodeid=f"{slow}::test_2"),
        SimpleNamespace(nodeid=f"{fast}::test_0"),
        SimpleNamespace(nodeid=f"{slow}::test_1"),
    ]
    conftest.pytest_collection_modifyitems(cast(pytest.Config, None), cast(list[pytest.Item], items))
    assert [item.nodeid for item in items] == [
        f"{slow}::test_2",
        f"{slow}::test_1",
        f"{fast}::test_1",
        f"{fast}::test_0",
        f"{scan}::test_logs",
    ]
