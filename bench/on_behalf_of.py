"""What a caller holding a person's token costs, against the session-cookie path, in the same run.

One local tenant, Azurite and a devhost serving the app. The demo member signs in to the pages (a session
cookie) and also holds the single-page client's token for ``api://{app}/access_as_user``
(``LocalTenant.person_token``). After a warm-up, ``GET /api/me`` is called alternately with the cookie and
with the same bearer token, N times each: the tenant's request log says what the bearer path cost per call
(goal: 0 token requests, 1 Graph call) and the latency of both paths is compared.

Then 50 concurrent first calls of one person (the demo admin, whose token the host has never exchanged):
how many on-behalf-of requests reached Entra (goal: 1).
"""

from __future__ import annotations

import concurrent.futures
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import azurite, local_tenant, machine, summary_ms, write_result
from tests.integration.test_signin_kit import WebBrowser, register_app_host
from tests.support.apphost import start_app_host
from tests.support.tenant import LocalTenant

SAMPLES = 100
CONCURRENT = 50
USERS = 50
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _exchanges(log: list[dict[str, Any]]) -> int:
    return sum(1 for entry in log if entry.get("grant_type") == JWT_BEARER)


def _token_requests(log: list[dict[str, Any]]) -> int:
    return sum(
        1
        for e in log
        if e["service"] == "login" and e["method"] == "POST" and str(e["path"]).endswith("/oauth2/v2.0/token")
    )


def _timed(call: Any) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"/api/me: {response.status_code} {response.text[:300]}")
    return elapsed


def _warm_comparison(tenant: LocalTenant, host: Any, samples: int) -> dict[str, Any]:
    browser = WebBrowser(tenant, host)
    done = browser.sign_in(tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    if done.status_code != 303:
        raise RuntimeError(f"sign-in failed: {done.status_code}")
    token = tenant.person_token(capabilities=["CP1"])
    bearer = requests.Session()
    url = host.url("/api/me")

    def with_bearer() -> requests.Response:
        return bearer.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def with_cookie() -> requests.Response:
        return browser.get("/api/me")

    seq = tenant.last_seq()
    first = _timed(with_bearer)  # the exchange
    first_log = tenant.requests_since(seq)
    for _ in range(5):
        _timed(with_bearer)
        _timed(with_cookie)
    cookie_times: list[float] = []
    bearer_times: list[float] = []
    bearer_log: list[dict[str, Any]] = []
    for _ in range(samples):
        cookie_times.append(_timed(with_cookie))
        seq = tenant.last_seq()
        bearer_times.append(_timed(with_bearer))
        bearer_log += tenant.requests_since(seq)
    graph_calls = sum(1 for e in bearer_log if e["service"] == "graph")
    return {
        "first_bearer_call": {
            "seconds": round(first, 3),
            "exchanges": _exchanges(first_log),
            "graph_calls": sum(1 for e in first_log if e["service"] == "graph"),
        },
        "warm_bearer_same_token": {
            "requests": samples,
            "latency": summary_ms(bearer_times),
            "token_requests_per_call": _token_requests(bearer_log) / samples,
            "graph_calls_per_call": graph_calls / samples,
        },
        "warm_session_cookie": {"requests": samples, "latency": summary_ms(cookie_times)},
    }


def _concurrent_first_calls(tenant: LocalTenant, host: Any, callers: int) -> dict[str, Any]:
    token = tenant.person_token(admin=True)
    url = host.url("/api/me")
    gate = threading.Barrier(callers)

    def call(_: int) -> tuple[int, float]:
        session = requests.Session()
        gate.wait()
        started = time.perf_counter()
        response = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        return response.status_code, time.perf_counter() - started

    seq = tenant.last_seq()
    with concurrent.futures.ThreadPoolExecutor(max_workers=callers) as pool:
        outcomes = list(pool.map(call, range(callers)))
    log = tenant.requests_since(seq)
    return {
        "callers": callers,
        "statuses": sorted({status for status, _ in outcomes}),
        "latency": summary_ms([elapsed for _, elapsed in outcomes]),
        "exchanges_sent_to_entra": _exchanges(log),
        "graph_calls": sum(1 for e in log if e["service"] == "graph"),
    }


def main(samples: int = SAMPLES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-obo-") as tmp:
        work = Path(tmp)
        with local_tenant(work / "tenant", USERS) as tenant, azurite(work) as storage:
            host = start_app_host(work / "host", tenant.env, storage.connection_string)
            try:
                register_app_host(tenant, host)
                warm = _warm_comparison(tenant, host, samples)
                burst = _concurrent_first_calls(tenant, host, CONCURRENT)
            finally:
                host.stop()
    bearer, cookie = warm["warm_bearer_same_token"], warm["warm_session_cookie"]
    result = {
        "machine": machine(),
        **warm,
        "bearer_minus_cookie_median_ms": round(
            bearer["latency"]["median_ms"] - cookie["latency"]["median_ms"], 3
        ),
        "concurrent_first_calls_one_person": burst,
        "goals": {
            "warm_bearer_no_token_request_one_graph_call": bearer["token_requests_per_call"] == 0
            and bearer["graph_calls_per_call"] == 1,
            "first_call_one_exchange": warm["first_bearer_call"]["exchanges"] == 1,
            "fifty_first_calls_one_exchange": burst["exchanges_sent_to_entra"] == 1
            and burst["statuses"] == [200],
        },
    }
    print(write_result("on-behalf-of", result))
    return result


if __name__ == "__main__":
    main()
