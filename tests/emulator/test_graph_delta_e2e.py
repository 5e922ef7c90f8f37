"""``/users/delta`` over real sockets (requests), as user-delta documents it: never-set properties absent,
``Prefer: return=minimal``, ``$deltatoken=latest``, ``$filter=id eq`` (up to 50 ids), ``$select``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.emulator.graph_kit import bearer, mint
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def token(tenant: LocalTenant) -> str:
    return mint(tenant, roles=("User.Read.All",))


def _get(url: str, token: str, **headers: str) -> requests.Response:
    reply = requests.get(url, headers=bearer(token, **headers), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply


def _round(tenant: LocalTenant, url: str, token: str, **headers: str) -> tuple[list[dict[str, Any]], str]:
    """Every page of one round: the items and the deltaLink."""
    if url.startswith("/"):
        url = f"{tenant.env['GRAPH_ENDPOINT']}{url}"
    items: list[dict[str, Any]] = []
    while True:
        body = _get(url, token, **headers).json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, str(body["@odata.deltaLink"])
        url = body["@odata.nextLink"]


def _upn_id(tenant: LocalTenant, token: str, upn: str) -> str:
    return str(_get(f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users/{quote(upn)}?$select=id", token).json()["id"])


def test_never_set_properties_are_absent_and_nulled_ones_are_null(fresh: LocalTenant, token: str) -> None:
    items, link = _round(fresh, "/v1.0/users/delta", token)
    nolicense = next(i for i in items if i.get("userPrincipalName", "").startswith("nolicense@"))
    assert "mail" not in nolicense and "mobilePhone" not in nolicense and None not in nolicense.values()
    listed = _get(f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users/{nolicense['id']}", token).json()
    assert listed["mail"] is None  # a plain GET still shows null
    created = fresh.control("POST", "/users", {"displayName": "Ned New"}, expect=201)
    member = fresh.env["DEMO_USER_USERNAME"]
    fresh.control("PATCH", f"/users/{quote(member)}", {"jobTitle": None}, expect=200)
    changes, _ = _round(fresh, link, token)
    by_id = {c["id"]: c for c in changes}
    assert "jobTitle" not in by_id[created["id"]]  # never set
    assert by_id[_upn_id(fresh, token, member)]["jobTitle"] is None  # set to null


def test_return_minimal_returns_only_changed_properties(fresh: LocalTenant, token: str) -> None:
    _, link = _round(fresh, "/v1.0/users/delta", token)
    member = fresh.env["DEMO_USER_USERNAME"]
    fresh.control("PATCH", f"/users/{quote(member)}", {"displayName": "Morgan M.", "department": "Audit"})
    created = fresh.control(
        "POST", "/users", {"displayName": "Mia Minimal", "jobTitle": "Intern"}, expect=201
    )
    reply = _get(link, token, Prefer="return=minimal")
    assert reply.headers["Preference-Applied"] == "return=minimal"
    by_id = {c["id"]: c for c in reply.json()["value"]}
    assert by_id[_upn_id(fresh, token, member)] == {
        "id": _upn_id(fresh, token, member),
        "displayName": "Morgan M.",
    }  # department is not in the default projection
    assert by_id[created["id"]]["jobTitle"] == "Intern"  # a new user comes in full
    full = _get(link, token).json()["value"]
    assert "Preference-Applied" not in _get(link, token).headers
    assert {"displayName", "userPrincipalName", "givenName"} <= set(
        next(c for c in full if c["id"] == _upn_id(fresh, token, member))
    )


def test_latest_token_skips_the_initial_sync(fresh: LocalTenant, token: str) -> None:
    body = _get(f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users/delta?$deltatoken=latest", token).json()
    assert body["value"] == [] and "$deltatoken=" in body["@odata.deltaLink"]
    assert "@odata.nextLink" not in body
    created = fresh.control("POST", "/users", {"displayName": "Lena Latest"}, expect=201)
    changes, _ = _round(fresh, body["@odata.deltaLink"], token)
    assert [c["id"] for c in changes] == [created["id"]]


def test_filter_by_ids_tracks_only_those_users(fresh: LocalTenant, token: str) -> None:
    admin = _upn_id(fresh, token, fresh.env["DEMO_ADMIN_USERNAME"])
    member = _upn_id(fresh, token, fresh.env["DEMO_USER_USERNAME"])
    items, link = _round(fresh, f"/v1.0/users/delta?$filter=id eq '{admin}' or id eq '{member}'", token)
    assert sorted(i["id"] for i in items) == sorted([admin, member])
    fresh.control("PATCH", f"/users/{member}", {"jobTitle": "Lead"}, expect=200)
    fresh.control("POST", "/users", {"displayName": "Outside Filter"}, expect=201)
    changes, _ = _round(fresh, link, token)
    assert [c["id"] for c in changes] == [member]
    base = f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users/delta"
    many = " or ".join(f"id eq '{i:08d}-0000-0000-0000-000000000000'" for i in range(51))
    too_many = requests.get(f"{base}?$filter={quote(many)}", headers=bearer(token), timeout=30)
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "Request_UnsupportedQuery"
    other = requests.get(f"{base}?$filter=startswith(displayName,'a')", headers=bearer(token), timeout=30)
    assert other.status_code == 400 and other.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_select_limits_the_tracked_properties(fresh: LocalTenant, token: str) -> None:
    items, link = _round(fresh, "/v1.0/users/delta?$select=displayName,jobTitle", token)
    assert all(set(i) <= {"id", "displayName", "jobTitle"} for i in items)
    member = _upn_id(fresh, token, fresh.env["DEMO_USER_USERNAME"])
    admin = _upn_id(fresh, token, fresh.env["DEMO_ADMIN_USERNAME"])
    fresh.control("PATCH", f"/users/{member}", {"department": "Untracked"}, expect=200)
    fresh.control("PATCH", f"/users/{admin}", {"jobTitle": "CTO"}, expect=200)
    changes, _ = _round(fresh, link, token)
    assert changes == [{"displayName": "Alex Admin", "jobTitle": "CTO", "id": admin}]
