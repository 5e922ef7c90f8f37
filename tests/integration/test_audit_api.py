"""The audit trail of mailbox reads through devhost and Azurite: records newest first, filters, paging, the
role, day partitions, append-only, and the rule that a read whose record cannot be written is refused.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import uuid

import pytest
import requests
from azure.data.tables import TableServiceClient

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import Evidence, FreshHosts
from tests.integration.test_mail_kit import (
    Directory,
    app_graph_token,
    audit_records,
    directory,
    forged_delegated_token,
    graph_get,
)
from tests.support.apphost import Caller
from tests.support.ports import free_port_range
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

#: This module's own audit table, so the records listed here are its own.
AUDIT_TABLE = f"audit{uuid.uuid4().hex[:8]}"
__all__ = ["directory"]  # a fixture, used by name


@pytest.fixture(scope="module")
def host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(
        local_tenant, "audit", overrides={"MAILBOX_SCOPE": "*", "AUDIT_TABLE": AUDIT_TABLE}
    )


def audit(host: DevHostProcess, token: str, **params: str) -> requests.Response:
    return call(host, "/api/audit/mail", token, params)


def test_records_list_newest_first_filter_and_page(
    host: DevHostProcess, caller: Caller, norole_caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    sent = []
    for mailbox in (directory.member_upn, directory.direct_member, directory.member_upn):
        response = call(host, f"/api/users/{mailbox}/messages", token, {"top": "2"})
        assert response.status_code == 200
        sent.append(response.headers["x-request-id"])
    denied = call(host, f"/api/users/{directory.member_upn}/messages", norole_caller.token())
    assert denied.status_code == 403
    sent.append(denied.headers["x-request-id"])

    everything = audit(host, token).json()
    assert [r["requestId"] for r in everything["value"][:4]] == sent[::-1]  # newest first
    times = [r["time"] for r in everything["value"]]
    assert times == sorted(times, reverse=True)
    newest = everything["value"][0]
    assert newest["actor"]["appId"] == norole_caller.client_id and newest["outcome"] == "denied"
    allowed = everything["value"][1]
    assert (allowed["outcome"], allowed["messageCount"], allowed["endpoint"]) == (
        "allowed",
        2,
        "messages.list",
    )
    assert allowed["actor"] == {
        "kind": "application",
        "appId": caller.client_id,
        "objectId": None,
        "userPrincipalName": None,
    }
    assert "subject" not in str(everything).lower()

    member = audit(host, token, mailbox=directory.member_upn.upper()).json()["value"]
    assert {r["mailbox"] for r in member} == {directory.member_upn} and len(member) >= 3
    by_actor_response = audit(host, token, actor=norole_caller.client_id)
    assert by_actor_response.status_code == 200, by_actor_response.text
    by_actor = by_actor_response.json()["value"]
    assert [r["requestId"] for r in by_actor] == [sent[3]]

    first = audit(host, token, top="2").json()
    assert len(first["value"]) == 2 and first["nextCursor"]
    second = audit(host, token, cursor=first["nextCursor"]).json()
    assert [r["requestId"] for r in first["value"] + second["value"][:2]] == sent[::-1]
    assert_error(audit(host, token, cursor=first["nextCursor"], top="3"), 400, "invalid_parameter")
    today = dt.datetime.now(dt.UTC).date()
    past = audit(
        host, token, **{"from": str(today - dt.timedelta(days=3)), "to": str(today - dt.timedelta(days=1))}
    )
    assert past.json() == {"value": [], "nextCursor": None}


def test_the_audit_read_role_is_required(
    host: DevHostProcess, local_tenant: LocalTenant, norole_caller: Caller
) -> None:
    assert_error(audit(host, norole_caller.token()), 403, "forbidden")
    assert audit(host, "").status_code == 401
    delegated = forged_delegated_token(local_tenant, roles=["Audit.Read"])
    assert_error(audit(host, delegated), 403, "caller_kind_not_allowed")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-13-01"},
        {"from": "yesterday"},
        {"from": "2026-12-01T08:00:00"},  # a date-time has its offset (RFC 3339, as declared)
        {"mailbox": ""},  # an empty value (the host would drop it and list every mailbox's reads)
        {"top": "0"},
        {"top": "101"},
        {"mailbox": "not an address"},
        {"actor": "x" * 200},
        {"subject": "x"},
    ],
)
def test_invalid_queries(host: DevHostProcess, caller: Caller, params: dict[str, str]) -> None:
    assert_error(audit(host, caller.token(), **params), 400, "invalid_parameter")


def test_any_declared_range_is_accepted_and_scanned_a_month_per_page(
    host: DevHostProcess, caller: Caller
) -> None:
    """The document cannot relate from and to: an inverted range selects nothing, a wide one is continued
    through nextCursor (a month of day partitions per page at most), the calendar's edges are clamped."""
    token = caller.token()
    inverted = audit(host, token, **{"from": "2026-11-02", "to": "2026-11-01"})
    assert inverted.status_code == 200 and inverted.json() == {"value": [], "nextCursor": None}
    wide = audit(host, token, **{"from": "2001-01-01", "to": "2001-12-31"})
    assert wide.status_code == 200 and wide.json()["value"] == [] and wide.json()["nextCursor"]
    edges = audit(host, token, **{"from": "0001-01-01", "to": "9999-12-31T23:59:59-23:59", "top": "1"})
    assert edges.status_code == 200, edges.text


@pytest.mark.parametrize("cursor", ["x", "eyJ2IjoxfQ", "e30", "!!"])
def test_forged_cursors(host: DevHostProcess, caller: Caller, cursor: str) -> None:
    assert_error(audit(host, caller.token(), cursor=cursor), 400, "invalid_cursor")


def test_rows_are_day_partitioned_and_nothing_updates_them(
    host: DevHostProcess, azurite: Azurite, caller: Caller, directory: Directory
) -> None:
    response = call(host, f"/api/users/{directory.member_upn}/messages", caller.token(), {"top": "1"})
    [record] = audit_records(host, caller, response)
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(AUDIT_TABLE)
    [row] = [e for e in table.list_entities() if e["RequestId"] == record["requestId"]]
    assert row["PartitionKey"] == dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    assert set(row) >= {
        "ActorAppId",
        "Mailbox",
        "Endpoint",
        "MessageCount",
        "Outcome",
        "ErrorCode",
        "RequestId",
    }
    assert not any("subject" in key.lower() or "body" in key.lower() for key in row)
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        refused = requests.request(
            method,
            host.url("/api/audit/mail"),
            headers={"Authorization": f"Bearer {caller.token()}"},
            timeout=30,
        )
        assert refused.status_code in (404, 405), method


def test_a_read_whose_record_cannot_be_written_is_refused(
    fresh_hosts: FreshHosts,
    local_tenant: LocalTenant,
    caller: Caller,
    directory: Directory,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = free_port_range(3)
    storage = Azurite(
        in_memory=True,
        blob_port=base,
        queue_port=base + 1,
        table_port=base + 2,
        log_path=tmp_path_factory.mktemp("audit-azurite") / "azurite.log",
    )
    storage.start()
    try:
        host = fresh_hosts.start(
            local_tenant,
            "audit-outage",
            overrides={"MAILBOX_SCOPE": "*", "AzureWebJobsStorage": storage.connection_string},
        )
        token = caller.token()
        path = f"/api/users/{directory.member_upn}/messages"
        assert call(host, path, token).status_code == 200
        storage.stop()
        # Every caller of the outage at once (each answer waits out the storage SDK's own retries, real
        # back-off): one list read, four concurrent ones, and a message read.
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            first = pool.submit(call, host, path, token)
            others = [pool.submit(call, host, path, token) for _ in range(4)]
            read = pool.submit(call, host, f"/api/users/{directory.member_upn}/messages/{'A' * 20}", token)
            refused, concurrent_answers, denied = first.result(), [f.result() for f in others], read.result()
        assert_error(refused, 503, "audit_unavailable")
        assert int(refused.headers["Retry-After"]) >= 1
        assert "subject" not in refused.text and "bodyPreview" not in refused.text
        for response in concurrent_answers:  # concurrent callers during the outage
            assert_error(response, 503, "audit_unavailable")
        assert_error(denied, 503, "audit_unavailable")  # a failed read is not served unaudited either
        assert "Mail audit write FAILED" in host.log()
        storage.start()  # in-memory: the table is gone, the app creates it again
        recovered = call(host, path, token)
        assert recovered.status_code == 200, recovered.text
        assert [r["outcome"] for r in audit_records(host, caller, recovered)] == ["allowed"]
        assert audit_records(host, caller, refused) == []
    finally:
        storage.stop()


def test_a_read_is_found_by_its_owner_whichever_form_the_caller_typed(
    host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, directory: Directory, evidence: Evidence
) -> None:
    """Issue 17, finding 2: a read by object id is found by an auditor searching by UPN, and the reverse;
    each record names the owner's object id and UPN at read time beside the mailbox as typed."""
    upn = directory.direct_member
    object_id = graph_get(
        local_tenant, app_graph_token(local_tenant, evidence), f"users/{upn}", **{"$select": "id"}
    )["id"].lower()
    token = caller.token()
    sent = []
    for typed in (object_id.upper(), upn.upper()):
        response = call(host, f"/api/users/{typed}/messages", token, {"top": "1"})
        assert response.status_code == 200, response.text
        sent.append(response.headers["x-request-id"])
    for search in (upn, object_id, upn.upper()):
        found = {r["requestId"]: r for r in audit(host, token, mailbox=search).json()["value"]}
        assert set(sent) <= set(found), search
        assert [found[r]["mailbox"] for r in sent] == [object_id, upn]  # as typed (lower-cased)
        assert {(found[r]["mailboxObjectId"], found[r]["mailboxUserPrincipalName"]) for r in sent} == {
            (object_id, upn)
        }
    other = audit(host, token, mailbox=directory.member_upn).json()["value"]
    assert not set(sent) & {r["requestId"] for r in other}
