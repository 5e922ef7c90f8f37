"""Start-up time and memory of the local tenant with 25 and 100,000 users.

Time is measured from process start to the env file appearing (the tenant writes it once listening),
memory as the resident set size right after. "cold" uses a new state dir (TLS material, signing keys
and the app certificate are generated); "warm" reuses it, as every start after the first does.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.tenant import start_tenant  # noqa: E402


def measure(users: int, runs: int = 3) -> dict[str, object]:
    results: dict[str, object] = {"users": users}
    with tempfile.TemporaryDirectory() as tmp:
        samples = []
        for i in range(runs):
            tenant = start_tenant(Path(tmp), users=users, timeout=120)
            rss = psutil.Process(tenant.process.pid).memory_info().rss
            samples.append(
                {
                    "seconds": round(tenant.startup_seconds, 3),
                    "rss_mib": round(rss / 2**20, 1),
                    "state": "cold" if i == 0 else "warm",
                }
            )
            assert tenant.stop() == 0
        results["runs"] = samples
        warm = [s for s in samples if s["state"] == "warm"]
        results["warm_seconds_best"] = min(float(s["seconds"]) for s in warm)  # type: ignore[arg-type]
        results["warm_rss_mib"] = max(float(s["rss_mib"]) for s in warm)  # type: ignore[arg-type]
    return results


def main() -> dict[str, object]:
    out = {"benchmark": "emulator_startup", "results": [measure(25), measure(100_000, runs=2)]}
    return out


if __name__ == "__main__":
    result = main()
    target = ROOT / "bench" / "results" / "emulator-startup.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
