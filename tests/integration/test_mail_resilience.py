"""Mailbox reads when their dependencies misbehave, through devhost, the local tenant's fault API and
budgets: MailboxConcurrency storms, throttling past the retry budget, Graph 5xx and dropped connections, the
membership check's outage, an attempt past the timeout. Callers get exact pages or the documented 502/503
envelopes (never a 500), each attempt recorded; every test resets the tenant (``tenant`` fixture).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.checks import assert_error
from tests.integration.fixtures import FreshHosts
from tests.integration.test_mail_kit import Directory, audit_records, directory, messages
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration
__all__ = ["directory"]  # a fixture, used by name


@pytest.fixture(scope="module")
def open_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(local_tenant, "mail-open-resilience", overrides={"MAILBOX_SCOPE": "*"})


@pytest.fixture(scope="module")
def scoped_host(module_hosts: FreshHosts, local_tenant: LocalTenant, directory: Directory) -> DevHostProcess:
    """A host reading the readers group's mailboxes, checking the scope on every read (no cache): the
    membership check's and the owner lookup's outages (each test's faults end with its tenant reset)."""
    return module_hosts.start(
        local_tenant,
        "mail-scope-outage",
        overrides={"MAILBOX_SCOPE": directory.readers, "MAILBOX_SCOPE_CACHE_SECONDS": "0"},
    )


# -- throttling ----------------------------------------------------------------------------------------------


def test_mailbox_concurrency_storm_gets_exact_pages_or_a_clean_503(
    open_host: DevHostProcess, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    expected = messages(open_host, token, directory.member_upn, top="5").json()["value"]
    tenant.control("PUT", "/throttle", {"mailConcurrency": 1})
    tenant.control("PUT", "/graph/settings", {"mailLatencyMs": 150})
    seq = tenant.last_seq()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda _: messages(open_host, token, directory.member_upn, top="5"), range(6))
        )
    throttled = [e for e in tenant.requests_since(seq, "graph") if e["status"] == 429]
    assert throttled, "the storm did not trip MailboxConcurrency"
    for response in answers:
        if response.status_code == 200:
            assert [i["id"] for i in response.json()["value"]] == [i["id"] for i in expected]
        else:
            assert_error(response, 503, "upstream_throttled")
            assert int(response.headers["Retry-After"]) >= 1
    assert sum(r.status_code == 200 for r in answers) >= 1


def test_throttling_past_the_budget_is_a_503_with_retry_after_then_recovers(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    host = fresh_hosts.start(
        tenant,
        "mail-tight",
        overrides={"MAILBOX_SCOPE": "*", "GRAPH_RETRY_BUDGET_SECONDS": "2", "GRAPH_MAX_RETRIES": "2"},
    )
    token = caller.token()
    rule: dict[str, Any] = tenant.control(
        "POST",
        "/faults",
        {"service": "graph", "path": "/messages$", "status": 429, "retryAfter": 5, "times": 3},
        expect=201,
    )
    response = messages(host, token, directory.member_upn)
    assert_error(response, 503, "upstream_throttled")
    assert response.headers["Retry-After"] == "5"
    [record] = audit_records(host, caller, response)
    assert (record["outcome"], record["errorCode"]) == ("failed", "upstream_throttled")
    tenant.control("DELETE", f"/faults/{rule['id']}")
    assert messages(host, token, directory.member_upn).status_code == 200


def test_graph_unreachable_and_5xx_are_clean_errors(
    open_host: DevHostProcess, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    tenant.control(
        "POST", "/faults", {"service": "graph", "path": "/messages$", "status": 500, "times": 1}, expect=201
    )
    assert_error(messages(open_host, token, directory.member_upn), 502, "upstream_error")
    tenant.control(
        "POST", "/faults", {"service": "graph", "path": "/messages$", "drop": True, "times": 1}, expect=201
    )
    seq = tenant.last_seq()
    assert messages(open_host, token, directory.member_upn).status_code == 200  # one dropped GET is retried
    assert retried(tenant, seq, "/messages") == [200]  # the tenant dropped one, then answered the retry


def retried(tenant: LocalTenant, since: int, path_end: str) -> list[int]:
    """The statuses of the Graph requests to ``path_end`` since ``since``, after checking that the first
    of them was failed by a fault rule (so a 200 here means the app really retried)."""
    entries = [e for e in tenant.requests_since(since, "graph") if e["path"].endswith(path_end)]
    assert entries and entries[0]["fault"] is not None, entries
    return [int(e["status"]) for e in entries[1:]]


def test_membership_check_outage_is_retried_or_a_clean_error_then_recovers(
    scoped_host: DevHostProcess, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    host = scoped_host
    token = caller.token()
    path = "/checkMemberGroups$"
    tenant.control(
        "POST", "/faults", {"service": "graph", "path": path, "status": 429, "retryAfter": 1, "times": 1}
    )
    seq = tenant.last_seq()
    assert messages(host, token, directory.direct_member).status_code == 200  # one 429 is retried
    assert retried(tenant, seq, "/checkMemberGroups") == [200]
    rule = tenant.control("POST", "/faults", {"service": "graph", "path": path, "status": 500}, expect=201)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: messages(host, token, directory.direct_member), range(4)))
    for response in answers:
        assert_error(response, 502, "upstream_error")
        [record] = audit_records(host, caller, response)
        assert (record["outcome"], record["errorCode"]) == ("failed", "upstream_error")
    tenant.control("DELETE", f"/faults/{rule['id']}")
    assert messages(host, token, directory.direct_member).status_code == 200


def test_owner_lookup_outage_is_retried_or_a_clean_error_then_recovers(
    scoped_host: DevHostProcess, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    """The scope check's first call, the mailbox owner's lookup (``GET /users/{id}``, for the audit's object
    id and UPN): a 429 and a dropped connection are retried; a 5xx for four concurrent readers is a clean,
    recorded 502 each; then reads recover."""
    host = scoped_host
    token = caller.token()
    path = "/v1.0/users/[^/]+$"
    for fault in ({"status": 429, "retryAfter": 1}, {"drop": True}):
        tenant.control("POST", "/faults", {"service": "graph", "path": path, "times": 1, **fault})
        seq = tenant.last_seq()
        assert messages(host, token, directory.direct_member).status_code == 200, fault
        lookups = [e for e in tenant.requests_since(seq, "graph") if e["path"].count("/") == 3]
        assert lookups and lookups[0]["fault"] is not None and int(lookups[-1]["status"]) == 200, lookups
    rule = tenant.control("POST", "/faults", {"service": "graph", "path": path, "status": 500}, expect=201)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: messages(host, token, directory.direct_member), range(4)))
    for response in answers:
        assert_error(response, 502, "upstream_error")
        [record] = audit_records(host, caller, response)
        assert (record["outcome"], record["errorCode"]) == ("failed", "upstream_error")
    tenant.control("DELETE", f"/faults/{rule['id']}")
    assert messages(host, token, directory.direct_member).status_code == 200


def test_a_slow_graph_attempt_is_abandoned_and_retried(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    host = fresh_hosts.start(
        tenant, "mail-slow", overrides={"MAILBOX_SCOPE": "*", "GRAPH_TIMEOUT_SECONDS": "1"}
    )
    token = caller.token()
    assert messages(host, token, directory.member_upn).status_code == 200  # warm: token and keys
    tenant.control(
        "POST",
        "/faults",
        {"service": "graph", "path": "/messages$", "latencyMs": 3000, "times": 1},
        expect=201,
    )
    seq = tenant.last_seq()
    response = messages(host, token, directory.member_upn)
    assert response.status_code == 200, response.text
    # The abandoned attempt is logged when the tenant finishes it (after its 3 s), so wait for it.
    wait_until(
        lambda: len([e for e in tenant.requests_since(seq, "graph") if e["path"].endswith("/messages")]) == 2,
        timeout=10,
        what="both attempts in the tenant's log",
    )
