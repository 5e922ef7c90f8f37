"""Dependencies misbehaving: Graph throttling (injected and its own resource units), Graph unreachable,
Key Vault down at cold start. Faults go through the tenant's control API; each test resets the tenant.

Callers must only ever see complete results or the documented 502/503 envelopes, never a 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call, list_all, wait_for_recovery
from tests.integration.fixtures import FreshHosts
from tests.support.apphost import Caller, advance_app_clock
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

USERS_PATH = "^/v1.0/users$"
TIGHT_BUDGET = {"GRAPH_RETRY_BUDGET_SECONDS": "2", "GRAPH_MAX_RETRIES": "3"}


@pytest.fixture(scope="module")
def tight_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    """A host whose Graph retry budget is 2 s, so throttling outlasts it quickly."""
    return module_hosts.start(local_tenant, "tight-budget", overrides=TIGHT_BUDGET)


def _fault(tenant: LocalTenant, **rule: Any) -> dict[str, Any]:
    return dict(tenant.control("POST", "/faults", rule, expect=201))


def _fired(tenant: LocalTenant) -> dict[int, int]:
    return {rule["id"]: rule["fired"] for rule in tenant.control("GET", "/faults")["value"]}


def test_throttling_storm_still_returns_every_user(
    app_host: DevHostProcess, tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    call(app_host, "/api/users", token, {"top": "1"})  # warm: the storm hits Graph calls, not the token
    seq = tenant.last_seq()
    certain = _fault(tenant, service="graph", path=USERS_PATH, status=429, retryAfter=1, times=2)
    storm = _fault(tenant, service="graph", path=USERS_PATH, status=429, retryAfter=1, rate=0.5, times=3)
    users, pages = list_all(app_host, token, {"top": "100"})
    assert pages == 3 and len(users) == 250
    assert len({user["id"] for user in users}) == 250
    fired = _fired(tenant)
    assert fired[certain["id"]] == 2
    graph = tenant.requests_since(seq, "graph")
    throttled = [entry for entry in graph if entry["status"] == 429]
    assert len(throttled) == fired[certain["id"]] + fired[storm["id"]]
    assert [entry["status"] for entry in graph].count(200) == 3  # one success per page


def test_throttling_longer_than_the_budget_is_a_clean_503(
    tight_host: DevHostProcess, tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    assert call(tight_host, "/api/users", token, {"top": "1"}).status_code == 200  # warm
    seq = tenant.last_seq()
    _fault(tenant, service="graph", path=USERS_PATH, status=429, retryAfter=5)
    response = call(tight_host, "/api/users", token, {"top": "5"})
    assert_error(response, 503, "upstream_throttled")
    assert response.headers["Retry-After"] == "5"  # Graph's own value, passed on
    # Retry-After (5 s) exceeds the budget (2 s): the app gave up at once instead of sleeping.
    assert [entry["status"] for entry in tenant.requests_since(seq, "graph")] == [429]


def test_graph_503_without_retry_after_is_retried_then_a_clean_503(
    tight_host: DevHostProcess, tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    assert call(tight_host, "/api/users", token, {"top": "1"}).status_code == 200
    seq = tenant.last_seq()
    _fault(tenant, service="graph", path=USERS_PATH, status=503)
    response = call(tight_host, "/api/users", token, {"top": "5"})
    assert_error(response, 503, "upstream_throttled")
    assert int(response.headers["Retry-After"]) >= 1
    statuses = [entry["status"] for entry in tenant.requests_since(seq, "graph")]
    assert len(statuses) >= 2 and set(statuses) == {503}  # backed off and retried within the budget


def test_graph_unreachable_is_a_clean_502(
    tight_host: DevHostProcess, tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    assert call(tight_host, "/api/users", token, {"top": "1"}).status_code == 200
    _fault(tenant, service="graph", path=USERS_PATH, drop=True)
    assert_error(call(tight_host, "/api/users", token, {"top": "5"}), 502, "upstream_error")
    tenant.control("DELETE", "/faults")
    assert call(tight_host, "/api/users", token, {"top": "5"}).status_code == 200


def test_graph_resource_unit_throttling_gives_all_users_or_a_clean_503(
    tight_host: DevHostProcess, tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    assert call(tight_host, "/api/users", token, {"top": "1"}).status_code == 200
    # 3 resource units per 10 s: one listing of 3 pages (1 unit each with $select) fits, the next cannot.
    tenant.control("PUT", "/throttle", {"identityUnitsPer10s": 3})
    seq = tenant.last_seq()
    outcomes = []
    for _ in range(3):
        response = call(tight_host, "/api/users", token, {"top": "100"})
        pages = 0
        while response.status_code == 200 and response.json()["nextCursor"]:
            pages += 1
            response = call(tight_host, "/api/users", token, {"cursor": response.json()["nextCursor"]})
        if response.status_code == 200:
            outcomes.append("complete")
            assert pages == 2
        else:
            assert_error(response, 503, "upstream_throttled")
            assert int(response.headers["Retry-After"]) >= 1
            outcomes.append("throttled")
    assert outcomes[0] == "complete"
    assert "throttled" in outcomes  # the budget really was exhausted, and answered cleanly
    graph = tenant.requests_since(seq, "graph")
    assert any(entry["status"] == 429 for entry in graph)
    assert all(entry["status"] in (200, 429) for entry in graph)


@pytest.mark.parametrize(
    "fault",
    [{"status": 503, "retryAfter": 1}, {"drop": True}],
    ids=["vault-503", "vault-connection-dropped"],
)
def test_vault_down_at_cold_start_then_recovers_in_the_same_process(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, fault: dict[str, Any]
) -> None:
    token = caller.token()
    seq = tenant.last_seq()  # earlier tests on the session tenant may have left entries
    _fault(tenant, service="vault", path=".*", **fault)
    host = fresh_hosts.start(tenant, "vault-down", dev_clock=True)
    pid = host.process.pid
    first = call(host, "/api/users", token, {"top": "5"})
    error = assert_error(first, 503, "credential_unavailable")
    # The vault and secret names are for the operator's log, not for (possibly anonymous) callers.
    assert "graph-functions-client-secret" not in error["message"]
    assert error["requestId"] in host.log() and "graph-functions-client-secret" in host.log()
    assert int(first.headers["Retry-After"]) >= 1
    assert tenant.requests_since(seq, "graph") == []  # nothing reached Graph without a credential

    tenant.control("DELETE", "/faults")
    # The app holds a failed credential read for a few seconds (LOAD_FAILURE_HOLD_SECONDS in
    # shared/identity/tokens.py) to spare the vault a stampede, on its clock: move that clock past the
    # hold's remaining time, which a held answer's Retry-After gives (the first answer's may be the vault's
    # own, shorter than the hold), rather than sit through it; then poll until it reads the vault again,
    # answering 503 meanwhile.
    held = call(host, "/api/users", token, {"top": "5"})
    if held.status_code != 200:
        assert_error(held, 503, "credential_unavailable")
        advance_app_clock(host, int(held.headers["Retry-After"]))
    wait_for_recovery(host, token, what="the app to read the vault again")
    assert host.process.poll() is None and host.process.pid == pid  # same process, no restart
    assert host.log().count("Started server process") == 1
    vault = tenant.requests_since(seq, "vault")
    assert vault[-1]["status"] == 200 and vault[-1]["path"].startswith(
        "/secrets/graph-functions-client-secret"
    )
