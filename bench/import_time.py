"""Cold-start import cost of the app: ``python -X importtime -c "import function_app"``.

The Functions worker imports ``function_app`` on every cold start (indexing), so what it imports is paid
by the first request of every new instance. Five runs, each in a fresh interpreter; reports the
cumulative microseconds of ``function_app`` (best and median), the ten heaviest imports (by their own
time, median over the runs, and by cumulative time), and checks that the heavy SDKs the app loads lazily
(msal, azure-core/identity/keyvault, PyJWT, cryptography, requests) are NOT imported.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from typing import Any

from bench.common import ROOT, machine, write_result

RUNS = 5
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


def one_run() -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, depth) for every module imported by ``import function_app``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ENTRA_", "GRAPH_"))}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
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
    runs = [one_run() for _ in range(RUNS)]
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
    return {
        "benchmark": "import_time",
        "command": f'{sys.executable} -X importtime -c "import function_app"',
        "machine": machine(),
        "runs": RUNS,
        "function_app_cumulative_us": {
            "best": min(totals),
            "median": statistics.median(totals),
            "all": totals,
        },
        "modules_imported": len(imported),
        "top10_by_self_us": [{"module": name, "median_self_us": us} for name, us in heaviest_self],
        "top10_by_cumulative_us": [
            {"module": name, "median_cumulative_us": us} for name, us in heaviest_cumulative
        ],
        # azure.functions is the programming model itself (the worker has it loaded anyway); the rest is ours.
        "azure_functions_cumulative_us_median": functions_us,
        "app_share_us_median": statistics.median(totals) - functions_us,
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
        f"function_app: best {result['function_app_cumulative_us']['best']} us, "
        f"median {result['function_app_cumulative_us']['median']} us; "
        f"lazy SDKs not imported: {result['lazy_sdks_not_imported']['ok']}"
    )
