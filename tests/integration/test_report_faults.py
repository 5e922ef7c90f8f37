"""The report under failure: a host killed mid-run (crash and resume), throttling storms with exact row
counts, a storm past the run's budget (failed visibly, retried later), storage unreachable.

The storm tests use their own 5,000-user tenant, so a report spans several $top=999 pages.
"""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devhost.fixtures import wait_until
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import Evidence, FreshHosts, own_caller
from tests.integration.test_report import download, post_run, report_host, run_on_demand, wait_state
from tests.support.apphost import Caller, app_clock
from tests.support.ports import free_port
from tests.support.tenant import LocalTenant, start_tenant

pytestmark = pytest.mark.integration

BIG = 5000
LISTING = "^/v1.0/users$"


@pytest.fixture(scope="module")
def big_tenant(tmp_path_factory: pytest.TempPathFactory, evidence: Evidence) -> Iterator[LocalTenant]:
    tenant = start_tenant(tmp_path_factory.mktemp("report-tenant"), users=BIG)
    for prefix in ("CALLER", "CALLER_NOROLE"):
        evidence.secrets[f"{tenant.port}:{prefix} secret"] = tenant.env[f"{prefix}_CLIENT_SECRET"]
    yield tenant
    tenant.stop()


@pytest.fixture(scope="module")
def big_caller(big_tenant: LocalTenant, evidence: Evidence) -> Iterator[Caller]:
    client = own_caller(big_tenant, evidence)
    yield client
    client.close()


@pytest.fixture
def fresh_big(big_tenant: LocalTenant) -> Iterator[LocalTenant]:
    try:
        yield big_tenant
    finally:
        big_tenant.reset()


def _fault(tenant: LocalTenant, **rule: Any) -> dict[str, Any]:
    return dict(tenant.control("POST", "/faults", rule, expect=201))


def _fired(tenant: LocalTenant, rule: dict[str, Any]) -> int:
    return next(r["fired"] for r in tenant.control("GET", "/faults")["value"] if r["id"] == rule["id"])


def test_throttling_storm_loses_and_repeats_no_row(
    fresh_hosts: FreshHosts, fresh_big: LocalTenant, big_caller: Caller
) -> None:
    # Each throttled page is retried after its Retry-After on the app's clock: skipped sleeps move that
    # clock forward at once, so the storm's 1 s waits cost no real time (the retries happen, counted below).
    host = report_host(fresh_hosts, fresh_big, "report-storm", dev_clock=True)
    app_clock(host, {"skipSleeps": True})
    token = big_caller.token()
    certain = _fault(fresh_big, service="graph", path=LISTING, status=429, retryAfter=1, times=2)
    storm = _fault(fresh_big, service="graph", path=LISTING, status=429, retryAfter=1, rate=0.3, times=6)
    seq = fresh_big.last_seq()
    summary = run_on_demand(host, token, "2026-03-01")
    assert summary["totals"]["users"] == BIG
    throttled = _fired(fresh_big, certain) + _fired(fresh_big, storm)
    assert _fired(fresh_big, certain) == 2
    assert summary["graph"]["throttled"] == throttled and summary["graph"]["retries"] >= throttled
    listing = [e for e in fresh_big.requests_since(seq, "graph") if e["path"] == "/v1.0/users"]
    assert [e["status"] for e in listing].count(429) == throttled
    assert [e["status"] for e in listing].count(200) == 6  # 5,000 users: six pages of 999, each read once
    rows = download(host, token, "2026-03-01", "users.csv")
    assert len(rows) == BIG and len({row["id"] for row in rows}) == BIG
    assert app_clock(host)["offsetSeconds"] >= throttled  # each retry waited its Retry-After (1 s)


def test_throttling_past_the_run_budget_fails_visibly_then_the_next_run_completes(
    fresh_hosts: FreshHosts, fresh_big: LocalTenant, big_caller: Caller
) -> None:
    # Per call 2 s of retries; the run waits at most 10 x 2 = 20 s in all, on the app's clock: its sleeps
    # move that clock forward at once (skipSleeps), so the budget runs out without 20 s of real waiting.
    host = report_host(
        fresh_hosts,
        fresh_big,
        "report-budget",
        dev_clock=True,
        GRAPH_RETRY_BUDGET_SECONDS="2",
        GRAPH_MAX_RETRIES="3",
    )
    app_clock(host, {"skipSleeps": True})
    token = big_caller.token()
    # The first page goes through; every later listing page is throttled.
    _fault(fresh_big, service="graph", path=LISTING, status=429, retryAfter=1)
    status = wait_for(host, token, "2026-03-02")
    assert status["state"] == "failed" and status["errorCode"] == "upstream_throttled"
    assert "run's budget" in status["reason"]
    assert_error(call(host, "/api/reports/users/2026-03-02", token), 404, "report_not_found")
    fresh_big.control("DELETE", "/faults")
    summary = run_on_demand(host, token, "2026-03-02")  # the next trigger completes it
    assert summary["totals"]["users"] == BIG
    assert app_clock(host)["offsetSeconds"] >= 20  # the retries waited (on the app's clock) the budget out


def wait_for(host: Any, token: str, date: str) -> dict[str, Any]:
    response = post_run(host, token, date=date)
    assert response.status_code == 202, response.text
    return wait_state(host, token, date, {"completed", "failed"}, timeout=90)


def test_a_host_killed_mid_run_leaves_no_report_and_the_next_run_completes_it(
    fresh_hosts: FreshHosts, fresh_big: LocalTenant, big_caller: Caller
) -> None:
    container = "repcrash" + str(free_port())
    doomed = report_host(fresh_hosts, fresh_big, "report-doomed", container=container)
    token = big_caller.token()
    # Slow listing pages, so the kill lands mid-run (after some pages were staged).
    _fault(fresh_big, service="graph", path=LISTING, status=0, latencyMs=1500)
    response = post_run(doomed, token, date="2026-03-03")
    assert response.status_code == 202

    def some_pages() -> bool:
        status = call(doomed, "/api/reports/users/2026-03-03/status", token).json()
        return status.get("state") == "running" and status.get("pages", 0) >= 2

    wait_until(some_pages, timeout=60, what="a run half-way")
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    fresh_big.control("DELETE", "/faults")
    survivor = report_host(fresh_hosts, fresh_big, "report-survivor", container=container)
    assert_error(call(survivor, "/api/reports/users/2026-03-03", token), 404, "report_not_found")
    # Until the dead run's lease lapses (15 s) the status says running, then interrupted.
    wait_state(survivor, token, "2026-03-03", {"interrupted"}, timeout=30)
    assert post_run(survivor, token, date="2026-03-03").status_code == 202
    status = wait_state(survivor, token, "2026-03-03", {"completed"}, timeout=90)
    assert status["users"] == BIG
    rows = download(survivor, token, "2026-03-03", "users.csv")
    assert len(rows) == BIG and len({row["id"] for row in rows}) == BIG


def test_storage_unreachable_is_a_clean_503(
    fresh_hosts: FreshHosts, fresh_big: LocalTenant, big_caller: Caller, tmp_path: Path
) -> None:
    dead = free_port()
    account = "devstoreaccount1"
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    storage = (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{dead}/{account};QueueEndpoint=http://127.0.0.1:{dead}/{account};"
        f"TableEndpoint=http://127.0.0.1:{dead}/{account};"
    )
    host = report_host(fresh_hosts, fresh_big, "report-nostorage", AzureWebJobsStorage=storage)
    token = big_caller.token()
    # The three callers at once: each answer waits out the storage SDK's own retries (about 8 s of real
    # back-off, not on the app's clock), and concurrent callers during the outage are a case of their own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        answers = [
            pool.submit(call, host, "/api/reports/users/latest", token),
            pool.submit(call, host, "/api/reports/users/2026-03-04", token),
            pool.submit(post_run, host, token, date="2026-03-04"),
        ]
        responses = [answer.result() for answer in answers]
    for response in responses:
        error = assert_error(response, 503, "storage_unavailable")
        assert response.headers["Retry-After"] and key not in error["message"]
    # devhost's timer monitor and queue listener give up on the dead account within SIGTERM's grace period.
    host.stop()
