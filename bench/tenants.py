"""Several organisations: what serving 100 onboarded organisations costs, against the local tenant (a
multi-tenant registration with 100 customer organisations, consented out of band) and Azurite, in one
process with the app's own services (no HTTP hop: the figures are the app's cost, not devhost's).

* **Cold start of a tenant's first request**: ``users().list_users(top=10)`` in each organisation the first
  time (tenant directory lookup, the tenant's services, its MSAL app's discovery, one token request, the
  Graph call).
* **Memory growth per organisation**: traced Python allocations (and RSS) after the cold pass over all
  organisations, divided by their number.
* **Warm request in any organisation**: the same call, interleaved with the single-tenant app's call for
  its home tenant, same process; token requests to Entra during the warm phase (goal 0) and the ratio of
  medians (goal about 1).
* **Timer fan-out**: one queued run per served tenant (queue messages, time), then every run processed by
  8 workers (as the host's queue listener would) while ONE organisation's token endpoint answers with 10 s
  latency: the others' completion times (since processing began) and their own run times, against a run
  without the fault. The slow organisation holds one worker for its 10 s, nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import azurite, machine, summary_ms, token_requests, write_result
from shared.app.services import Runtime
from shared.tenants import Organisation, fan_out, tenant_of_message
from shared.users.service import parse_list_query
from tests.support.apphost import host_environment, write_app_settings
from tests.support.tenant import LocalTenant, trusted_tenant

ORGANISATIONS = 100
WARM_ROUNDS = 5
WORKERS = 8
OUTAGE_LATENCY_MS = 10_000


def app_env(tenant: LocalTenant, storage: str, work: Path, **overrides: str) -> dict[str, str]:
    path = write_app_settings(work / f"settings-{len(overrides)}.json", tenant.env, storage, overrides)
    values = dict(json.loads(path.read_text())["Values"])
    return {**values, **host_environment(tenant.env)}


def onboard_all(tenant: LocalTenant, runtime: Runtime) -> list[str]:
    """Consent out of band in every organisation and record each as onboarded (what /onboard records)."""
    app_id = tenant.env["ENTRA_CLIENT_ID"]
    orgs = [o for o in tenant.control("GET", "/tenants")["value"] if o["origin"] != "home"]
    registry = runtime.tenant_registry()
    now = dt.datetime.now(dt.UTC)
    ids = []
    for org in orgs[:ORGANISATIONS]:
        tid = str(org["tenantId"])
        tenant.control("PUT", f"/tenants/{tid}/service-principals/{app_id}", {})
        registry.record(
            Organisation(
                tenant_id=tid,
                name=str(org["domain"]),
                onboarded_by=f"admin@{org['domain']}",
                onboarded_by_oid="bench",
                onboarded_at=now,
                permissions=("GroupMember.Read.All", "Mail.Read", "User.Read.All"),
            )
        )
        ids.append(tid)
    return ids


def list_users(runtime: Runtime, tenant_id: str | None) -> float:
    started = time.perf_counter()
    tenant = runtime.tenants().get(tenant_id) if tenant_id is not None else None
    page = runtime.tenant(tenant).users().list_users(parse_list_query({"top": "10"}))
    elapsed = time.perf_counter() - started
    if not page.to_json()["value"]:
        raise RuntimeError(f"no users in {tenant_id}")
    return elapsed


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_requests(tenant: LocalTenant, single: Runtime, multi: Runtime, ids: list[str]) -> dict[str, Any]:
    for _ in range(20):  # warm the single-tenant app
        list_users(single, None)
    list_users(multi, None)  # the multi-tenant app's home tenant and its process services
    tracemalloc.start()
    before_traced, rss_before = tracemalloc.get_traced_memory()[0], rss_mib()
    seq = tenant.last_seq()
    cold = [list_users(multi, tid) for tid in ids]
    cold_log = tenant.requests_since(seq)
    after_traced, rss_after = tracemalloc.get_traced_memory()[0], rss_mib()
    tracemalloc.stop()

    seq = tenant.last_seq()
    warm_multi: list[float] = []
    warm_single: list[float] = []
    for _ in range(WARM_ROUNDS):
        for tid in ids:
            warm_single.append(list_users(single, None))
            warm_multi.append(list_users(multi, tid))
    during = tenant.requests_since(seq)
    m, s = summary_ms(warm_multi), summary_ms(warm_single)
    return {
        "organisations": len(ids),
        "cold_first_request": {
            **summary_ms(cold),
            "token_requests": len(token_requests(cold_log)),
            "discovery_requests": sum(1 for e in cold_log if "openid-configuration" in str(e["path"])),
        },
        "memory_per_organisation": {
            "traced_kib": round((after_traced - before_traced) / 1024 / len(ids), 1),
            "rss_growth_kib": round((rss_after - rss_before) * 1024 / len(ids), 1),
            "note": "tracemalloc of the cold pass over every organisation (services, MSAL app, tokens, "
            "Graph client); RSS is the peak resident set's growth",
        },
        "warm": {
            "samples_each": len(warm_multi),
            "multi_tenant_any_organisation": m,
            "single_tenant_home": s,
            "ratio_median": round(m["median_ms"] / s["median_ms"], 3),
            "ratio_min": round(m["min_ms"] / s["min_ms"], 3),
            "token_requests_during": len(token_requests(during)),
            "vault_requests_during": sum(1 for e in during if e["service"] == "vault"),
            "registry_reads_note": "the tenants table is read at most every 15 s (registry cache)",
        },
    }


def run_reports(runtime: Runtime, date: dt.date) -> dict[str, Any]:
    """Fan out one run per served tenant for ``date`` and process every message with :data:`WORKERS`
    workers; returns the messages queued, the fan-out time and each tenant's completion time."""
    directory = runtime.tenants()
    tenants = list(directory)
    started = time.perf_counter()
    fanned = fan_out(
        tenants,
        lambda t: runtime.tenant(t).reports().request_run(date, force=False, requested_by="timer"),
    )
    fan_out_seconds = time.perf_counter() - started
    queue = runtime.tenant().reports()._queue_client()
    bodies: list[bytes] = []
    while True:
        batch = list(queue.receive_messages(messages_per_page=32, visibility_timeout=300, max_messages=32))
        if not batch:
            break
        for message in batch:
            content = message.content
            bodies.append(content if isinstance(content, bytes) else str(content).encode())
            queue.delete_message(message)
    done: dict[str, float] = {}
    own: dict[str, float] = {}
    outcomes: dict[str, str] = {}

    def process(body: bytes) -> None:
        tid = tenant_of_message(body)
        tenant = directory.get(tid) if tid is not None else None
        at = time.perf_counter()
        try:
            result = runtime.tenant(tenant).reports().run_message(body)
            outcomes[tid or "home"] = result.outcome
        except Exception as error:
            outcomes[tid or "home"] = type(error).__name__
        done[tid or "home"] = time.perf_counter() - began
        own[tid or "home"] = time.perf_counter() - at

    began = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(process, bodies))
    total = time.perf_counter() - began
    return {
        "tenants": len(tenants),
        "queued": len(fanned.queued),
        "queue_messages": len(bodies),
        "fan_out_seconds": round(fan_out_seconds, 3),
        "processing_seconds": round(total, 3),
        "completion": done,
        "own_run": own,
        "outcomes": outcomes,
    }


def measure_fan_out(tenant: LocalTenant, multi: Runtime, ids: list[str]) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date()
    # Every organisation's first report (no previous one: no delta), then two comparable runs (each with
    # a previous report to compute changes from): without and with the slow organisation.
    first = run_reports(multi, today - dt.timedelta(days=3))
    baseline = run_reports(multi, today - dt.timedelta(days=2))
    slow = ids[0]
    # The slow organisation's provider holds a token already: drop it so its run must ask Entra.
    multi.forget_tenant(slow)
    rule = tenant.control(
        "POST",
        "/faults",
        {
            "service": "login",
            "path": f"^/{slow}/oauth2/v2.0/token$",
            "status": 0,
            "latencyMs": OUTAGE_LATENCY_MS,
        },
    )
    try:
        outage = run_reports(multi, today - dt.timedelta(days=1))
    finally:
        tenant.control("DELETE", f"/faults/{rule['id']}")

    def others(run: dict[str, Any], key: str = "completion") -> dict[str, float]:
        return summary_ms([s for t, s in run[key].items() if t != slow])

    hidden = ("completion", "own_run", "outcomes")
    return {
        "workers": WORKERS,
        "first_reports": {k: v for k, v in first.items() if k not in hidden},
        "baseline": {k: v for k, v in baseline.items() if k not in hidden}
        | {
            "others_completion": others(baseline),
            "others_own_run": others(baseline, "own_run"),
            "completed": sum(o == "completed" for o in baseline["outcomes"].values()),
        },
        "one_organisation_slow": {k: v for k, v in outage.items() if k not in hidden}
        | {
            "others_own_run": others(outage, "own_run"),
            "slow_organisation_token_latency_ms": OUTAGE_LATENCY_MS,
            "slow_organisation_completion_s": round(outage["completion"].get(slow, -1.0), 3),
            "slow_organisation_outcome": outage["outcomes"].get(slow),
            "others_completion": others(outage),
            "completed": sum(o == "completed" for o in outage["outcomes"].values()),
        },
    }


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tenants-") as tmp:
        work = Path(tmp)
        (work / "tenant").mkdir()
        with (
            trusted_tenant(
                work / "tenant",
                users=25,
                extra_args=("--sign-in-audience", "AzureADMultipleOrgs", "--tenants", str(ORGANISATIONS)),
                timeout=120,
            ) as tenant,
            azurite(work) as storage,
        ):
            # azure-identity reads the managed identity's endpoint (the vault read) from the environment.
            os.environ.update(host_environment(tenant.env))
            single = Runtime(env=app_env(tenant, storage.connection_string, work))
            multi = Runtime(
                env=app_env(
                    tenant,
                    storage.connection_string,
                    work,
                    ENTRA_TENANCY="multi",
                    REPORT_CONTAINER="benchreports",
                ),
            )
            ids = onboard_all(tenant, multi)
            requests_result = measure_requests(tenant, single, multi, ids)
            fan_out_result = measure_fan_out(tenant, multi, ids)
    return {
        "benchmark": "tenants",
        "machine": machine(),
        "requests": requests_result,
        "fan_out": fan_out_result,
    }


if __name__ == "__main__":
    outcome = main()
    print(write_result("tenants", outcome))
    warm = outcome["requests"]["warm"]
    print(
        f"warm: multi median {warm['multi_tenant_any_organisation']['median_ms']} ms vs single "
        f"{warm['single_tenant_home']['median_ms']} ms (ratio {warm['ratio_median']}), token requests "
        f"{warm['token_requests_during']}; cold first request median "
        f"{outcome['requests']['cold_first_request']['median_ms']} ms; memory per organisation "
        f"{outcome['requests']['memory_per_organisation']}; fan-out {json.dumps(outcome['fan_out'])}"
    )
