"""The users API against the local tenant: health, paging, query validation, cursors, single users.

Read-only: every test uses the session host and the session tenant without changing either.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid

import pytest

from shared.users.service import DEFAULT_FIELDS
from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call, list_all
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration


def test_health_is_anonymous_and_makes_no_upstream_call(
    app_host: DevHostProcess, local_tenant: LocalTenant
) -> None:
    seq = local_tenant.last_seq()
    response = call(app_host, "/api/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"status": "ok", "version": "0.1.0"}
    assert response.headers["x-request-id"]
    assert local_tenant.requests_since(seq) == []  # no vault, no Entra, no Graph, no managed identity


def test_lists_every_user_across_pages_without_duplicates(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller
) -> None:
    expected = local_tenant.control("GET", "/info")["users"]
    users, pages = list_all(app_host, caller.token(), {"top": "100"})
    assert pages >= 3
    assert len(users) == expected
    ids = [user["id"] for user in users]
    assert len(set(ids)) == len(ids)
    assert all(tuple(user) == DEFAULT_FIELDS for user in users)


def test_top_one_and_top_max(app_host: DevHostProcess, caller: Caller) -> None:
    one = call(app_host, "/api/users", caller.token(), {"top": "1"}).json()
    assert len(one["value"]) == 1 and isinstance(one["nextCursor"], str)
    everything = call(app_host, "/api/users", caller.token(), {"top": "999"}).json()
    assert len(everything["value"]) == 250 and everything["nextCursor"] is None


@pytest.mark.parametrize("top", ["0", "1000", "abc", "-1", "1.5", " ", "10000"])
def test_top_out_of_bounds_is_invalid_parameter(app_host: DevHostProcess, caller: Caller, top: str) -> None:
    error = assert_error(call(app_host, "/api/users", caller.token(), {"top": top}), 400, "invalid_parameter")
    assert "top" in error["message"]


def test_select_allowlist_and_shape_kept_across_pages(app_host: DevHostProcess, caller: Caller) -> None:
    users, pages = list_all(app_host, caller.token(), {"top": "120", "select": "displayName,mail"})
    assert pages == 3 and len(users) == 250
    assert all(set(user) == {"id", "displayName", "mail"} for user in users)


@pytest.mark.parametrize("select", ["passwordProfile", "displayName,,mail", "id,manager", "*", " "])
def test_select_outside_the_allowlist_is_rejected(
    app_host: DevHostProcess, caller: Caller, select: str
) -> None:
    assert_error(call(app_host, "/api/users", caller.token(), {"select": select}), 400, "invalid_parameter")


@pytest.mark.parametrize("path", ["/api/users", "/api/users/{admin}"])
def test_an_empty_select_is_refused(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, path: str
) -> None:
    # The Functions host drops empty query values (devhost matches it), so `select=` would be served as the
    # default projection, a request the OpenAPI document calls invalid: the app reads the raw URL and refuses
    # it (issue 17).
    url = path.format(admin=local_tenant.env["DEMO_ADMIN_USERNAME"])
    error = assert_error(call(app_host, url, caller.token(), {"select": ""}), 400, "invalid_parameter")
    assert "select has an empty value" in error["message"]


def test_search_finds_the_demo_admin_by_display_name(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller
) -> None:
    admin = call(app_host, f"/api/users/{local_tenant.env['DEMO_ADMIN_USERNAME']}", caller.token())
    assert admin.status_code == 200, admin.text
    name = admin.json()["displayName"]
    seq = local_tenant.last_seq()
    found, _ = list_all(app_host, caller.token(), {"search": name})
    assert admin.json()["id"] in {user["id"] for user in found}
    # The tenant refuses $search without ConsistencyLevel: eventual, so the 200 proves the app sent it.
    searches = [e for e in local_tenant.requests_since(seq, "graph") if "search" in e["query"]]
    assert searches and all(entry["status"] == 200 for entry in searches)
    nobody = call(app_host, "/api/users", caller.token(), {"search": "zz-no-such-person-zz"})
    assert nobody.status_code == 200 and nobody.json() == {"value": [], "nextCursor": None}


@pytest.mark.parametrize(
    "params",
    [{"filter": "x"}, {"$top": "5"}, {"TOP": "5"}, {"top": "5", "orderby": "displayName"}],
    ids=["filter", "odata-top", "case", "extra"],
)
def test_unknown_query_parameter_is_rejected(
    app_host: DevHostProcess, caller: Caller, params: dict[str, str]
) -> None:
    error = assert_error(call(app_host, "/api/users", caller.token(), params), 400, "invalid_parameter")
    assert "Unknown query parameter" in error["message"]


def _decode(cursor: str) -> dict[str, object]:
    return dict(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))))


def _encode(document: dict[str, object]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "AAAA",
        _encode({"v": 2, "u": "https://127.0.0.1/v1.0/users", "e": False}),
        _encode({"v": 1, "u": 42, "e": False}),
        "x" * 5000,
    ],
    ids=["not-base64url", "not-json", "unknown-version", "link-not-a-string", "too-long"],
)
def test_garbage_cursor_is_invalid_cursor(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller, cursor: str
) -> None:
    token = caller.token()
    seq = local_tenant.last_seq()
    assert_error(call(app_host, "/api/users", token, {"cursor": cursor}), 400, "invalid_cursor")
    assert local_tenant.requests_since(seq, "graph") == []


def test_cursor_to_another_host_or_path_is_refused_without_any_outbound_call(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller
) -> None:
    token = caller.token()
    first = call(app_host, "/api/users", token, {"top": "5"}).json()
    document = _decode(first["nextCursor"])
    link = str(document["u"])
    graph = local_tenant.env["GRAPH_ENDPOINT"]
    assert link.startswith(graph + "/v1.0/users?")
    query = link.split("?", 1)[1]
    # A listener that must never see a connection: where a rewritten cursor would send the bearer token.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(8)
        trap.setblocking(False)
        trap_origin = f"https://127.0.0.1:{trap.getsockname()[1]}"
        login = local_tenant.env["ENTRA_AUTHORITY_HOST"]
        some_user = first["value"][0]["id"]
        rewritten = [
            f"{trap_origin}/v1.0/users?{query}",  # another port
            f"https://localhost:{graph.rsplit(':', 1)[1]}/v1.0/users?{query}",  # another host name
            f"{login}/v1.0/users?{query}",  # a real service of the tenant
            f"http://{graph.split('://', 1)[1]}/v1.0/users?{query}",  # downgraded scheme
            f"https://evil@{graph.split('://', 1)[1]}/v1.0/users?{query}",  # userinfo
            f"{graph}/v1.0/users/{some_user}/messages?{query}",  # another collection
            f"{graph}/v1.0/users?{query}&$expand=manager",  # a query option the app never sends
            f"{graph}/beta/users?{query}",  # another API version
        ]
        seq = local_tenant.last_seq()
        for url in rewritten:
            cursor = _encode({**document, "u": url})
            assert_error(call(app_host, "/api/users", token, {"cursor": cursor}), 400, "invalid_cursor")
        with pytest.raises(BlockingIOError):
            trap.accept()
    assert local_tenant.requests_since(seq) == []
    # The untouched cursor still works (the refusals above were about the rewrite, not the cursor).
    assert call(app_host, "/api/users", token, {"cursor": first["nextCursor"]}).status_code == 200


def test_cursor_cannot_be_combined_with_differing_parameters(
    app_host: DevHostProcess, caller: Caller
) -> None:
    cursor = call(app_host, "/api/users", caller.token(), {"top": "5"}).json()["nextCursor"]
    assert call(app_host, "/api/users", caller.token(), {"cursor": cursor, "top": "5"}).status_code == 200
    assert_error(
        call(app_host, "/api/users", caller.token(), {"cursor": cursor, "top": "6"}), 400, "invalid_parameter"
    )


def test_get_user_by_upn_and_by_id(app_host: DevHostProcess, caller: Caller) -> None:
    page = call(app_host, "/api/users", caller.token(), {"top": "3"}).json()
    for listed in page["value"]:
        by_upn = call(app_host, f"/api/users/{listed['userPrincipalName']}", caller.token())
        assert by_upn.status_code == 200, by_upn.text
        assert by_upn.json() == listed
        by_id = call(app_host, f"/api/users/{listed['id']}", caller.token(), {"select": "userPrincipalName"})
        assert by_id.json() == {"id": listed["id"], "userPrincipalName": listed["userPrincipalName"]}


@pytest.mark.parametrize(
    "user_id", [str(uuid.UUID(int=7)), "nobody.at.all@contoso.onmicrosoft.com"], ids=["guid", "upn"]
)
def test_unknown_user_is_not_found(app_host: DevHostProcess, caller: Caller, user_id: str) -> None:
    assert_error(call(app_host, f"/api/users/{user_id}", caller.token()), 404, "not_found")


@pytest.mark.parametrize("user_id", ["not an id", "a" * 120 + "@x.com", "@contoso.com", "x@-bad-.com"])
def test_malformed_user_id_is_invalid_parameter(
    app_host: DevHostProcess, caller: Caller, user_id: str
) -> None:
    assert_error(call(app_host, f"/api/users/{user_id}", caller.token()), 400, "invalid_parameter")


def test_get_user_rejects_unknown_parameters(app_host: DevHostProcess, caller: Caller) -> None:
    page = call(app_host, "/api/users", caller.token(), {"top": "1"}).json()
    user_id = page["value"][0]["id"]
    assert_error(
        call(app_host, f"/api/users/{user_id}", caller.token(), {"top": "1"}), 400, "invalid_parameter"
    )
    assert_error(
        call(app_host, f"/api/users/{user_id}", caller.token(), {"select": "nope"}), 400, "invalid_parameter"
    )


def test_request_id_is_echoed_when_sane_and_replaced_otherwise(app_host: DevHostProcess) -> None:
    echoed = call(app_host, "/api/users", headers={"x-request-id": "trace-42.a:b"})
    assert echoed.headers["x-request-id"] == "trace-42.a:b"
    assert assert_error(echoed, 401, "unauthenticated")["requestId"] == "trace-42.a:b"
    replaced = call(app_host, "/api/users", headers={"x-request-id": "evil id\tinjected"})
    assert str(uuid.UUID(replaced.headers["x-request-id"])) == replaced.headers["x-request-id"]
    assert assert_error(replaced, 401, "unauthenticated")["requestId"] == replaced.headers["x-request-id"]
