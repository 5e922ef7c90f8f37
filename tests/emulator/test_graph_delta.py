"""``/users/delta`` and the Graph control routes that drive it, in process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from emulator import control
from tests.emulator.graph_kit import InProcess, Reply, asgi_call, assert_graph_error


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-delta")), users=130)


@pytest.fixture
def fresh(g: InProcess) -> Iterator[InProcess]:
    yield g
    g.state.reset()


def ctl(g: InProcess, method: str, path: str, body: Any = None) -> Reply:
    app = control.build_app(g.state)
    return asyncio.run(asgi_call(app, method, path, json_body=body))


def sync(g: InProcess, token: str, link: str, **headers: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks; return the items, the deltaLink and the number of pages."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        reply = g.get(link, token, **headers)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        link = body["@odata.nextLink"]


def test_initial_sync_then_changes(fresh: InProcess) -> None:
    g = fresh
    token = g.app_token("User.Read.All")
    items, delta_link, pages = sync(
        g, token, "/v1.0/users/delta?$select=displayName,accountEnabled", Prefer="odata.maxpagesize=40"
    )
    assert pages == 4
    assert {i["id"] for i in items} == {u.id for u in g.state.directory.users}
    assert all(set(i) == {"displayName", "accountEnabled", "id"} for i in items)
    assert "$deltatoken=" in delta_link

    nothing, delta_link, _ = sync(g, token, delta_link)
    assert nothing == []

    created = ctl(g, "POST", "/users", {"displayName": "Nora New", "department": "Legal"})
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    assert created.json()["password"]
    victim, hard = g.state.directory.users[5], g.state.directory.users[6]
    patched = g.state.directory.users[7]
    assert (
        ctl(g, "PATCH", f"/users/{patched.id}", {"accountEnabled": False, "jobTitle": "CFO"}).status_code
        == 200
    )
    assert ctl(g, "DELETE", f"/users/{victim.id}").status_code == 204
    assert ctl(g, "DELETE", f"/users/{quote(hard.user_principal_name)}?permanent=true").status_code == 204

    changes, delta_link, _ = sync(g, token, delta_link)
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {new_id, victim.id, hard.id, patched.id}
    assert by_id[new_id] == {"displayName": "Nora New", "accountEnabled": True, "id": new_id}  # $select kept
    assert by_id[patched.id]["accountEnabled"] is False
    assert by_id[victim.id] == {"id": victim.id, "@removed": {"reason": "changed"}}
    assert by_id[hard.id] == {"id": hard.id, "@removed": {"reason": "deleted"}}
    again, _, _ = sync(g, token, delta_link)
    assert again == []


def test_changes_are_paged_by_sequence(fresh: InProcess) -> None:
    g = fresh
    token = g.app_token("User.Read.All")
    _, delta_link, _ = sync(g, token, "/v1.0/users/delta?$select=id,department")  # department is tracked
    touched = [u.id for u in g.state.directory.users[:25]]
    for uid in touched:
        assert ctl(g, "PATCH", f"/users/{uid}", {"department": "Moved"}).status_code == 200
    changes, _, pages = sync(g, token, delta_link, Prefer="odata.maxpagesize=10")
    assert pages == 3 and [c["id"] for c in changes] == touched


def test_delta_token_errors_and_unsupported_options(fresh: InProcess) -> None:
    token = fresh.app_token("User.Read.All")
    assert_graph_error(
        fresh.get("/v1.0/users/delta?$deltatoken=forged", token), 400, "Directory_ExpiredPageToken"
    )
    assert_graph_error(
        fresh.get("/v1.0/users/delta?$filter=displayName eq 'x'", token), 400, "Request_UnsupportedQuery"
    )
    _, link, _ = sync(fresh, token, "/v1.0/users/delta()")
    fresh.state.reset()
    assert_graph_error(fresh.get(link, fresh.app_token("User.Read.All")), 400, "Directory_ExpiredPageToken")
    assert_graph_error(
        fresh.get("/v1.0/users/delta", fresh.app_token("Mail.Read")), 403, "Authorization_RequestDenied"
    )


def test_control_routes_validate(fresh: InProcess) -> None:
    g = fresh
    assert ctl(g, "POST", "/users", {}).status_code == 400
    assert ctl(g, "POST", "/users", {"displayName": "X", "shoeSize": 3}).status_code == 400
    assert (
        ctl(
            g,
            "POST",
            "/users",
            {"displayName": "Y", "userPrincipalName": g.state.ids.admin.user_principal_name},
        ).status_code
        == 409
    )
    assert ctl(g, "PATCH", "/users/nobody", {"displayName": "Z"}).status_code == 404
    assert ctl(g, "PATCH", f"/users/{g.state.ids.member.id}", {"accountEnabled": "no"}).status_code == 400
    assert ctl(g, "DELETE", "/users/nobody").status_code == 404
    guest = ctl(g, "POST", "/users", {"displayName": "Gina Guest", "userType": "Guest"}).json()
    assert guest["userType"] == "Guest" and guest["mailboxEnabled"] is False and guest["mail"] is None
    renamed = ctl(g, "PATCH", f"/users/{guest['id']}", {"userPrincipalName": "gina@contoso.onmicrosoft.com"})
    assert renamed.status_code == 200
    assert g.state.directory.user("GINA@contoso.onmicrosoft.com") is not None


def test_control_message_route(fresh: InProcess) -> None:
    g = fresh
    member = g.state.ids.member
    reply = ctl(
        g,
        "POST",
        f"/users/{member.id}/messages",
        {
            "subject": "<img src=x onerror=alert(1)>",
            "body": "<p>hello</p>",
            "contentType": "html",
            "from": {"name": "Eve", "address": "eve@evil.example"},
            "hasAttachments": True,
            "importance": "high",
        },
    )
    assert reply.status_code == 201, reply.text
    mid = reply.json()["id"]
    message = g.get(f"/v1.0/users/{member.id}/messages/{mid}", g.app_token("Mail.Read")).json()
    assert message["subject"] == "<img src=x onerror=alert(1)>" and message["hasAttachments"] is True
    assert message["from"]["emailAddress"] == {"name": "Eve", "address": "eve@evil.example"}
    top = g.get(f"/v1.0/users/{member.id}/messages?$top=1&$select=id", g.app_token("Mail.Read")).json()
    assert top["value"][0]["id"] == mid
    old = ctl(
        g,
        "POST",
        f"/users/{member.id}/messages",
        {"subject": "old", "receivedDateTime": "2001-01-01T00:00:00Z"},
    )
    assert old.status_code == 201
    oldest = g.get(
        f"/v1.0/users/{member.id}/messages?$orderby=receivedDateTime asc&$top=1", g.app_token("Mail.Read")
    )
    assert oldest.json()["value"][0]["id"] == old.json()["id"]
    guest = next(u for u in g.state.directory.users if not u.has_mailbox)
    assert ctl(g, "POST", f"/users/{guest.id}/messages", {"subject": "x"}).status_code == 409
    assert ctl(g, "POST", f"/users/{member.id}/messages", {"folder": "nowhere"}).status_code == 404


def test_settings_route(fresh: InProcess) -> None:
    g = fresh
    reply = ctl(
        g,
        "PUT",
        "/graph/settings",
        {
            "mailDefaultOrder": "asc",
            "mailLatencyMs": 5,
            "mailAccessPolicies": {"app-1": [g.state.ids.member.user_principal_name]},
        },
    )
    assert reply.json() == {
        "premiumLicense": False,
        "mailDefaultOrder": "asc",
        "mailLatencyMs": 5,
        "sendMailDelayMs": 300,
        "mailAccessPolicies": {"app-1": [g.state.ids.member.id]},
    }
    assert ctl(g, "PUT", "/graph/settings", {"mailDefaultOrder": "sideways"}).status_code == 400
    assert ctl(g, "PUT", "/graph/settings", {"mailLatencyMs": -1}).status_code == 400
    g.state.reset()
    assert ctl(g, "GET", "/graph/settings").json()["mailDefaultOrder"] == "desc"
