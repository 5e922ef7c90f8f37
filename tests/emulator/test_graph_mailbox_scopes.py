"""Application access policy / RBAC for Applications over real sockets (requests): a per-app mailbox scope set
through the control API; a scoped-out mailbox answers 403 ``ErrorAccessDenied`` as Exchange does."""

from __future__ import annotations

import requests

from tests.emulator.graph_kit import bearer, mint
from tests.support.tenant import LocalTenant

RAOP = "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."


def _get(tenant: LocalTenant, path: str, token: str) -> requests.Response:
    return requests.get(f"{tenant.env['GRAPH_ENDPOINT']}/v1.0{path}", headers=bearer(token), timeout=30)


def _uid(tenant: LocalTenant, upn: str) -> str:
    reply = _get(tenant, f"/users/{upn}?$select=id", mint(tenant, roles=("User.Read.All",)))
    return str(reply.json()["id"])


def _assert_scoped_out(reply: requests.Response) -> None:
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "ErrorAccessDenied"
    assert reply.json()["error"]["message"] == RAOP


def test_user_scope_blocks_other_mailboxes_for_app_only_tokens(fresh: LocalTenant) -> None:
    app_id = fresh.env["ENTRA_CLIENT_ID"]
    admin, member = fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_USER_USERNAME"]
    token = mint(fresh, roles=("Mail.Read", "Mail.Send"))
    assert _get(fresh, f"/users/{member}/messages?$top=1", token).status_code == 200  # no policy yet
    scope = fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"users": [admin]}, expect=200)
    assert scope == {"appId": app_id, "users": [_uid(fresh, admin)], "groups": []}
    assert _get(fresh, f"/users/{admin}/messages?$top=1", token).status_code == 200
    _assert_scoped_out(_get(fresh, f"/users/{member}/messages?$top=1", token))
    _assert_scoped_out(_get(fresh, f"/users/{member}/mailFolders/inbox", token))
    send = requests.post(
        f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users/{member}/sendMail",
        json={"message": {"subject": "s", "toRecipients": [{"emailAddress": {"address": admin}}]}},
        headers=bearer(token),
        timeout=30,
    )
    _assert_scoped_out(send)
    other_app = mint(fresh, roles=("Mail.Read",), appid=fresh.env["CALLER_CLIENT_ID"])
    assert _get(fresh, f"/users/{member}/messages?$top=1", other_app).status_code == 200  # per app
    delegated = mint(fresh, scopes=("Mail.Read",), oid=_uid(fresh, member))
    assert _get(fresh, "/me/messages?$top=1", delegated).status_code == 200  # app-only tokens only
    listed = fresh.control("GET", "/graph/mailbox-scopes")["value"]
    assert [s["appId"] for s in listed] == [app_id]
    fresh.control("DELETE", f"/graph/mailbox-scopes/{app_id}", expect=204)
    assert _get(fresh, f"/users/{member}/messages?$top=1", token).status_code == 200


def test_group_scope_includes_nested_members(fresh: LocalTenant) -> None:
    reader = mint(fresh, roles=("GroupMember.Read.All", "User.Read.All"))
    groups = {
        g["displayName"]: g["id"]
        for g in _get(fresh, "/groups?$select=id,displayName", reader).json()["value"]
    }
    managers = _get(fresh, f"/groups/{groups['Regional Managers']}/members?$select=id", reader).json()[
        "value"
    ]
    app_id = fresh.env["ENTRA_CLIENT_ID"]
    fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"groups": [groups["Data Access"]]}, expect=200)
    token = mint(fresh, roles=("Mail.Read",))
    inside = managers[0]["id"]  # Regional Managers ⊂ Report Readers ⊂ Data Access
    assert _get(fresh, f"/users/{inside}/messages?$top=1", token).status_code == 200
    _assert_scoped_out(_get(fresh, f"/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages?$top=1", token))


def test_scope_input_is_checked_and_reset_clears_it(fresh: LocalTenant) -> None:
    app_id = fresh.env["ENTRA_CLIENT_ID"]
    fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"users": ["nobody@nowhere.example"]}, expect=404)
    fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"groups": ["not-a-group"]}, expect=404)
    fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"mailboxes": []}, expect=400)
    fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"users": "admin"}, expect=400)
    fresh.control("PUT", f"/graph/mailbox-scopes/{app_id}", {"users": []}, expect=200)
    token = mint(fresh, roles=("Mail.Read",))
    _assert_scoped_out(_get(fresh, f"/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages", token))
    fresh.reset()
    assert fresh.control("GET", "/graph/mailbox-scopes") == {"value": []}
    assert _get(fresh, f"/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages", token).status_code == 200
