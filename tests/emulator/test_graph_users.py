"""``/users``, ``/users/$count``, ``/users/{id|upn}`` and ``/me`` in process: paging, query options and the
advanced-query rules."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from emulator.directory.model import User, iso
from tests.emulator.graph_kit import InProcess, assert_graph_error

DEFAULT_PROPS = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
]
ADV = {"ConsistencyLevel": "eventual"}


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-users")), users=250)


@pytest.fixture
def fresh(g: InProcess) -> Iterator[InProcess]:
    yield g
    g.state.reset()


@pytest.fixture(scope="module")
def token(g: InProcess) -> str:
    return g.app_token("User.Read.All")


def users(g: InProcess) -> list[User]:
    return list(g.state.directory.users)


def get(g: InProcess, token: str, url: str, **headers: str):  # type: ignore[no-untyped-def]
    return g.request("GET", url, token, headers)


# ------------------------------------------------------------------------------------------ paging
def test_default_page_is_100_and_next_links_walk_every_user_once(g: InProcess, token: str) -> None:
    items, replies = g.collect("/v1.0/users", token)
    assert [len(r.json()["value"]) for r in replies] == [100, 100, 50]
    ids = [u["id"] for u in items]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {u.id for u in users(g)}
    first = replies[0].json()
    assert first["@odata.context"] == f"{g.origin}/v1.0/$metadata#users"
    assert first["@odata.nextLink"].startswith(f"{g.origin}/v1.0/users?")
    assert "$skiptoken=" in first["@odata.nextLink"]
    assert "@odata.count" not in first
    assert "@odata.nextLink" not in replies[-1].json()


@pytest.mark.parametrize("top", [1, 7, 99, 999])
def test_top_pages_have_that_size(g: InProcess, token: str, top: int) -> None:
    items, replies = g.collect(f"/v1.0/users?$top={top}&$select=id", token)
    assert len(items) == len({i["id"] for i in items}) == 250
    assert all(len(r.json()["value"]) == top for r in replies[:-1])
    assert all(f"$top={top}" in r.json()["@odata.nextLink"] for r in replies[:-1])


@pytest.mark.parametrize("top", ["0", "1000", "5000"])
def test_top_out_of_range(g: InProcess, token: str, top: str) -> None:
    assert_graph_error(
        get(g, token, f"/v1.0/users?$top={top}"),
        400,
        "Request_UnsupportedQuery",
        f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
    )


@pytest.mark.parametrize("top", ["-1", "abc", "1.5", ""])
def test_top_not_an_integer(g: InProcess, token: str, top: str) -> None:
    err = assert_graph_error(get(g, token, f"/v1.0/users?$top={top}"), 400, "BadRequest")
    assert f"Invalid value '{top}' for $top query option found." in err["message"]


def test_skip_is_not_supported_on_users(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/users?$top=5&$skip=5"),
        400,
        "Request_BadRequest",
        "'$skip' is not supported by the service.",
    )


def test_skiptoken_alone_is_enough_and_carries_the_query(g: InProcess, token: str) -> None:
    first = get(g, token, "/v1.0/users?$top=3&$select=displayName&$filter=startswith(displayName,'a')").json()
    link = first["@odata.nextLink"]
    only_token = f"/v1.0/users?$skiptoken={re.search(r'skiptoken=([^&]+)', link).group(1)}"  # type: ignore[union-attr]
    page = get(g, token, only_token).json()
    assert page["@odata.context"].endswith("#users(displayName)")
    assert all(set(u) == {"displayName"} and u["displayName"].lower().startswith("a") for u in page["value"])
    assert not {u["displayName"] for u in page["value"]} & {u["displayName"] for u in first["value"]}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3] + ("xyz" if not t.endswith("xyz") else "abc"),
        lambda t: "A" + t[1:] if t[0] != "A" else "B" + t[1:],
        lambda t: "garbage",
        lambda t: "",
    ],
)
def test_tampered_skiptoken_is_refused(g: InProcess, token: str, mangle) -> None:  # type: ignore[no-untyped-def]
    link = get(g, token, "/v1.0/users?$top=3").json()["@odata.nextLink"]
    tok = link.split("$skiptoken=")[1]
    assert_graph_error(
        get(g, token, f"/v1.0/users?$skiptoken={mangle(tok)}"),
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    )


def test_skiptoken_from_before_a_reset_is_expired(fresh: InProcess, token: str) -> None:
    link = get(fresh, token, "/v1.0/users?$top=3").json()["@odata.nextLink"]
    fresh.state.reset()
    new_token = fresh.app_token("User.Read.All")
    assert_graph_error(get(fresh, new_token, link), 400, "Directory_ExpiredPageToken")


def test_paging_is_stable_while_the_directory_changes(fresh: InProcess, token: str) -> None:
    directory = fresh.state.directory
    before = {u.id for u in directory.users}
    reply = get(fresh, token, "/v1.0/users?$top=50&$select=id").json()
    seen = [u["id"] for u in reply["value"]]
    unseen = sorted(before - set(seen))
    removed = unseen[10]
    directory.remove_user(removed)
    template = directory.users[-1]
    directory.add_user(
        User(
            id="00000000-0000-4000-8000-000000000000",
            user_principal_name="zz@x.example",
            display_name="Late Comer",
            given_name=None,
            surname=None,
            mail=None,
            job_title=None,
            department=None,
            account_enabled=True,
            user_type="Member",
            created=template.created,
            password="x",
            has_mailbox=False,
        )
    )
    link = reply["@odata.nextLink"]
    while link:
        page = get(fresh, token, link).json()
        seen += [u["id"] for u in page["value"]]
        link = page.get("@odata.nextLink")
    assert len(seen) == len(set(seen))
    assert (before - {removed}) <= set(seen)
    assert removed not in seen


# --------------------------------------------------------------------------------------- $select
def test_default_projection_is_the_documented_set(g: InProcess, token: str) -> None:
    user = get(g, token, "/v1.0/users?$top=1").json()["value"][0]
    assert list(user) == DEFAULT_PROPS


def test_select_returns_exactly_the_selected_properties(g: InProcess, token: str) -> None:
    reply = get(g, token, "/v1.0/users?$top=5&$select=DisplayName,accountEnabled, userType,createdDateTime")
    body = reply.json()
    assert (
        body["@odata.context"] == f"{g.origin}/v1.0/$metadata#users(displayName,accountEnabled,userType,"
        "createdDateTime)"
    )
    by_name = {u.display_name: u for u in users(g)}
    for item in body["value"]:
        assert set(item) == {"displayName", "accountEnabled", "userType", "createdDateTime"}
        model = by_name[item["displayName"]]
        assert item["accountEnabled"] is model.account_enabled
        assert item["createdDateTime"] == iso(model.created)


def test_select_unknown_property(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/users?$select=displayName,favouriteColour"),
        400,
        "Request_BadRequest",
        "Could not find a property named 'favouriteColour' on type 'microsoft.graph.user'.",
    )


def test_select_single_user_only_property_on_a_list_is_501(g: InProcess, token: str) -> None:
    assert_graph_error(get(g, token, "/v1.0/users?$select=aboutMe"), 501, "NotImplemented")
    uid = users(g)[0].id
    assert get(g, token, f"/v1.0/users/{uid}?$select=aboutMe,displayName").status_code == 200


def test_expand_is_not_supported(g: InProcess, token: str) -> None:
    assert_graph_error(get(g, token, "/v1.0/users?$expand=manager"), 400, "Request_BadRequest")


# --------------------------------------------------------------------------------------- $filter
def _pred(name: str):  # type: ignore[no-untyped-def]
    return {
        "upn_a": lambda u: u.user_principal_name.lower().startswith("a"),
        "guests": lambda u: u.user_type == "Guest",
        "disabled": lambda u: not u.account_enabled,
        "finance": lambda u: (u.department or "").lower() == "finance",
        "dn_sales_or_legal": lambda u: u.department in ("Sales", "Legal"),
        "mail_contoso": lambda u: (u.mail or "").lower().endswith("@contoso.onmicrosoft.com"),
        "not_member": lambda u: u.user_type != "Member",
        "jobtitle_null": lambda u: u.job_title is None,
        "ne_enabled": lambda u: u.account_enabled is not True,
        "not_startswith_a": lambda u: not u.display_name.lower().startswith("a"),
        "created_2y": lambda u: u.created >= CUTOFF_AT,
        "given_range": lambda u: "b" <= (u.given_name or "").casefold() <= "d",
        "member_and_mail": lambda u: u.user_type == "Member" and (u.mail or "").lower().startswith("s"),
    }[name]


# Midnight two years ago: a whole-day cutoff gives every pytest-xdist worker the same test ids (a cutoff to
# the second differed between workers collecting a second apart), and the expectation uses the same instant.
CUTOFF_AT = dt.datetime.combine(
    dt.datetime.now(dt.UTC).date() - dt.timedelta(days=730), dt.time(), tzinfo=dt.UTC
)
CUTOFF = CUTOFF_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
FILTERS = [
    ("startswith(userPrincipalName,'a')", False, "upn_a"),
    ("userType eq 'Guest'", False, "guests"),
    ("accountEnabled eq false", False, "disabled"),
    ("department eq 'FINANCE'", False, "finance"),
    ("department in ('Sales','Legal')", False, "dn_sales_or_legal"),
    (f"createdDateTime ge {CUTOFF}", False, "created_2y"),
    ("givenName ge 'b' and givenName le 'd'", False, "given_range"),
    ("userType eq 'Member' and startswith(mail,'s')", False, "member_and_mail"),
    ("endswith(mail,'@contoso.onmicrosoft.com')", True, "mail_contoso"),
    ("userType ne 'Member'", True, "not_member"),
    ("jobTitle eq null", True, "jobtitle_null"),
    ("accountEnabled ne true", True, "ne_enabled"),
    ("not(startswith(displayName,'a'))", True, "not_startswith_a"),
]


@pytest.mark.parametrize(("expr", "advanced", "pred"), FILTERS)
def test_filter_matrix(g: InProcess, token: str, expr: str, advanced: bool, pred: str) -> None:
    expected = {u.id for u in users(g) if _pred(pred)(u)}
    url = f"/v1.0/users?$filter={quote(expr)}&$select=id&$top=999"
    if advanced:
        plain = get(g, token, url)
        assert_graph_error(plain, 400, "Request_UnsupportedQuery")
        assert_graph_error(get(g, token, url, **ADV), 400, "Request_UnsupportedQuery")  # header but no $count
        assert_graph_error(
            get(g, token, url + "&$count=true"),
            400,
            "Request_BadRequest",
            "$count is not currently supported.",
        )
        url += "&$count=true"
        reply = get(g, token, url, **ADV)
        assert reply.json()["@odata.count"] == len(expected)
    else:
        reply = get(g, token, url)
    assert reply.status_code == 200, reply.text
    assert {u["id"] for u in reply.json()["value"]} == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("userType ne 'Member'", "Unsupported property filter clause operator 'NotEqualsMatch'."),
        ("endswith(mail,'.com')", "Unsupported Query."),
    ],
)
def test_advanced_only_filters_have_the_observed_messages(
    g: InProcess, token: str, expr: str, message: str
) -> None:
    assert_graph_error(
        get(g, token, f"/v1.0/users?$filter={quote(expr)}"), 400, "Request_UnsupportedQuery", message
    )


@pytest.mark.parametrize(
    ("expr", "status", "code", "message"),
    [
        ("displayName eq", 400, "BadRequest", "Invalid filter clause"),
        ("displayName eq 'x' and", 400, "BadRequest", "Invalid filter clause"),
        (
            "accountEnabled eq 'true'",
            400,
            "BadRequest",
            "A binary operator with incompatible types was detected. "
            "Found operand types 'Edm.Boolean' and 'Edm.String' for operator kind 'Equal'.",
        ),
        (
            "shoeSize eq 42",
            400,
            "Request_BadRequest",
            "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'.",
        ),
        (
            "officeLocation eq 'Paris'",
            400,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified for property 'officeLocation' of "
            "resource 'User'.",
        ),
        (
            "startswith(accountEnabled,'t')",
            400,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified for property 'accountEnabled' of "
            "resource 'User'.",
        ),
        (
            "contains(displayName,'a')",
            400,
            "Request_UnsupportedQuery",
            "Unsupported property filter clause operator 'Contains'.",
        ),
    ],
)
def test_filter_errors(g: InProcess, token: str, expr: str, status: int, code: str, message: str) -> None:
    assert_graph_error(get(g, token, f"/v1.0/users?$filter={quote(expr)}"), status, code, message)


def test_filter_on_id_and_upn_in_list(g: InProcess, token: str) -> None:
    some = users(g)[:3]
    ids = ",".join(f"'{u.id}'" for u in some)
    reply = get(g, token, f"/v1.0/users?$filter=id in ({ids})&$select=id")
    assert {u["id"] for u in reply.json()["value"]} == {u.id for u in some}
    upn = some[1].user_principal_name.upper()
    reply = get(g, token, f"/v1.0/users?$filter=userPrincipalName eq '{quote(upn)}'&$select=id")
    assert [u["id"] for u in reply.json()["value"]] == [some[1].id]


# -------------------------------------------------------------------------------- $search, $count
def test_search_needs_the_consistency_header(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, '/v1.0/users?$search="displayName:al"'),
        400,
        "Request_UnsupportedQuery",
        "Request with $search query parameter only works through MSGraph with a special request "
        "header: 'ConsistencyLevel: eventual'",
    )


def _tokens(value: str | None) -> list[str]:
    return re.findall(r"\w+", (value or "").casefold())


@pytest.mark.parametrize("term", ["al", "ad", "mar", "ø", "zz"])
def test_search_is_a_tokenized_prefix_match(g: InProcess, token: str, term: str) -> None:
    reply = get(g, token, f'/v1.0/users?$search="displayName:{quote(term)}"&$select=id&$top=999', **ADV)
    expected = {u.id for u in users(g) if any(t.startswith(term) for t in _tokens(u.display_name))}
    assert {u["id"] for u in reply.json()["value"]} == expected


def test_search_or_and(g: InProcess, token: str) -> None:
    reply = get(
        g, token, '/v1.0/users?$search="displayName:alex" OR "mail:member"&$select=id&$top=999', **ADV
    )
    ids = {u["id"] for u in reply.json()["value"]}
    assert {g.state.ids.admin.id, g.state.ids.member.id} <= ids
    reply = get(g, token, '/v1.0/users?$search="displayName:alex" AND "mail:admin"&$select=id', **ADV)
    assert [u["id"] for u in reply.json()["value"]] == [g.state.ids.admin.id]


@pytest.mark.parametrize("search", ["displayName:al", '"displayName:al" OR', '"nope:al"', '"al"'])
def test_search_syntax_errors(g: InProcess, token: str, search: str) -> None:
    reply = get(g, token, f"/v1.0/users?$search={quote(search)}", **ADV)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] in ("BadRequest", "Request_UnsupportedQuery")


def test_count_only_on_the_first_page_and_equals_the_items(g: InProcess, token: str) -> None:
    items, replies = g.collect("/v1.0/users?$count=true&$top=100&$filter=startswith(mail,'a')", token, **ADV)
    assert replies[0].json()["@odata.count"] == len(items)
    assert all("@odata.count" not in r.json() for r in replies[1:])


def test_count_without_header(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/users?$count=true"),
        400,
        "Request_BadRequest",
        "$count is not currently supported.",
    )
    assert_graph_error(
        get(g, token, "/v1.0/users?$count=maybe", **ADV),
        400,
        "BadRequest",
        "'maybe' is not a valid count option.",
    )


def test_users_count_endpoint(g: InProcess, token: str) -> None:
    assert_graph_error(get(g, token, "/v1.0/users/$count"), 400, "Request_BadRequest")
    reply = get(g, token, "/v1.0/users/$count", **ADV)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert reply.text == "250"
    reply = get(g, token, "/v1.0/users/$count?$filter=userType eq 'Guest'", **ADV)
    assert int(reply.text) == sum(1 for u in users(g) if u.user_type == "Guest")


# -------------------------------------------------------------------------------------- $orderby
def test_orderby_display_name(g: InProcess, token: str) -> None:
    items, _ = g.collect("/v1.0/users?$orderby=displayName&$select=displayName&$top=60", token)
    names = [u["displayName"] for u in items]
    assert names == sorted(names, key=str.casefold) and len(names) == 250


def test_orderby_upn_desc_needs_advanced(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/users?$orderby=userPrincipalName desc"),
        400,
        "Request_UnsupportedQuery",
        "Sorting not supported for current query.",
    )
    items, _ = g.collect(
        "/v1.0/users?$orderby=userPrincipalName desc&$count=true&$select=userPrincipalName&$top=70",
        token,
        **ADV,
    )
    upns = [u["userPrincipalName"] for u in items]
    assert upns == sorted(upns, key=str.casefold, reverse=True) and len(upns) == 250


def test_orderby_rules(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/users?$orderby=createdDateTime"),
        400,
        "Request_UnsupportedQuery",
        "Unsupported sort property 'createdDateTime' for 'User'.",
    )
    assert_graph_error(
        get(g, token, "/v1.0/users?$orderby=displayName&$filter=startswith(displayName,'a')"),
        400,
        "Request_UnsupportedQuery",
        "Sorting not supported for current query.",
    )
    assert_graph_error(
        get(g, token, "/v1.0/users?$orderby=businessPhones"),
        400,
        "Request_UnsupportedQuery",
        "Unsupported sort property 'businessPhones' for 'User'.",
    )
    assert_graph_error(get(g, token, "/v1.0/users?$orderby=height"), 400, "Request_BadRequest")
    assert_graph_error(get(g, token, "/v1.0/users?$orderby=displayName sideways"), 400, "BadRequest")
    reply = get(
        g,
        token,
        "/v1.0/users?$orderby=createdDateTime desc&$count=true&$filter=userType eq 'Member'"
        "&$select=createdDateTime&$top=999",
        **ADV,
    )
    stamps = [u["createdDateTime"] for u in reply.json()["value"]]
    assert stamps == sorted(stamps, reverse=True)


# ------------------------------------------------------------------------------- single user, /me
def test_get_user_by_id_and_by_upn(g: InProcess, token: str) -> None:
    admin = g.state.ids.admin
    by_id = get(g, token, f"/v1.0/users/{admin.id}").json()
    by_upn = get(g, token, f"/v1.0/users/{admin.user_principal_name.upper()}").json()
    assert by_id == by_upn
    assert by_id["@odata.context"] == f"{g.origin}/v1.0/$metadata#users/$entity"
    assert list(by_id)[1:] == DEFAULT_PROPS and by_id["id"] == admin.id
    guest = next(u for u in users(g) if "#EXT#" in u.user_principal_name)
    reply = get(g, token, f"/v1.0/users/{quote(guest.user_principal_name)}?$select=id,userType")
    assert reply.json() == {
        "@odata.context": f"{g.origin}/v1.0/$metadata#users(id,userType)/$entity",
        "id": guest.id,
        "userType": "Guest",
    }


@pytest.mark.parametrize("who", ["00000000-1111-2222-3333-444444444444", "nobody@contoso.onmicrosoft.com"])
def test_unknown_user(g: InProcess, token: str, who: str) -> None:
    assert_graph_error(
        get(g, token, f"/v1.0/users/{who}"),
        404,
        "Request_ResourceNotFound",
        f"Resource '{who}' does not exist or one of its queried reference-property objects are not present.",
    )


def test_me_is_delegated_only(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/me"),
        400,
        "BadRequest",
        "/me request is only valid with delegated authentication flow.",
    )
    member = g.state.ids.member
    me = get(g, g.user_token(member, "User.Read"), "/v1.0/me?$select=displayName,mail").json()
    assert me == {
        "@odata.context": f"{g.origin}/v1.0/$metadata#users(displayName,mail)/$entity",
        "displayName": member.display_name,
        "mail": member.mail,
    }


# ------------------------------------------------------------------------ options, headers, routing
def test_unknown_and_duplicate_options(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/users?$frobnicate=1"),
        400,
        "BadRequest",
        "The query parameter '$frobnicate' is not supported.",
    )
    assert_graph_error(
        get(g, token, "/v1.0/users?$top=1&$TOP=2"),
        400,
        "BadRequest",
        "Query option '$top' was specified more than once, but it must be specified at most once.",
    )
    assert get(g, token, "/v1.0/users?top=1&whatever=x").status_code == 200  # no $: ignored


def test_common_headers_on_success_and_error(g: InProcess, token: str) -> None:
    for reply in (
        get(g, token, "/v1.0/users?$top=1", **{"client-request-id": "my-correlation-id"}),
        get(g, token, "/v1.0/users/nope", **{"client-request-id": "my-correlation-id"}),
    ):
        assert reply.headers["client-request-id"] == "my-correlation-id"
        assert re.fullmatch(r"[0-9a-f-]{36}", reply.headers["request-id"])
        assert "ServerInfo" in reply.headers["x-ms-ags-diagnostic"]
        assert reply.headers["strict-transport-security"].startswith("max-age=")
    ok = get(g, token, "/v1.0/users?$top=1")
    assert ok.headers["client-request-id"] == ok.headers["request-id"]
    assert ok.headers["content-type"].startswith("application/json;odata.metadata=minimal")


def test_unknown_segments_and_methods(g: InProcess, token: str) -> None:
    assert_graph_error(
        get(g, token, "/v1.0/frobs"), 400, "BadRequest", "Resource not found for the segment 'frobs'."
    )
    assert_graph_error(
        get(g, token, "/v1.0/users/x/frobs"), 400, "BadRequest", "Resource not found for the segment 'frobs'."
    )
    assert_graph_error(get(g, token, "/v2.0/users"), 400, "BadRequest", "Invalid version: v2.0")
    assert_graph_error(g.request("DELETE", "/v1.0/users", token), 405, "Request_BadRequest")
