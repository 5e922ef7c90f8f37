"""What sign-in costs the tenant, and what a warm session costs per request.

One local tenant, Azurite and a devhost serving the app. A scripted browser (requests, the tenant's own
sign-in pages; tests/integration/test_signin_kit.py) signs the demo member in twice (a fresh process, then
warm), and the tenant's request log says what each sign-in cost: token requests (goal: exactly one, the
code redemption) and OpenID discovery requests (goal: one per process, none for the second sign-in).
Then N ``GET /api/me`` on the warm session: per request exactly one Graph call, zero token requests and zero
discovery requests (the session's cached access token is used; discovery is cached per process), with the
latency median and p95.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import azurite, local_tenant, machine, summary_ms, token_requests, write_result
from tests.integration.test_signin_kit import WebBrowser, register_app_host
from tests.support.apphost import start_app_host
from tests.support.tenant import LocalTenant

SAMPLES = 100
USERS = 50


def _discovery(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in entries
        if e["service"] == "login" and e["method"] == "GET" and "openid-configuration" in str(e["path"])
    ]


def _sign_in_cost(tenant: LocalTenant, browser: WebBrowser, client_id: str) -> dict[str, Any]:
    seq = tenant.last_seq()
    started = time.perf_counter()
    done = browser.sign_in(tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    elapsed = time.perf_counter() - started
    if done.status_code != 303:
        raise RuntimeError(f"sign-in failed: {done.status_code} {done.text[:300]}")
    log = tenant.requests_since(seq)
    return {
        "seconds": round(elapsed, 3),
        "token_requests": len(token_requests(log, client_id)),
        "discovery_requests": len(_discovery(log)),
    }


def main(samples: int = SAMPLES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-signin-") as tmp:
        work = Path(tmp)
        with local_tenant(work / "tenant", USERS) as tenant, azurite(work) as storage:
            host = start_app_host(work / "host", tenant.env, storage.connection_string)
            try:
                register_app_host(tenant, host)
                client_id = tenant.env["ENTRA_CLIENT_ID"]
                first = _sign_in_cost(tenant, WebBrowser(tenant, host), client_id)
                browser = WebBrowser(tenant, host)
                second = _sign_in_cost(tenant, browser, client_id)
                for _ in range(5):  # warm-up
                    browser.get("/api/me").raise_for_status()
                seq = tenant.last_seq()
                times = []
                for _ in range(samples):
                    started = time.perf_counter()
                    response = browser.get("/api/me")
                    times.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"/api/me: {response.status_code} {response.text[:300]}")
                log = tenant.requests_since(seq)
            finally:
                host.stop()
    graph_calls = [e for e in log if e["service"] == "graph"]
    warm = {
        "requests": samples,
        "latency": summary_ms(times),
        "graph_calls_per_request": len(graph_calls) / samples,
        "token_requests": len(token_requests(log)),
        "discovery_requests": len(_discovery(log)),
    }
    result = {
        "machine": machine(),
        "first_sign_in_fresh_process": first,
        "second_sign_in_warm_process": second,
        "warm_api_me": warm,
        "goals": {
            "one_token_request_per_sign_in": first["token_requests"] == 1 and second["token_requests"] == 1,
            "no_discovery_on_a_warm_process": second["discovery_requests"] == 0,
            "warm_me_one_graph_call_no_token_no_discovery": warm["graph_calls_per_request"] == 1
            and warm["token_requests"] == 0
            and warm["discovery_requests"] == 0,
        },
    }
    print(write_result("signin", result))
    return result


if __name__ == "__main__":
    main()
