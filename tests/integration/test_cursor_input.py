"""Cursors and search terms are caller input: through devhost, the real app and the local tenant's Graph.

A malformed cursor is refused before any Graph call; a cursor Graph no longer honours is the caller's
400 ``invalid_cursor`` after exactly one Graph request (no retries); search terms with quotes, backslashes
and colons reach Graph in its documented quoting; a cursor may come back with the first page's query.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.cursor import encode_cursor
from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call, list_all
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration


def _graph_requests(tenant: LocalTenant, since: int) -> list[dict[str, Any]]:
    return [entry for entry in tenant.requests_since(since, "graph") if entry["path"].startswith("/v1.0/")]


def _warm(host: DevHostProcess, token: str) -> None:
    assert call(host, "/api/users", token, {"top": "1"}).status_code == 200  # token and keys cached


@pytest.mark.parametrize(
    "mangle",
    [
        lambda graph: graph.replace("127.0.0.1", "127.0.\t0.1") + "/v1.0/users?$skiptoken=x",
        lambda graph: graph + "/v1.0/us\ners?$skiptoken=x",
        lambda graph: graph + "/v1.0/users?$skiptoken=x\r",
        lambda graph: graph + "/v1.0/users?$skiptoken=caf\u00e9",
    ],
    ids=["tab-in-host", "newline-in-path", "cr-in-query", "non-ascii"],
)
def test_a_cursor_with_control_or_non_ascii_characters_is_400_at_once(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, mangle: Any
) -> None:
    token = caller.token()
    _warm(app_host, token)
    seq = local_tenant.last_seq()
    cursor = encode_cursor(mangle(local_tenant.env["GRAPH_ENDPOINT"]), eventual=False)
    response = call(app_host, "/api/users", token, {"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")
    # "At once" is the mechanism, counted in the tenant: refused before any Graph call, so no retries.
    assert _graph_requests(local_tenant, seq) == []


def test_a_forged_skiptoken_is_invalid_cursor_after_one_graph_request(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    _warm(app_host, token)
    seq = local_tenant.last_seq()
    forged = encode_cursor(
        f"{local_tenant.env['GRAPH_ENDPOINT']}/v1.0/users?$skiptoken=forged", eventual=False
    )
    assert_error(call(app_host, "/api/users", token, {"cursor": forged}), 400, "invalid_cursor")
    assert [entry["status"] for entry in _graph_requests(local_tenant, seq)] == [400]


def test_a_stale_cursor_is_invalid_cursor(
    app_host: DevHostProcess, tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    cursor = call(app_host, "/api/users", token, {"top": "5"}).json()["nextCursor"]
    assert isinstance(cursor, str)
    tenant.reset()  # the tenant's skip tokens do not survive a reset: the page is gone
    seq = tenant.last_seq()
    response = call(app_host, "/api/users", token, {"cursor": cursor})
    error = assert_error(response, 400, "invalid_cursor")
    assert "first page" in error["message"]
    assert [entry["status"] for entry in _graph_requests(tenant, seq)] == [400]


@pytest.mark.parametrize(
    ("display_name", "term"),
    [
        ('Quinn "Q" Quarles', '"Q"'),
        ('Quinn "Q" Quarles', 'Quinn "Q'),
        ("Bram Back\\Slash", "Back\\Slash"),
        ("Cora Colon: Keys", "Colon: Keys"),
        ("Cora Colon: Keys", "Cora:"),
    ],
)
def test_search_terms_with_quotes_backslashes_and_colons_find_their_users(
    app_host: DevHostProcess, tenant: LocalTenant, caller: Caller, display_name: str, term: str
) -> None:
    created = tenant.control("POST", "/users", {"displayName": display_name}, expect=201)
    users, _ = list_all(app_host, caller.token(), {"search": term, "select": "displayName"})
    assert created["id"] in {user["id"] for user in users}


@pytest.mark.parametrize("term", ['"', "\\", '\\"', "a:b", 'x" OR "mail:y', '"displayName:'])
def test_any_printable_search_term_is_a_valid_query(
    app_host: DevHostProcess, caller: Caller, term: str
) -> None:
    response = call(app_host, "/api/users", caller.token(), {"search": term})
    assert response.status_code == 200, response.text  # was 400: Graph refused the app's quoting


def test_a_search_cursor_pages_through_every_match(app_host: DevHostProcess, caller: Caller) -> None:
    token = caller.token()
    everyone, _ = list_all(app_host, token, {"search": "a", "select": "displayName", "top": "999"})
    paged, pages = list_all(app_host, token, {"search": "a", "select": "displayName", "top": "7"})
    assert pages > 1 and [user["id"] for user in paged] == [user["id"] for user in everyone]


def test_a_cursor_may_come_back_with_the_same_query(app_host: DevHostProcess, caller: Caller) -> None:
    token = caller.token()
    query = {"top": "3", "select": "displayName,mail", "search": "a"}
    first = call(app_host, "/api/users", token, query).json()
    again = call(app_host, "/api/users", token, {**query, "cursor": first["nextCursor"]})
    alone = call(app_host, "/api/users", token, {"cursor": first["nextCursor"]})
    assert again.status_code == 200 and alone.status_code == 200, (again.text, alone.text)
    assert again.json()["value"] == alone.json()["value"]
    assert {user["id"] for user in again.json()["value"]}.isdisjoint(u["id"] for u in first["value"])
    reordered = {**query, "select": "mail,displayName", "cursor": first["nextCursor"]}
    assert call(app_host, "/api/users", token, reordered).status_code == 200
    for name, value in (("top", "4"), ("select", "displayName"), ("search", "b")):
        differing = {**query, name: value, "cursor": first["nextCursor"]}
        error = assert_error(call(app_host, "/api/users", token, differing), 400, "invalid_parameter")
        assert error["message"].startswith(f"{name} differs")
