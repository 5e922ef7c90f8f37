"""Nested groups over real sockets (requests): seeded nesting, transitive membership, the group cast, adding
members through ``members/$ref`` and the control API, and ``members?$filter=id eq``."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.emulator.graph_kit import bearer, mint
from tests.support.tenant import LocalTenant

READ = ("GroupMember.Read.All", "User.Read.All")


def _get(tenant: LocalTenant, path: str, token: str) -> requests.Response:
    return requests.get(f"{tenant.env['GRAPH_ENDPOINT']}/v1.0{path}", headers=bearer(token), timeout=30)


def _ok(tenant: LocalTenant, path: str, token: str) -> dict[str, Any]:
    reply = _get(tenant, path, token)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _groups(tenant: LocalTenant, token: str) -> dict[str, str]:
    return {g["displayName"]: g["id"] for g in _ok(tenant, "/groups?$select=id,displayName", token)["value"]}


def _names(body: dict[str, Any]) -> set[str]:
    return {g["displayName"] for g in body["value"]}


@pytest.fixture(scope="module")
def token(tenant: LocalTenant) -> str:
    return mint(tenant, roles=READ)


def _regional_manager(tenant: LocalTenant, token: str) -> str:
    """A seeded Regional Manager who is not a direct member of Report Readers."""
    groups = _groups(tenant, token)
    managers = _ok(tenant, f"/groups/{groups['Regional Managers']}/members?$select=id", token)["value"]
    readers = {m["id"] for m in _ok(tenant, f"/groups/{groups['Report Readers']}/members", token)["value"]}
    return str(next(m["id"] for m in managers if m["id"] not in readers))


def test_seeded_nesting_and_transitive_member_of(tenant: LocalTenant, token: str) -> None:
    groups = _groups(tenant, token)
    readers = _ok(tenant, f"/groups/{groups['Report Readers']}/members?$select=id,displayName", token)
    nested = [m for m in readers["value"] if m["@odata.type"] == "#microsoft.graph.group"]
    assert nested == [
        {
            "@odata.type": "#microsoft.graph.group",
            "id": groups["Regional Managers"],
            "displayName": "Regional Managers",
        }
    ]
    uid = _regional_manager(tenant, token)
    direct = _names(_ok(tenant, f"/users/{uid}/memberOf?$select=displayName", token))
    transitive = _names(_ok(tenant, f"/users/{uid}/transitiveMemberOf?$select=displayName", token))
    assert "Regional Managers" in direct and not direct & {"Report Readers", "Data Access"}
    assert {"Regional Managers", "Report Readers", "Data Access"} <= transitive
    assert direct <= transitive


def test_member_of_cast_to_groups(tenant: LocalTenant, token: str) -> None:
    uid = _regional_manager(tenant, token)
    for relation in ("memberOf", "transitiveMemberOf"):
        body = _ok(tenant, f"/users/{uid}/{relation}/microsoft.graph.group?$select=id,displayName", token)
        assert body["@odata.context"] == f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/$metadata#groups"
        assert body["value"] and all(set(g) == {"id", "displayName"} for g in body["value"])


@pytest.mark.parametrize(
    ("action", "key"), [("checkMemberGroups", "groupIds"), ("checkMemberObjects", "ids")]
)
def test_membership_checks_are_transitive(tenant: LocalTenant, token: str, action: str, key: str) -> None:
    groups = _groups(tenant, token)
    uid = _regional_manager(tenant, token)
    reply = requests.post(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users/{uid}/{action}",
        json={key: [groups["Data Access"], groups["Graph Functions Admins"]]},
        headers=bearer(token),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["value"] == [groups["Data Access"]]


def test_members_filter_by_id(tenant: LocalTenant, token: str) -> None:
    groups = _groups(tenant, token)
    uid = _regional_manager(tenant, token)
    found = _ok(tenant, f"/groups/{groups['Regional Managers']}/members?$filter=id eq '{uid}'", token)
    assert [m["id"] for m in found["value"]] == [uid]
    assert (
        _ok(tenant, f"/groups/{groups['Report Readers']}/members?$filter=id eq '{uid}'", token)["value"] == []
    )
    both = _ok(
        tenant,
        f"/groups/{groups['Report Readers']}/members?$filter=id in ('{uid}','{groups['Regional Managers']}')",
        token,
    )
    assert [m["id"] for m in both["value"]] == [groups["Regional Managers"]]
    other = _get(
        tenant, f"/groups/{groups['Report Readers']}/members?$filter=startswith(displayName,'a')", token
    )
    assert other.status_code == 400 and other.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_add_member_ref(fresh: LocalTenant) -> None:
    reader, writer = mint(fresh, roles=READ), mint(fresh, roles=("GroupMember.ReadWrite.All",))
    groups = _groups(fresh, reader)
    url = f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/groups/{groups['Graph Functions Admins']}/members/$ref"
    uid = _regional_manager(fresh, reader)
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid}"}
    denied = requests.post(url, json=ref, headers=bearer(reader), timeout=30)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    added = requests.post(url, json=ref, headers=bearer(writer), timeout=30)
    assert added.status_code == 204 and added.content == b""
    members = _ok(fresh, f"/groups/{groups['Graph Functions Admins']}/members?$filter=id eq '{uid}'", reader)
    assert [m["id"] for m in members["value"]] == [uid]
    again = requests.post(url, json=ref, headers=bearer(writer), timeout=30)
    assert again.status_code == 400 and "already exist" in again.json()["error"]["message"]
    ghost = {
        "@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/00000000-0000-0000-0000-00000000dead"
    }
    missing = requests.post(url, json=ghost, headers=bearer(writer), timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"
    bad = requests.post(url, json={"@odata.id": "nope"}, headers=bearer(writer), timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    nest = {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{groups['Data Access']}"}
    assert requests.post(url, json=nest, headers=bearer(writer), timeout=30).status_code == 204
    check = requests.post(
        f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users/{uid}/checkMemberGroups",
        json={"groupIds": [groups["Graph Functions Admins"]]},
        headers=bearer(reader),
        timeout=30,
    )
    assert check.json()["value"] == [groups["Graph Functions Admins"]]


def test_control_route_creates_groups_and_memberships(fresh: LocalTenant) -> None:
    token = mint(fresh, roles=READ)
    groups = _groups(fresh, token)
    admin = fresh.env["DEMO_ADMIN_USERNAME"]
    outer = fresh.control(
        "POST", "/groups", {"displayName": "Auditors", "members": [groups["Data Access"]]}, expect=201
    )
    inner = fresh.control("POST", "/groups", {"displayName": "Night Shift", "members": [admin]}, expect=201)
    assert inner["members"][0]["type"] == "user" and inner["securityEnabled"] is True
    fresh.control("POST", f"/groups/{outer['id']}/members", {"id": inner["id"]}, expect=200)
    admin_id = _ok(fresh, f"/users/{admin}?$select=id", token)["id"]
    transitive = _names(_ok(fresh, f"/users/{admin_id}/transitiveMemberOf?$select=displayName", token))
    assert {"Night Shift", "Auditors"} <= transitive
    cycle = fresh.control("POST", f"/groups/{inner['id']}/members", {"id": outer["id"]}, expect=409)
    assert "circular" in cycle["error"]["message"]
    fresh.control("POST", "/groups", {"displayName": ""}, expect=400)
    fresh.control("POST", "/groups", {"displayName": "X", "members": ["nobody@nowhere.example"]}, expect=404)
    fresh.control("POST", "/groups/00000000-0000-0000-0000-000000000000/members", {"id": admin}, expect=404)
    unified = fresh.control("POST", "/groups", {"displayName": "Team", "groupTypes": ["Unified"]}, expect=201)
    fresh.control("POST", f"/groups/{unified['id']}/members", {"id": inner["id"]}, expect=409)
