"""Refresh ``tests/module_durations.json`` (seconds per test module) from a run's JUnit XML.

The suite's scheduler (``tests/support/schedule.py``) starts the slowest modules first so that the parallel
run does not end on one worker finishing a long module while the others idle. After a change that moves a
module's time by a lot, refresh the table::

    .venv/bin/python -m pytest -n 5 --dist loadfile --junitxml=.local/junit.xml
    .venv/bin/python -m scripts.test_durations .local/junit.xml
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

TABLE = Path(__file__).resolve().parents[1] / "tests" / "module_durations.json"


def module_durations(junit_xml: Path) -> dict[str, float]:
    """Seconds per module path (``tests/.../test_x.py``) summed over the module's test cases."""
    totals: dict[str, float] = collections.defaultdict(float)
    for case in ElementTree.parse(junit_xml).iter("testcase"):  # noqa: S314 (our own pytest's output)
        classname = case.get("classname") or ""
        parts = classname.split(".")
        # "tests.unit.test_x" or "tests.unit.test_x.TestClass": the module is the first test_* part.
        for index, part in enumerate(parts):
            if part.startswith("test_"):
                totals["/".join(parts[: index + 1]) + ".py"] += float(case.get("time") or 0.0)
                break
    return {module: round(seconds, 1) for module, seconds in sorted(totals.items())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit_xml", type=Path)
    args = parser.parse_args(argv)
    durations = module_durations(args.junit_xml)
    if not durations:
        print(f"no test cases in {args.junit_xml}", file=sys.stderr)
        return 1
    TABLE.write_text(json.dumps(durations, indent=1, sort_keys=True) + "\n")
    print(f"{len(durations)} modules, {sum(durations.values()):.0f} s in all: {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
