"""The daily user report at 1,000 and 100,000 users: wall time against the floor, peak RSS, exact rows
under 429s, and the memory cost of serving the 100,000-user CSV (303 to a SAS URL vs through the worker).

* One Azurite; one local tenant per size (``--users N``).
* **Report**: a child process builds the app's runtime (real msal, Key Vault, Graph client, azure-storage)
  and runs one report; it records its RSS just before the run and its peak RSS (``VmHWM``) after.
  Goal: growth <= 30 MB from 1,000 to 100,000 users, peak <= 150 MB.
* **Floor**: in the same run, the same pages (``$top=999``, the report's ``$select``) fetched one after
  the other with bare ``requests`` and an app token, each decoded with ``response.json()`` (as the app must)
  and nothing else. No listing can beat it: each next link is in the page before. The report adds what it
  cannot avoid: the refused ``signInActivity`` ``$select`` (one 403 without a licence), its blob writes.
* **Measurement**: ``ROUNDS`` rounds of (floor, report in a fresh child and a fresh container), then one
  more floor, interleaved so that load from other processes on the machine hits both alike. The figures are
  medians; ``ratio_to_floor`` = median report / median floor (goal <= 1.2); every sample is kept, with the
  CPU seconds of the report's process and of the floor's (where the time goes).
* **Throttled**: 10 % of listing pages answered 429 (``Retry-After: 1``) through the fault API; the CSV is
  downloaded and its rows counted (goal: exactly the tenant's users, no id twice).
* **Serving**: a child signs the SAS URL of users.csv (what the API does), another reads the blob into
  memory and builds the ``HttpResponse`` a proxying endpoint would return; both report peak RSS growth.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import ROOT, azurite, local_tenant, machine, write_result
from bench.warm_users import graph_token_with_app_certificate
from scripts.run_local import APP_KEYS
from tests.support.tenant import LocalTenant

SIZES = (1000, 100_000)
#: Interleaved (floor, report) rounds per size; the figures are their medians.
ROUNDS = 5
SELECT = "id,userPrincipalName,displayName,mail,department,jobTitle,accountEnabled,userType,createdDateTime"


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would report its parent's
    # peak; the high-water mark belongs to this process's own address space.
    return _status_mib("VmHWM")


def child(mode: str, env_file: Path, date: str) -> dict[str, Any]:
    """Run in a fresh interpreter: one report, or one way of serving users.csv."""
    env = json.loads(env_file.read_text())
    os.environ.update(
        {k: env[k] for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    )
    from shared.app.services import Runtime
    from shared.report import layout
    from shared.report.run import RunRequest

    runtime = Runtime(env=env)
    service = runtime.tenant().reports()
    runtime.tenant().tokens().get_token(
        runtime.settings().graph_scope
    )  # warm: credential and token outside the figure
    service.store.ensure_container()
    before = _rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    if mode == "report":
        result = service.run(RunRequest(date=dt.date.fromisoformat(date), trigger="on-demand"))
        assert result.outcome == "completed", result.status
        extra: dict[str, Any] = {"summary": result.summary}
    elif mode == "serve-sas":
        url = service.csv_url(dt.date.fromisoformat(date), "users.csv")
        extra = {"url_length": len(url)}
    else:
        import azure.functions as func

        day = dt.date.fromisoformat(date)
        body = (
            service.store.blob(layout.report_blob(day, service.summary(day), "users.csv"))
            .download_blob()
            .readall()
        )
        response = func.HttpResponse(body, mimetype="text/csv")
        extra = {"bytes": len(response.get_body())}
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "mode": mode,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
        "growth_mib": round(_peak_mib() - before, 1),
        **extra,
    }


def _spawn(mode: str, env_file: Path, date: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.report", "--child", mode, "--env-file", str(env_file), "--date", date],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"bench child {mode} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
        )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def floor_seconds(tenant: LocalTenant) -> tuple[float, float, int, int]:
    """The same listing with bare requests: (seconds, CPU seconds of this process, pages, users)."""
    token = graph_token_with_app_certificate(tenant)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    started, cpu_started = time.perf_counter(), time.process_time()
    url: str | None = f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users"
    params: dict[str, str] | None = {"$top": "999", "$select": SELECT}
    pages = users = 0
    while url:
        response = session.get(url, params=params, timeout=60)
        response.raise_for_status()
        body = response.json()
        pages += 1
        users += len(body["value"])
        url, params = body.get("@odata.nextLink"), None
    return time.perf_counter() - started, time.process_time() - cpu_started, pages, users


def csv_rows(env: dict[str, str], date: str) -> tuple[int, int]:
    from azure.storage.blob import BlobServiceClient

    from shared.report import layout

    service = BlobServiceClient.from_connection_string(env["AzureWebJobsStorage"])
    container = service.get_container_client(env["REPORT_CONTAINER"])
    day = dt.date.fromisoformat(date)
    summary = json.loads(container.download_blob(layout.blob(day, "summary.json")).readall())
    # The report's files are under its run's prefix (the summary's blobPrefix).
    data = container.download_blob(layout.report_blob(day, summary, "users.csv")).readall()
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8").removeprefix("\ufeff"))))
    return len(rows), len({row["id"] for row in rows})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--env-file", type=Path)
    parser.add_argument("--date", default="2026-01-01")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.env_file, args.date)))
        return 0
    results: dict[str, Any] = {"machine": machine(), "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp, azurite(Path(tmp)) as storage:
        for users in SIZES:
            with local_tenant(Path(tmp) / f"tenant-{users}", users) as tenant:
                env = {k: tenant.env[k] for k in APP_KEYS if k in tenant.env}
                env.update(
                    ENTRA_CREDENTIAL="keyvault",
                    AzureWebJobsStorage=storage.connection_string,
                    REPORT_CONTAINER=f"bench{users}",
                )
                env_file = Path(tmp) / f"env-{users}.json"
                env_file.write_text(json.dumps(env))
                floors: list[tuple[float, float, int, int]] = []
                reports: list[dict[str, Any]] = []
                for round_ in range(ROUNDS):
                    floors.append(floor_seconds(tenant))
                    round_env = Path(tmp) / f"env-{users}-{round_}.json"
                    round_env.write_text(json.dumps({**env, "REPORT_CONTAINER": f"bench{users}r{round_}"}))
                    reports.append(_spawn("report", env_file if round_ == 0 else round_env, "2026-01-01"))
                floors.append(floor_seconds(tenant))
                pages, listed = floors[0][2], floors[0][3]
                floor = statistics.median(sample[0] for sample in floors)
                report = dict(reports[0])
                report["seconds"] = statistics.median(sample["seconds"] for sample in reports)
                report["peak_rss_mib"] = max(sample["peak_rss_mib"] for sample in reports)
                report["growth_mib"] = max(sample["growth_mib"] for sample in reports)
                entry: dict[str, Any] = {
                    "users": users,
                    "rounds": ROUNDS,
                    "floor_seconds": round(floor, 3),
                    "floor_pages": pages,
                    "report_seconds": round(report["seconds"], 3),
                    "ratio_to_floor": round(report["seconds"] / floor, 3),
                    "goal_ratio_at_most_1_2": report["seconds"] <= 1.2 * floor,
                    "samples": {
                        "floor_seconds": [round(sample[0], 3) for sample in floors],
                        "report_seconds": [sample["seconds"] for sample in reports],
                        "floor_cpu_seconds": [round(sample[1], 3) for sample in floors],
                        "report_cpu_seconds": [sample["cpu_seconds"] for sample in reports],
                    },
                    "rss_before_mib": report["rss_before_mib"],
                    "peak_rss_mib": report["peak_rss_mib"],
                    "growth_mib": report["growth_mib"],
                    "rows": report["summary"]["files"]["users.csv"]["rows"],
                    "graph": report["summary"]["graph"],
                }
                assert listed == users == entry["rows"], (listed, users, entry["rows"])
                assert all(r["summary"]["files"]["users.csv"]["rows"] == users for r in reports)
                if users == SIZES[-1]:
                    tenant.control(
                        "POST",
                        "/faults",
                        {
                            "service": "graph",
                            "path": "^/v1.0/users$",
                            "status": 429,
                            "retryAfter": 1,
                            "rate": 0.1,
                        },
                    )
                    throttled = _spawn("report", env_file, "2026-01-02")
                    tenant.control("DELETE", "/faults")
                    rows, unique = csv_rows(env, "2026-01-02")
                    entry["throttled_10pct"] = {
                        "seconds": throttled["seconds"],
                        "graph": throttled["summary"]["graph"],
                        "rows": rows,
                        "unique_ids": unique,
                        "exact": rows == unique == users,
                    }
                    entry["serving_users_csv"] = {
                        "csv_bytes": report["summary"]["files"]["users.csv"]["bytes"],
                        "sas_redirect": _spawn("serve-sas", env_file, "2026-01-01"),
                        "through_worker": _spawn("serve-proxy", env_file, "2026-01-01"),
                    }
                results["sizes"][str(users)] = entry
                print(json.dumps(entry)[:400], flush=True)
    small, large = results["sizes"][str(SIZES[0])], results["sizes"][str(SIZES[-1])]
    results["peak_rss_growth_1k_to_100k_mib"] = round(large["peak_rss_mib"] - small["peak_rss_mib"], 1)
    results["goal_growth_at_most_30_mib"] = results["peak_rss_growth_1k_to_100k_mib"] <= 30
    results["goal_peak_at_most_150_mib"] = large["peak_rss_mib"] <= 150
    print(write_result("report", results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
