"""Mailbox reads through devhost, the local tenant and Azurite: roles, the scope matrix, every documented
error, cursors, path injection, and one audit record per attempt (failures of Graph: test_mail_resilience).

Hosts (module scope): ``group_host`` reads the mailboxes of Report Readers' members (transitively);
``open_host`` every mailbox (``*``); the session host has no MAILBOX_SCOPE (default deny). Tests that change
the tenant (faults, budgets, mailbox policies) use the ``tenant`` fixture, which resets it afterwards.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import FreshHosts
from tests.integration.test_mail_kit import (
    Directory,
    audit_records,
    directory,
    forged_delegated_token,
    messages,
)
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration
__all__ = ["directory"]  # a fixture, used by name

LIST_FIELDS = {
    "id",
    "subject",
    "from",
    "toRecipients",
    "receivedDateTime",
    "bodyPreview",
    "isRead",
    "hasAttachments",
    "importance",
    "webLink",
}


@pytest.fixture(scope="module")
def group_host(module_hosts: FreshHosts, local_tenant: LocalTenant, directory: Directory) -> DevHostProcess:
    return module_hosts.start(local_tenant, "mail-group", overrides={"MAILBOX_SCOPE": directory.readers})


@pytest.fixture(scope="module")
def open_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(local_tenant, "mail-open", overrides={"MAILBOX_SCOPE": "*"})


# -- who may read ----------------------------------------------------------------------------------------


def test_a_service_with_the_role_reads_the_newest_messages_first(
    open_host: DevHostProcess, caller: Caller, directory: Directory
) -> None:
    response = messages(open_host, caller.token(), directory.member_upn)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"value", "nextCursor"} and isinstance(body["nextCursor"], str)
    assert len(body["value"]) == 10
    assert all(set(item) == LIST_FIELDS for item in body["value"])
    received = [item["receivedDateTime"] for item in body["value"]]
    assert received == sorted(received, reverse=True)
    first = body["value"][0]
    assert set(first["from"]) == {"name", "address"}
    assert isinstance(first["isRead"], bool) and isinstance(first["hasAttachments"], bool)


def test_a_service_without_the_role_is_refused_and_recorded(
    open_host: DevHostProcess, norole_caller: Caller, caller: Caller, directory: Directory
) -> None:
    response = messages(open_host, norole_caller.token(), directory.member_upn)
    error = assert_error(response, 403, "forbidden")
    assert "Mail.Read.All" in error["message"]
    [record] = audit_records(open_host, caller, response)
    assert record["outcome"] == "denied" and record["errorCode"] == "forbidden"
    assert record["actor"] == {
        "kind": "application",
        "appId": norole_caller.client_id,
        "objectId": None,
        "userPrincipalName": None,
    }
    assert record["mailbox"] == directory.member_upn and record["messageCount"] == 0


def test_a_delegated_token_is_refused_even_with_the_role(
    open_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    token = forged_delegated_token(local_tenant, roles=["Mail.Read.All"])
    response = messages(open_host, token, directory.member_upn)
    assert_error(response, 403, "caller_kind_not_allowed")
    [record] = audit_records(open_host, caller, response)
    assert record["outcome"] == "denied" and record["actor"]["kind"] == "user"


def test_no_token_is_401_and_no_graph_call(
    open_host: DevHostProcess, local_tenant: LocalTenant, directory: Directory
) -> None:
    seq = local_tenant.last_seq()
    response = messages(open_host, "", directory.member_upn)
    assert response.status_code == 401
    assert [e for e in local_tenant.requests_since(seq, "graph")] == []


# -- which mailboxes ----------------------------------------------------------------------------------------


def test_scope_matrix(
    group_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    assert messages(group_host, token, directory.direct_member).status_code == 200
    assert messages(group_host, token, directory.nested_member).status_code == 200
    refused = messages(group_host, token, directory.outsider)
    error = assert_error(refused, 403, "mailbox_out_of_scope")
    assert "MAILBOX_SCOPE" in error["message"]
    [record] = audit_records(group_host, caller, refused)
    assert record["outcome"] == "denied" and record["errorCode"] == "mailbox_out_of_scope"
    # Out of scope: the mailbox itself was never read.
    seq = local_tenant.last_seq()
    assert messages(group_host, token, directory.outsider).status_code == 403
    assert [e["path"] for e in local_tenant.requests_since(seq, "graph") if "/messages" in e["path"]] == []


def test_default_scope_denies_everything_with_an_actionable_message(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    seq = local_tenant.last_seq()
    response = messages(app_host, caller.token(), directory.member_upn)
    error = assert_error(response, 403, "mailbox_out_of_scope")
    assert "MAILBOX_SCOPE" in error["message"] and "*" in error["message"]
    assert [e for e in local_tenant.requests_since(seq, "graph") if "/users/" in e["path"]] == []
    [record] = audit_records(app_host, caller, response)
    assert record["outcome"] == "denied"


def test_membership_is_checked_once_per_cache_period(
    group_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    mailbox = directory.cache_probe
    seq = local_tenant.last_seq()
    for _ in range(3):
        assert messages(group_host, token, mailbox).status_code == 200
    graph = local_tenant.requests_since(seq, "graph")
    checks = [e for e in graph if e["path"].endswith("/checkMemberGroups")]
    reads = [e for e in graph if e["path"].endswith("/messages")]
    assert (len(checks), len(reads)) == (1, 3)


def test_the_tenants_own_access_policy_refusing_is_out_of_scope(
    open_host: DevHostProcess, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    tenant.control(
        "PUT", f"/graph/mailbox-scopes/{tenant.env['ENTRA_CLIENT_ID']}", {"users": [directory.direct_member]}
    )
    assert messages(open_host, caller.token(), directory.direct_member).status_code == 200
    refused = messages(open_host, caller.token(), directory.nested_member)
    error = assert_error(refused, 403, "mailbox_out_of_scope")
    assert "Exchange" in error["message"] and "policy" in error["message"]
    [record] = audit_records(open_host, caller, refused)
    assert record["errorCode"] == "mailbox_out_of_scope"


# -- errors ------------------------------------------------------------------------------------------------


def test_unknown_user_and_mailboxless_users(
    open_host: DevHostProcess, group_host: DevHostProcess, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@contoso.onmicrosoft.com"
    assert_error(messages(open_host, token, unknown), 404, "user_not_found")
    assert_error(messages(open_host, token, str(uuid.uuid4())), 404, "user_not_found")
    assert_error(messages(group_host, token, unknown), 404, "user_not_found")  # via the membership check
    response = messages(open_host, token, directory.no_mailbox)
    assert_error(response, 404, "mailbox_not_found")
    [record] = audit_records(open_host, caller, response)
    assert (record["outcome"], record["errorCode"], record["status"]) == ("failed", "mailbox_not_found", 404)


def test_one_message_as_text_and_unknown_messages(
    open_host: DevHostProcess, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    listed = messages(open_host, token, directory.member_upn, top="1").json()["value"][0]
    response = call(open_host, f"/api/users/{directory.member_upn}/messages/{listed['id']}", token)
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["id"] == listed["id"] and message["subject"] == listed["subject"]
    assert isinstance(message["body"], str) and "<html" not in message["body"].lower()
    assert "<script" not in message["body"] and "<p>" not in message["body"]
    [record] = audit_records(open_host, caller, response)
    assert (record["endpoint"], record["messageId"], record["messageCount"]) == (
        "messages.get",
        listed["id"],
        1,
    )
    missing = "AAMkAG" + uuid.uuid4().hex + "BGAAA="
    assert_error(
        call(open_host, f"/api/users/{directory.member_upn}/messages/{missing}", token),
        404,
        "message_not_found",
    )
    other = messages(open_host, token, directory.direct_member, top="1").json()["value"][0]["id"]
    if directory.direct_member != directory.member_upn:  # another mailbox's message is not in this one
        assert_error(
            call(open_host, f"/api/users/{directory.member_upn}/messages/{other}", token),
            404,
            "message_not_found",
        )


def test_permission_not_granted_when_mail_read_consent_is_revoked(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, directory: Directory
) -> None:
    removed = tenant.control(
        "POST",
        f"/apps/{tenant.env['ENTRA_CLIENT_ID']}/consent/revoke",
        {"resource": tenant.env["GRAPH_ENDPOINT"], "applicationPermissions": True},
    )
    assert removed["removedAppRoleAssignments"] >= 1
    host = fresh_hosts.start(tenant, "mail-no-consent", overrides={"MAILBOX_SCOPE": "*"})
    response = messages(host, caller.token(), directory.member_upn)
    error = assert_error(response, 403, "permission_not_granted")
    assert "Mail.Read" in error["message"] and "consent" in error["message"]
    [record] = audit_records(host, caller, response)
    assert record["outcome"] == "denied" and record["errorCode"] == "permission_not_granted"


def test_query_validation(open_host: DevHostProcess, caller: Caller, directory: Directory) -> None:
    token = caller.token()
    for params in ({"top": "0"}, {"top": "51"}, {"top": "x"}, {"folder": "deleteditems"}, {"select": "id"}):
        assert_error(messages(open_host, token, directory.member_upn, **params), 400, "invalid_parameter")
    for folder in ("inbox", "sentitems", "drafts", "archive"):
        response = messages(open_host, token, directory.member_upn, folder=folder, top="50")
        assert response.status_code == 200, (folder, response.text)
    ids = {
        i["id"]
        for i in messages(open_host, token, directory.member_upn, folder="inbox", top="50").json()["value"]
    }
    everything = messages(open_host, token, directory.member_upn, top="50").json()["value"]
    assert ids < {i["id"] for i in everything} or len(everything) == 50


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/member%2F..%2Fadmin@contoso.onmicrosoft.com/messages",
        "/api/users/..%2Fusers/messages",
        "/api/users/admin@contoso.onmicrosoft.com%3F$top=999/messages",
        "/api/users/admin@contoso.onmicrosoft.com%23x/messages",
        "/api/users/%24metadata/messages",
        "/api/users/a..b@contoso.onmicrosoft.com/messages",
        "/api/users/admin@contoso.onmicrosoft.com%0d%0aX-Evil:%201/messages",
        "/api/users/admin@contoso.onmicrosoft.com/messages/AAMk%2F..%2F..%2Fmessages",
        "/api/users/admin@contoso.onmicrosoft.com/messages/AAMk%3F%24select=body",
        "/api/users/admin@contoso.onmicrosoft.com/messages/AAMk%23frag",
        "/api/users/admin@contoso.onmicrosoft.com/messages/%24value",
        "/api/users/admin@contoso.onmicrosoft.com/messages/AAMk.%2E",
        "/api/users/admin@contoso.onmicrosoft.com/messages/AA%00Mk",
    ],
)
def test_path_injection_never_reaches_graph(
    open_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, path: str
) -> None:
    token = caller.token()
    seq = local_tenant.last_seq()
    response = requests.get(
        open_host.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code in (400, 404), (response.status_code, response.text[:300])
    if response.headers.get("content-type", "").startswith("application/json"):
        assert response.json()["error"]["code"] in ("invalid_parameter", "not_found")
    mail_calls = [e["path"] for e in local_tenant.requests_since(seq, "graph") if "/messages" in e["path"]]
    assert mail_calls == [], mail_calls


# -- cursors -----------------------------------------------------------------------------------------------


def test_cursor_pages_through_a_mailbox_and_is_bound_to_it(
    open_host: DevHostProcess, caller: Caller, directory: Directory
) -> None:
    token = caller.token()
    seen: list[str] = []
    page = messages(open_host, token, directory.member_upn, top="7", folder="inbox").json()
    pages = 1
    while True:
        seen += [item["id"] for item in page["value"]]
        if page["nextCursor"] is None:
            break
        cursor = page["nextCursor"]
        page = messages(open_host, token, directory.member_upn, cursor=cursor).json()
        pages += 1
        assert pages < 20
    assert pages >= 2 and len(seen) == len(set(seen))
    first = messages(open_host, token, directory.member_upn, top="3").json()
    cursor = first["nextCursor"]
    same = messages(open_host, token, directory.member_upn, cursor=cursor, top="3")
    assert same.status_code == 200
    assert_error(
        messages(open_host, token, directory.member_upn, cursor=cursor, top="4"), 400, "invalid_parameter"
    )
    assert_error(
        messages(open_host, token, directory.member_upn, cursor=cursor, folder="inbox"),
        400,
        "invalid_parameter",
    )
    # A cursor of one mailbox cannot read another (the scope check was for the path's mailbox).
    assert_error(messages(open_host, token, directory.direct_member, cursor=cursor), 400, "invalid_cursor")
    for forged in ("x", cursor[:-2], cursor + "A", "eyJ2IjoxfQ"):
        assert_error(messages(open_host, token, directory.member_upn, cursor=forged), 400, "invalid_cursor")
