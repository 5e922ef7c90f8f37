"""Cold-start import cost of the app: ``import function_app`` after ``import azure.functions``.

The Functions worker imports ``function_app`` on every cold start (indexing), so what it imports is paid
by the first request of every new instance. The worker has ``azure.functions`` loaded already, so the
figure that is the app's own is the **marginal** import: ``function_app``'s cumulative time in a process
that imported ``azure.functions`` first. Goal: at most 40 ms and at most 0.2x ``import msgraph`` (the
Microsoft Graph SDK, the alternative users compare with), both measured in the same run; the SDK is
installed in its own virtual environment (``.venv-bench``, ``requirements-bench.txt``), never the app's.

Runs interleave the app and the SDK, each in a fresh interpreter; reports best and median, the ten
heaviest imports (by their own time and by cumulative time), and checks that the heavy SDKs the app loads
lazily (msal, azure-core/identity/keyvault, PyJWT, cryptography, requests) are NOT imported.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine, write_result

RUNS = 9
#: The goals of the marginal import.
GOAL_US = 40_000
GOAL_RATIO_TO_MSGRAPH = 0.2
BENCH_VENV = ROOT / ".venv-bench"
#: Imported lazily, on first use (see function_app.py). Any of these at import time is a regression.
MUST_NOT_IMPORT = (
    "msal",
    "azure.core",
    "azure.identity",
    "azure.keyvault",
    "jwt",
    "cryptography",
    "requests",
)
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def bench_python() -> Path:
    """The interpreter of ``.venv-bench`` (with ``msgraph-sdk``), created on first use."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True, timeout=300)
    probe = subprocess.run(
        [str(python), "-c", "import msgraph"], capture_output=True, check=False, timeout=120
    )
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements-bench.txt")],
            check=True,
            timeout=1200,
        )
    return python


def msgraph_us(python: Path) -> int:
    """Cumulative microseconds of ``import msgraph`` in a fresh interpreter."""
    completed = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import msgraph"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    for line in completed.stderr.splitlines():
        match = _LINE.match(line)
        if match and match.group(4) == "msgraph" and not match.group(3).strip(" "):
            return int(match.group(2))
    raise RuntimeError(f"msgraph not in the import log:\n{completed.stderr[-2000:]}")


def instructions(python: Path | str, code: str) -> int | None:
    """Instructions ``python -c code`` executes, counted by callgrind (the same count on every run,
    whatever else the machine does); None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ENTRA_", "GRAPH_"))}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(python), "-c", code],  # noqa: S607 - valgrind from PATH
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    match = re.search(r"refs:\s+([\d,]+)", completed.stderr)
    return int(match.group(1).replace(",", "")) if match else None


def instruction_ratio(python: Path) -> dict[str, Any] | None:
    """The marginal import and ``import msgraph`` in instructions (each against its interpreter's own
    baseline), and their ratio: the machine-independent form of the goal."""
    counts = [
        instructions(sys.executable, "import azure.functions"),
        instructions(sys.executable, "import azure.functions; import function_app"),
        instructions(python, "pass"),
        instructions(python, "import msgraph"),
    ]
    if any(count is None for count in counts):
        return None
    functions, app, bare, graph_sdk = (int(count or 0) for count in counts)
    marginal, sdk = app - functions, graph_sdk - bare
    return {"marginal": marginal, "msgraph": sdk, "ratio": round(marginal / sdk, 3)}


def one_run() -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, depth) for every module imported by ``import function_app`` after
    ``import azure.functions``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ENTRA_", "GRAPH_"))}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import azure.functions; import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = []
    for line in completed.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            depth = len(match.group(3)) // 2
            rows.append((match.group(4), int(match.group(1)), int(match.group(2)), depth))
    if not any(row[0] == "function_app" for row in rows):
        raise RuntimeError(f"function_app not in the import log:\n{completed.stderr[-2000:]}")
    return rows


def main() -> dict[str, Any]:
    python = bench_python()
    runs, graph_sdk = [], []
    for _ in range(RUNS):
        runs.append(one_run())
        graph_sdk.append(msgraph_us(python))
    totals = [next(cum for name, _, cum, _ in rows if name == "function_app") for rows in runs]
    self_us: dict[str, list[int]] = defaultdict(list)
    cumulative_us: dict[str, list[int]] = defaultdict(list)
    for rows in runs:
        for name, own, cum, _ in rows:
            self_us[name].append(own)
            cumulative_us[name].append(cum)
    imported = sorted(self_us)
    heaviest_self = sorted(
        ((name, statistics.median(values)) for name, values in self_us.items()), key=lambda item: -item[1]
    )[:10]
    heaviest_cumulative = sorted(
        (
            (name, statistics.median(values))
            for name, values in cumulative_us.items()
            if name != "function_app"
        ),
        key=lambda item: -item[1],
    )[:10]
    forbidden = sorted(
        name for name in imported for lazy in MUST_NOT_IMPORT if name == lazy or name.startswith(lazy + ".")
    )
    functions_us = statistics.median(cumulative_us["azure.functions"])
    counted = instruction_ratio(python)
    marginal_median = statistics.median(totals)
    msgraph_median = statistics.median(graph_sdk)
    return {
        "benchmark": "import_time",
        "command": f'{sys.executable} -X importtime -c "import azure.functions; import function_app"',
        "machine": machine(),
        "runs": RUNS,
        "function_app_cumulative_us": {
            "best": min(totals),
            "median": statistics.median(totals),
            "all": totals,
        },
        "marginal_us": {"best": min(totals), "median": marginal_median},
        "msgraph_us": {"best": min(graph_sdk), "median": msgraph_median, "all": graph_sdk},
        "ratio_to_msgraph_median": round(marginal_median / msgraph_median, 3),
        "ratio_to_msgraph_best": round(min(totals) / min(graph_sdk), 3),
        # Timings on a shared machine spread widely (the same import from 49 to 91 ms in one run); the
        # instruction counts do not move, so the ratio is also given in instructions.
        "instructions": counted,
        "goals": {
            "marginal_at_most_40ms": marginal_median <= GOAL_US,
            "at_most_0_2x_msgraph": marginal_median / msgraph_median <= GOAL_RATIO_TO_MSGRAPH,
            "at_most_0_2x_msgraph_in_instructions": counted is not None
            and counted["ratio"] <= GOAL_RATIO_TO_MSGRAPH,
        },
        "modules_imported": len(imported),
        "top10_by_self_us": [{"module": name, "median_self_us": us} for name, us in heaviest_self],
        "top10_by_cumulative_us": [
            {"module": name, "median_cumulative_us": us} for name, us in heaviest_cumulative
        ],
        # azure.functions is imported first, as the worker has it loaded: function_app's figure is ours alone.
        "azure_functions_cumulative_us_median": functions_us,
        "azure_modules_imported": {
            "count": sum(1 for name in imported if name.split(".")[0] == "azure"),
            "outside_azure_functions": sorted(
                name
                for name in imported
                if name.startswith("azure.") and not name.startswith("azure.functions")
            ),
        },
        "lazy_sdks_not_imported": {
            "checked": list(MUST_NOT_IMPORT),
            "imported_anyway": forbidden,
            "ok": not forbidden,
        },
    }


if __name__ == "__main__":
    result = main()
    print(write_result("import-time", result))
    print(
        f"function_app after azure.functions: best {result['marginal_us']['best']} us, median "
        f"{result['marginal_us']['median']} us; import msgraph median {result['msgraph_us']['median']} us "
        f"(ratio {result['ratio_to_msgraph_median']}, best to best {result['ratio_to_msgraph_best']}, "
        f"in instructions {result['instructions']}); goals {result['goals']}; "
        f"lazy SDKs not imported: {result['lazy_sdks_not_imported']['ok']}"
    )
