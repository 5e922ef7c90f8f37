"""Cold-start stampede: 50 concurrent first requests on a brand-new app process.

A fresh local tenant and a fresh devhost (cold app: no credential, no token, no signing keys), with
``PYTHON_THREADPOOL_THREAD_COUNT=64`` so all 50 requests really run at once (the default pool,
min(32, cpus + 4), would queue them and hide races). 50 threads released by one barrier send
``GET /api/users?top=10`` with a caller token. Reported from the tenant's request log: Key Vault secret
reads (authenticated 200 GETs), token requests of the app (``ENTRA_CLIENT_ID``), managed-identity token
requests, signing-key and OpenID metadata fetches. Goal: exactly one vault read and one token request
(single-flight), every response a 200. Repeated on a few fresh tenant+host pairs.
"""

from __future__ import annotations

import collections
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import azurite, local_tenant, machine, summary_ms, token_requests, write_result
from tests.support.apphost import Caller, start_app_host

CONCURRENT = 50
THREADS = 64
ROUNDS = 3
USERS = 250


def stampede(url: str, token: str) -> tuple[list[int], list[float], float]:
    barrier = threading.Barrier(CONCURRENT)
    statuses: list[int] = [0] * CONCURRENT
    latencies: list[float] = [0.0] * CONCURRENT

    def one(index: int) -> None:
        with requests.Session() as session:  # one connection per thread: 50 sockets at once
            barrier.wait()
            started = time.perf_counter()
            try:
                response = session.get(
                    url, params={"top": "10"}, headers={"Authorization": f"Bearer {token}"}, timeout=120
                )
                statuses[index] = response.status_code
            except requests.RequestException:
                statuses[index] = -1
            latencies[index] = time.perf_counter() - started

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return statuses, latencies, time.perf_counter() - wall


def one_round(work: Path, storage: str) -> dict[str, Any]:
    with local_tenant(work / "tenant", USERS) as tenant:
        caller = Caller(tenant)
        token = caller.token()  # before the baseline: the caller's own token request is not the app's
        caller.close()
        seq = tenant.last_seq()
        host = start_app_host(
            work / "host", tenant.env, storage, env={"PYTHON_THREADPOOL_THREAD_COUNT": str(THREADS)}
        )
        try:
            statuses, latencies, wall = stampede(host.url("/api/users"), token)
            log = host.log()
        finally:
            host.stop()
        entries = tenant.requests_since(seq)
    app_id = tenant.env["ENTRA_CLIENT_ID"]
    vault = [entry for entry in entries if entry["service"] == "vault"]
    login_gets = [entry for entry in entries if entry["service"] == "login" and entry["method"] == "GET"]
    threads = re.search(r"sync functions run on (\d+) thread", log)
    counts = {
        "vault_secret_reads": sum(
            1 for e in vault if e["status"] == 200 and str(e["path"]).startswith("/secrets/")
        ),
        "vault_challenges": sum(1 for e in vault if e["status"] == 401),
        "app_token_requests": len(token_requests(entries, app_id)),
        "managed_identity_token_requests": sum(1 for e in entries if e["service"] == "identity"),
        "signing_key_fetches": sum(1 for e in login_gets if str(e["path"]).endswith("/discovery/v2.0/keys")),
        "openid_metadata_fetches": sum(
            1 for e in login_gets if str(e["path"]).endswith("/.well-known/openid-configuration")
        ),
        "graph_requests": sum(1 for e in entries if e["service"] == "graph"),
    }
    return {
        "statuses": dict(collections.Counter(statuses)),
        "all_200": all(status == 200 for status in statuses),
        "latency": summary_ms(latencies),
        "wall_seconds": round(wall, 3),
        "tenant_log": counts,
        "single_flight_ok": counts["vault_secret_reads"] == 1 and counts["app_token_requests"] == 1,
        "devhost_threads_logged": int(threads.group(1)) if threads else None,
    }


def main(rounds: int = ROUNDS) -> dict[str, Any]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-stampede-") as tmp:
        work = Path(tmp)
        with azurite(work) as storage:
            for index in range(rounds):
                results.append(one_round(work / f"round-{index}", storage.connection_string))
    return {
        "benchmark": "stampede",
        "machine": machine(),
        "concurrent_first_requests": CONCURRENT,
        "PYTHON_THREADPOOL_THREAD_COUNT": THREADS,
        "tenant_users": USERS,
        "rounds": results,
        "goal": "every response 200; exactly 1 vault secret read and 1 app token request per cold start",
        "goal_met_every_round": all(r["all_200"] and r["single_flight_ok"] for r in results),
    }


if __name__ == "__main__":
    result = main()
    print(write_result("stampede", result))
    for index, round_result in enumerate(result["rounds"]):
        latency = round_result["latency"]
        print(
            f"round {index}: statuses {round_result['statuses']}, {round_result['tenant_log']}, "
            f"latency median {latency['median_ms']} ms, max {latency['max_ms']} ms"
        )
    print(f"goal met every round: {result['goal_met_every_round']}")
