"""The order the suite's modules start in: the slowest first.

``make test`` runs pytest-xdist with ``--dist loadfile``: each module goes whole to the next free worker, in
collection order. xdist's default order (most tests first) sends the many fast unit modules first and leaves
the few slow integration modules for the end, so the run ended on one or two workers finishing long modules
while the others idled. Starting the longest modules first (longest-processing-time scheduling) lets the
short ones fill the gaps at the end.

A module's weight is its recorded seconds in ``tests/module_durations.json`` (refreshed by
``scripts/test_durations.py``); a module not recorded yet weighs its directory's median, so a new
integration module is not mistaken for a unit one. Order inside a module never changes.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "module_durations.json"


def load_durations(path: Path = TABLE) -> dict[str, float]:
    """The recorded seconds per module path, or an empty table when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


class ModuleWeights:
    """Seconds per module path (``tests/<dir>/test_x.py``), with per-directory medians for new modules."""

    def __init__(self, durations: Mapping[str, float]) -> None:
        self._durations = dict(durations)
        by_directory: dict[str, list[float]] = {}
        for module, seconds in durations.items():
            by_directory.setdefault(module.rsplit("/", 1)[0], []).append(seconds)
        self._medians = {directory: statistics.median(values) for directory, values in by_directory.items()}
        self._default = statistics.median(durations.values()) if durations else 0.0

    def __call__(self, module: str) -> float:
        if module in self._durations:
            return self._durations[module]
        return self._medians.get(module.rsplit("/", 1)[0], self._default)


def module_of(nodeid: str) -> str:
    """``tests/x/test_y.py`` of ``tests/x/test_y.py::test_z[param]``."""
    return nodeid.split("::", 1)[0]
