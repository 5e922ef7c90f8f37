from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from shared.app.tenants import graph_config
from shared.core.cursor import MAX_CURSOR_LENGTH, decode_cursor, encode_cursor
from shared.core.errors import BadRequest, InvalidCursor, NotFound, UpstreamError
from shared.graph.client import GraphClient
from shared.graph.users import user_path, validate_user_id
from shared.users.service import (
    DEFAULT_FIELDS,
    USER_FIELDS,
    ListUsersQuery,
    UsersService,
    parse_get_query,
    parse_list_query,
    search_expression,
    search_term_of,
)

from .conftest import GRAPH, make_settings
from .fakes import FakeClock, FakeTokens, FakeTransport, graph_error, respond

USERS = f"{GRAPH}/v1.0/users"
ADA_SEARCH = quote(search_expression("ada"), safe="")


def service(transport: FakeTransport) -> UsersService:
    clock = FakeClock()
    graph = GraphClient(
        config=graph_config(make_settings()),
        tokens=FakeTokens(),
        transport=transport,
        sleep=clock.sleep,
        clock=clock,
    )
    return UsersService(graph)


def raw_cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# -- query validation ---------------------------------------------------------------------------------------


def test_defaults() -> None:
    assert parse_list_query({}) == ListUsersQuery(top=100, select=DEFAULT_FIELDS, search=None, cursor=None)


def test_valid_query() -> None:
    query = parse_list_query({"top": "25", "select": "displayName, mail,id,mail", "search": "  ada  "})
    assert query.top == 25
    assert query.select == ("id", "displayName", "mail")
    assert query.search == "ada"


@pytest.mark.parametrize(
    "params",
    [
        {"top": "0"},
        {"top": "1000"},
        {"top": "-1"},
        {"top": "ten"},
        {"top": "1e2"},
        {"top": ""},
        {"top": "+5"},
        {"select": ""},
        {"select": "id,,mail"},
        {"select": "passwordProfile"},
        {"select": "id,manager"},
        {"search": ""},
        {"search": "   "},
        {"search": "x" * 201},
        {"search": "a\x00b"},
        {"search": "a\nb"},
        {"filter": "x"},
        {"$top": "5"},
        {"Top": "5"},
        {"cursor": "abc", "top": "0"},  # parameters repeated with a cursor are validated as usual
        {"cursor": "abc", "search": "a\tb"},
        {"cursor": "abc", "bogus": "1"},
    ],
)
def test_invalid_queries_are_400(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_list_query(params)
    assert caught.value.code == "invalid_parameter" and caught.value.status == 400


def test_a_cursor_may_come_with_the_first_pages_parameters() -> None:
    query = parse_list_query({"cursor": "abc", "top": "5", "search": " ada "})
    assert (query.cursor, query.top, query.search) == ("abc", 5, "ada")
    assert query.repeated == {"top", "search"}
    assert parse_list_query({"cursor": "abc"}).repeated == frozenset()


def test_unknown_parameter_message_lists_allowed() -> None:
    with pytest.raises(
        BadRequest, match=r"Unknown query parameter.*filter.*Allowed: cursor, search, select, top"
    ):
        parse_list_query({"filter": "x"})


def test_get_query() -> None:
    assert parse_get_query({}) == DEFAULT_FIELDS
    assert parse_get_query({"select": "department"}) == ("id", "department")
    with pytest.raises(BadRequest):
        parse_get_query({"expand": "manager"})


def test_every_allowlisted_field_is_selectable() -> None:
    assert parse_list_query({"select": ",".join(USER_FIELDS)}).select == USER_FIELDS


@pytest.mark.parametrize(
    "value",
    [
        "8a0c4e7e-1b2d-4c5f-9a6b-7c8d9e0f1a2b",
        "ada@contoso.onmicrosoft.com",
        "o'neil@contoso.com",
        "ada_contoso.com#EXT#@fabrikam.onmicrosoft.com",
        "$admin@contoso.com",
        "user@localhost",
    ],
)
def test_valid_user_ids(value: str) -> None:
    assert validate_user_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ada",
        "../users",
        "ada@contoso.com/../../groups",
        "ada@contoso.com?$expand=x",
        "a b@contoso.com",
        "ada@-contoso.com",
        "ada@contoso..com",
        "8a0c4e7e-1b2d-4c5f-9a6b",
        "x" * 60 + "@" + "d" * 60 + ".com",
        "ada@contoso.com\n",
        "https://evil.example/x@y",
    ],
)
def test_invalid_user_ids(value: str) -> None:
    with pytest.raises(BadRequest):
        validate_user_id(value)


def test_user_paths_are_encoded() -> None:
    assert user_path("ada@contoso.com") == "users/ada@contoso.com"
    assert user_path("ada_x.com#EXT#@f.com") == "users/ada_x.com%23EXT%23@f.com"
    assert user_path("$admin@contoso.com") == "users('$admin@contoso.com')"
    assert user_path("o'neil@contoso.com") == "users/o%27neil@contoso.com"


def test_search_expression_quotes_and_escapes() -> None:
    assert search_expression("ada") == '"displayName:ada" OR "mail:ada"'
    assert search_expression('a"b\\c') == '"displayName:a\\"b\\\\c" OR "mail:a\\"b\\\\c"'
    assert search_expression('"') == '"displayName:\\"" OR "mail:\\""'
    assert search_expression("a:b") == '"displayName:a:b" OR "mail:a:b"'  # a colon stands for itself


@pytest.mark.parametrize(
    "term",
    ['"', "\\", "\\\\", 'a"b\\c', "a:b", 'x" OR "mail:y', '\\"', "Zoë 李四", "x" * 200],
)
def test_search_term_of_inverts_search_expression(term: str) -> None:
    assert search_term_of(search_expression(term)) == term


@pytest.mark.parametrize(
    "expression",
    [
        '"displayName:ada"',  # one clause: not ours
        '"displayName:ada" OR "mail:bob"',  # two different terms
        '"displayName:a"b" OR "mail:a"b"',  # an unescaped quote
        '"displayName:a\\" OR "mail:a\\"',  # a lone backslash escapes the closing quote
        '"displayName:a\\x" OR "mail:a\\x"',  # only \" and \\ are escapes
        '"displayName:a\tb" OR "mail:a\tb"',  # what the search parameter refuses
        '"displayName: ada" OR "mail: ada"',  # not trimmed
        '"displayName:" OR "mail:"',
        '"displayName:' + "x" * 201 + '" OR "mail:' + "x" * 201 + '"',
        '"mail:ada" OR "displayName:ada"',
    ],
)
def test_search_term_of_refuses_what_search_expression_never_writes(expression: str) -> None:
    with pytest.raises(InvalidCursor):
        search_term_of(expression)


# -- cursors ----------------------------------------------------------------------------------------------


def test_cursor_round_trip() -> None:
    link = f"{USERS}?$top=5&$skiptoken=X%2BY"
    cursor = encode_cursor(link, eventual=True)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    decoded = decode_cursor(cursor, check_link=lambda url: True)
    assert (decoded.next_link, decoded.eventual) == (link, True)


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1.0/users?$skiptoken=x",  # SSRF: another host
        "https://169.254.169.254/metadata/identity/oauth2/token",  # SSRF: instance metadata
        "http://127.0.0.1:8444/v1.0/users?$skiptoken=x",  # downgrade
        "https://127.0.0.1:8445/v1.0/users?$skiptoken=x",  # another port (the vault)
        "https://127.0.0.1:8444@evil.example/v1.0/users",  # userinfo trick
        "https://evil.example\\@127.0.0.1:8444/v1.0/users",
        "https://127.0.0.1:8444/v1.0/groups?$skiptoken=x",  # another collection
        "https://127.0.0.1:8444/v1.0/users/../groups",
        "https://127.0.0.1:8444/v1.0/users/8a0c4e7e-1b2d-4c5f-9a6b-7c8d9e0f1a2b",
        "https://127.0.0.1:8444/v1.0/users?$expand=manager&$skiptoken=x",  # options we never send
        "https://127.0.0.1:8444/v1.0/users?$filter=accountEnabled%20eq%20true",
        "https://127.0.0.1:8444/v1.0/users?$select=id,passwordProfile&$skiptoken=x",  # non-allowlisted field
        "https://127.0.0.1:8444/v1.0/users?$top=5000&$skiptoken=x",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=a&$skiptoken=b",
        "file:///etc/passwd",
    ],
)
def test_cursors_pointing_elsewhere_are_rejected_without_any_request(link: str) -> None:
    transport = FakeTransport()
    with pytest.raises(BadRequest, match="cursor is invalid"):
        service(transport).list_users(ListUsersQuery(cursor=encode_cursor(link, eventual=False)))
    assert transport.requests == []


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a" * (MAX_CURSOR_LENGTH + 1),
        raw_cursor([1]),
        raw_cursor({"v": 2, "u": USERS, "e": False}),
        raw_cursor({"v": 1, "u": 5, "e": False}),
        raw_cursor({"v": 1, "u": USERS, "e": "yes"}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
        "eyJ2IjoxfQ",
    ],
)
def test_malformed_cursors(cursor: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(cursor, check_link=lambda url: True)


# -- the service against a fake Graph ---------------------------------------------------------------------


def test_list_users_first_page() -> None:
    next_link = f"{USERS}?$top=2&$select=id,displayName&$skiptoken=abc"
    transport = FakeTransport(
        [
            respond(
                200,
                {
                    "@odata.context": "ctx",
                    "value": [
                        {"id": "1", "displayName": "Ada", "@odata.type": "#microsoft.graph.user", "extra": 1},
                        {"id": "2"},
                    ],
                    "@odata.nextLink": next_link,
                },
            )
        ]
    )
    page = service(transport).list_users(parse_list_query({"top": "2", "select": "displayName"}))
    [request] = transport.requests
    assert request.url == USERS
    assert request.params == {"$top": "2", "$select": "id,displayName"}
    assert "consistencylevel" not in request.headers
    assert page.items == [{"id": "1", "displayName": "Ada"}, {"id": "2", "displayName": None}]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor, check_link=lambda u: True).next_link == next_link
    assert page.to_json() == {"value": page.items, "nextCursor": page.next_cursor}


def test_search_uses_advanced_query_and_cursor_keeps_consistency_level() -> None:
    next_link = f"{USERS}?$search={ADA_SEARCH}&$count=true&$top=1&$skiptoken=abc"
    transport = FakeTransport(
        [
            respond(
                200,
                {"value": [{"id": "1", "mail": "ada@x"}], "@odata.count": 2, "@odata.nextLink": next_link},
            ),
            respond(200, {"value": [{"id": "2", "mail": None}]}),
        ]
    )
    users = service(transport)
    first = users.list_users(parse_list_query({"search": "ada", "top": "1", "select": "mail"}))
    assert transport.requests[0].params == {
        "$top": "1",
        "$select": "id,mail",
        "$search": '"displayName:ada" OR "mail:ada"',
        "$count": "true",
    }
    assert transport.requests[0].headers["consistencylevel"] == "eventual"
    assert first.next_cursor is not None
    second = users.list_users(ListUsersQuery(cursor=first.next_cursor))
    assert transport.requests[1].url == next_link and transport.requests[1].params is None
    assert transport.requests[1].headers["consistencylevel"] == "eventual"
    assert second.items == [{"id": "2", "mail": None}]  # projection from the link's $select
    assert second.next_cursor is None


def test_search_rejected_by_graph_is_the_callers_bad_request() -> None:
    transport = FakeTransport([graph_error(400, "Request_UnsupportedQuery", "Syntax error")])
    with pytest.raises(BadRequest, match="Syntax error"):
        service(transport).list_users(parse_list_query({"search": "ada"}))


def test_unexpected_next_link_from_graph_is_an_upstream_error() -> None:
    transport = FakeTransport(
        [respond(200, {"value": [], "@odata.nextLink": "https://evil.example/v1.0/users"})]
    )
    with pytest.raises(UpstreamError):
        service(transport).list_users(parse_list_query({}))


def test_get_user_and_not_found() -> None:
    transport = FakeTransport(
        [
            respond(200, {"id": "1", "userPrincipalName": "ada@contoso.com", "@odata.context": "x"}),
            graph_error(404, "Request_ResourceNotFound", "Resource 'x' does not exist", request_id="rid"),
        ]
    )
    users = service(transport)
    user = users.get_user("ada@contoso.com", ("id", "userPrincipalName"))
    assert user == {"id": "1", "userPrincipalName": "ada@contoso.com"}
    assert transport.requests[0].url == f"{USERS}/ada@contoso.com"
    assert transport.requests[0].params == {"$select": "id,userPrincipalName"}
    with pytest.raises(NotFound) as caught:
        users.get_user("8a0c4e7e-1b2d-4c5f-9a6b-7c8d9e0f1a2b")
    assert caught.value.graph_code == "Request_ResourceNotFound" and caught.value.graph_request_id == "rid"


def test_cursor_selection_must_be_allowlisted() -> None:
    link = f"{USERS}?$skiptoken=abc"
    transport = FakeTransport()
    bad = encode_cursor(link, eventual=False, select=("id", "passwordProfile"))
    with pytest.raises(BadRequest):
        service(transport).list_users(ListUsersQuery(cursor=bad))
    assert transport.requests == []


def test_cursor_selection_shapes_later_pages() -> None:
    transport = FakeTransport([respond(200, {"value": [{"id": "9", "department": "R&D", "mail": "x"}]})])
    cursor = encode_cursor(f"{USERS}?$skiptoken=abc", eventual=False, select=("id", "department"))
    page = service(transport).list_users(ListUsersQuery(cursor=cursor))
    assert page.items == [{"id": "9", "department": "R&D"}]


# -- cursors are caller input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "https://127.0.0.1:84\t44/v1.0/users?$skiptoken=x",  # urlsplit would drop the tab
        "https://127.0.0.1:8444/v1.0/us\ners?$skiptoken=x",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=x\r",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=a b",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=\u00e9",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=\x7f",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=",  # empty
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=a%20b",  # decoded: a space
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=a%09b",  # decoded: a tab
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=%C3%A9",  # decoded: non-ASCII
        "https://127.0.0.1:8444/v1.0/users?$top=5",  # no paging option
        "https://127.0.0.1:8444/v1.0/users?$skip=5&$skiptoken=x",  # both
        "https://127.0.0.1:8444/v1.0/users?$skip=abc",
        "https://127.0.0.1:8444/v1.0/users?$skip=-1",
        "https://127.0.0.1:8444/v1.0/users?$skip=1e3",
        "https://127.0.0.1:8444/v1.0/users?$count=true&$skiptoken=x",  # $count without $search
        f"https://127.0.0.1:8444/v1.0/users?$search={ADA_SEARCH}&$skiptoken=x",  # $search without $count
        f"https://127.0.0.1:8444/v1.0/users?$search={ADA_SEARCH}&$count=false&$skiptoken=x",
        f"https://127.0.0.1:8444/v1.0/users?$search={ADA_SEARCH}&$count=TRUE&$skiptoken=x",
        "https://127.0.0.1:8444/v1.0/users?$search=%22displayName%3Aada%22&$count=true&$skiptoken=x",
        "https://127.0.0.1:8444/v1.0/users?$search="
        + quote('"displayName:a\tb" OR "mail:a\tb"')
        + "&$count=true&$skiptoken=x",  # a search term the search parameter refuses
        "https://127.0.0.1:8444/v1.0/users?$search="
        + quote(search_expression("x" * 201))
        + "&$count=true&$skiptoken=x",
    ],
)
def test_cursor_links_are_checked_strictly_before_any_request(link: str) -> None:
    transport = FakeTransport()
    eventual = "$search" in link
    with pytest.raises(InvalidCursor) as caught:
        service(transport).list_users(ListUsersQuery(cursor=encode_cursor(link, eventual=eventual)))
    assert (caught.value.status, caught.value.code) == (400, "invalid_cursor")
    assert transport.requests == []


@pytest.mark.parametrize(
    ("link", "eventual"),
    [
        (f"{USERS}?$search={ADA_SEARCH}&$count=true&$skiptoken=x", False),  # would lose ConsistencyLevel
        (f"{USERS}?$skiptoken=x", True),  # ConsistencyLevel for a query that is not advanced
    ],
)
def test_cursor_consistency_level_must_match_its_query(link: str, eventual: bool) -> None:
    transport = FakeTransport()
    with pytest.raises(InvalidCursor):
        service(transport).list_users(ListUsersQuery(cursor=encode_cursor(link, eventual=eventual)))
    assert transport.requests == []


def test_graph_refusing_a_cursor_page_is_invalid_cursor_at_once() -> None:
    transport = FakeTransport(
        [graph_error(400, "Request_BadRequest", "Invalid skip token", request_id="r-1"), respond(200, {})]
    )
    cursor = encode_cursor(f"{USERS}?$skiptoken=stale", eventual=False)
    with pytest.raises(InvalidCursor) as caught:
        service(transport).list_users(ListUsersQuery(cursor=cursor))
    assert (caught.value.status, caught.value.code) == (400, "invalid_cursor")
    assert caught.value.graph_request_id == "r-1"
    assert len(transport.requests) == 1


def _search_cursor() -> str:
    link = f"{USERS}?$top=2&$select=id,mail&$search={ADA_SEARCH}&$count=true&$skiptoken=x"
    return encode_cursor(link, eventual=True, select=("id", "mail"))


@pytest.mark.parametrize(
    "repeated",
    [
        {"top": "2"},
        {"select": "mail"},
        {"select": "mail,id"},  # the same fields in another order
        {"search": "ada"},
        {"search": "  ada "},
        {"top": "2", "select": "mail", "search": "ada"},
    ],
)
def test_parameters_equal_to_what_the_cursor_encodes_are_accepted(repeated: dict[str, str]) -> None:
    transport = FakeTransport([respond(200, {"value": [{"id": "3", "mail": "ada@x"}]})])
    query = parse_list_query({"cursor": _search_cursor(), **repeated})
    page = service(transport).list_users(query)
    assert page.items == [{"id": "3", "mail": "ada@x"}]
    assert transport.requests[0].headers["consistencylevel"] == "eventual"


@pytest.mark.parametrize(
    ("repeated", "name"),
    [
        ({"top": "3"}, "top"),
        ({"select": "displayName"}, "select"),
        ({"select": "mail,displayName"}, "select"),
        ({"search": "bob"}, "search"),
        ({"top": "100"}, "top"),
    ],
)
def test_parameters_that_differ_from_the_cursor_are_rejected(repeated: dict[str, str], name: str) -> None:
    transport = FakeTransport()
    query = parse_list_query({"cursor": _search_cursor(), **repeated})
    with pytest.raises(BadRequest, match=f"^{name} differs") as caught:
        service(transport).list_users(query)
    assert caught.value.code == "invalid_parameter"
    assert transport.requests == []


def test_a_search_repeated_with_a_cursor_without_search_differs() -> None:
    transport = FakeTransport()
    cursor = encode_cursor(f"{USERS}?$skiptoken=x", eventual=False)
    with pytest.raises(BadRequest, match=r"^search differs"):
        service(transport).list_users(parse_list_query({"cursor": cursor, "search": "ada"}))
    # a next link without $top continues Graph's default page size
    transport.queue(respond(200, {"value": []}))
    service(transport).list_users(parse_list_query({"cursor": cursor, "top": "100"}))
    assert len(transport.requests) == 1
