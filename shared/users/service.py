"""Directory users, app-only: query validation, Graph calls and response shaping for ``/api/users``.

Requires the Microsoft Graph **application** permission ``User.Read.All`` (admin consented) on the app
registration. Every caller-supplied value is validated here before it reaches Graph; unknown query
parameters are rejected rather than ignored, so typos do not silently change results.

A cursor is caller input too: the Graph next link inside it must look exactly like one Graph gives for the
queries this module builds (:meth:`UsersService.link_query`), its ``$search`` must decode to a term the
``search`` parameter would accept, and Graph's 400 for a page it no longer has is the caller's
``invalid_cursor``. Cursors are not signed (the app has no key for it); these checks are what stands
between a forged cursor and Graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.core.cursor import Cursor, decode_cursor, encode_cursor, invalid_cursor
from shared.core.errors import BadRequest, InvalidCursor, NotFound, UpstreamError
from shared.core.params import reject_unknown
from shared.core.records import Record
from shared.graph.client import GraphClient
from shared.graph.links import link_options, pages_once
from shared.graph.users import user_path

#: Properties a caller may select (``select=``). ``id`` is always returned.
USER_FIELDS: tuple[str, ...] = (
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "department",
    "accountEnabled",
    "userType",
    "createdDateTime",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "preferredLanguage",
)
#: Graph's own default projection for users, used when ``select`` is absent.
DEFAULT_FIELDS: tuple[str, ...] = (
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "preferredLanguage",
)
#: The signed-in person's own profile (``GET /api/me``, Graph ``/me`` with ``User.Read``).
ME_FIELDS: tuple[str, ...] = DEFAULT_FIELDS
#: App role a caller needs to read users through this API (defined on this app's registration).
DEFAULT_TOP = 100  # Graph's own default page size for /users, so a next link without $top means it too
MAX_TOP = 999  # Graph's limit for /users
MAX_SEARCH_LENGTH = 200
#: Entra ID limits userPrincipalName to 113 characters (64 before the @).

LIST_PARAMETERS = frozenset({"top", "select", "search", "cursor"})
GET_PARAMETERS = frozenset({"select"})
#: Query options a Graph next link for /users may carry; anything else means the link is not ours.
_NEXT_LINK_OPTIONS = frozenset({"$top", "$select", "$search", "$count", "$skiptoken", "$skip"})

_FIELD_SET = frozenset(USER_FIELDS)
_TOP = r"^[0-9]{1,4}$"
_CONTROL = r"[\x00-\x1f\x7f]"
#: The paging option a next link carries, and its decoded value: a $skiptoken is opaque to us but printable
#: ASCII without spaces in every format Graph uses; a $skip is a count.
# One clause of search_expression's output: a quoted phrase where only \" and \\ are escapes.
_PHRASE = r'"{name}:((?:[^"\\]|\\["\\])*)"'
_SEARCH_EXPRESSION = _PHRASE.format(name="displayName") + " OR " + _PHRASE.format(name="mail")
_UNESCAPE = r'\\(["\\])'

USERS_PATH = "/v1.0/users"


class ListUsersQuery(Record):
    """A validated ``GET /api/users`` query: either a first-page query or a cursor.

    With a cursor, ``repeated`` names the other parameters the caller sent with it (clients often re-send
    the first page's query plus the cursor); each must equal what the cursor encodes.
    """

    top: int = DEFAULT_TOP
    select: tuple[str, ...] = DEFAULT_FIELDS
    search: str | None = None
    cursor: str | None = None
    repeated: frozenset[str] = frozenset()


class UsersLink(Record):
    """The query a users next link continues: page size, selected fields, search term (None: no search)."""

    top: int
    select: tuple[str, ...]
    search: str | None


class UsersPage(Record):
    """One page of users, projected to the selected fields, and the cursor of the next page (if any)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.items, "nextCursor": self.next_cursor}


def parse_select(value: str) -> tuple[str, ...]:
    """``select=a,b`` to a field tuple with ``id`` first and no duplicates. Raises BadRequest."""
    names = [name.strip() for name in value.split(",")]
    if not value.strip() or any(not name for name in names):
        raise BadRequest("select must be a comma-separated list of property names")
    unknown = [name for name in names if name not in _FIELD_SET]
    if unknown:
        raise BadRequest(
            f"select has unsupported properties: {', '.join(unknown)[:200]}. "
            f"Allowed: {', '.join(USER_FIELDS)}"
        )
    return tuple(dict.fromkeys(["id", *names]))


def validate_search(value: str) -> str:
    """A search term: 1 to MAX_SEARCH_LENGTH characters after trimming, no control characters."""
    term = value.strip()
    if not term or len(term) > MAX_SEARCH_LENGTH or re.search(_CONTROL, term):
        raise BadRequest(f"search must be 1 to {MAX_SEARCH_LENGTH} printable characters")
    return term


def parse_list_query(params: Mapping[str, str]) -> ListUsersQuery:
    """Validate ``GET /api/users`` query parameters. Raises BadRequest with the reason.

    ``cursor`` may come with ``top``, ``select`` and ``search``: they are validated as usual here and
    compared with the cursor's own query when it is decoded (:meth:`UsersService.list_users`).
    """
    reject_unknown(params, LIST_PARAMETERS)
    top = DEFAULT_TOP
    if "top" in params:
        raw = params["top"].strip()
        if not re.fullmatch(_TOP, raw) or not 1 <= int(raw) <= MAX_TOP:
            raise BadRequest(f"top must be an integer from 1 to {MAX_TOP}")
        top = int(raw)
    select = parse_select(params["select"]) if "select" in params else DEFAULT_FIELDS
    search = validate_search(params["search"]) if "search" in params else None
    cursor = params.get("cursor")
    repeated = frozenset(params) - {"cursor"} if cursor is not None else frozenset()
    return ListUsersQuery(top=top, select=select, search=search, cursor=cursor, repeated=repeated)


def parse_get_query(params: Mapping[str, str]) -> tuple[str, ...]:
    """Validate ``GET /api/users/{id}`` query parameters; returns the fields to select. Raises BadRequest."""
    reject_unknown(params, GET_PARAMETERS)
    return parse_select(params["select"]) if "select" in params else DEFAULT_FIELDS


def search_expression(term: str) -> str:
    """Graph ``$search`` matching display name or mail. Each clause is a double-quoted phrase in which
    ``"`` and ``\\`` are escaped with a backslash, as Graph documents for directory objects ("Use the
    $search query parameter"); any other character (``:`` included) stands for itself and is URL-encoded
    with the rest of the query."""
    escaped = term.replace("\\", "\\\\").replace('"', '\\"')
    return f'"displayName:{escaped}" OR "mail:{escaped}"'


def search_term_of(expression: str) -> str:
    """The term :func:`search_expression` turned into ``expression``, validated like the ``search``
    parameter. Raises InvalidCursor for anything else (a ``$search`` this module never builds)."""
    match = re.fullmatch(_SEARCH_EXPRESSION, expression)
    if match is None or match.group(1) != match.group(2):
        raise invalid_cursor()
    term = re.sub(_UNESCAPE, r"\1", match.group(1))
    try:
        valid = validate_search(term)
    except BadRequest as exc:
        raise invalid_cursor() from exc
    if valid != term or search_expression(term) != expression:
        raise invalid_cursor()
    return term


def project(item: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Only the selected fields (missing ones as null), without ``@odata`` annotations."""
    return {field: item.get(field) for field in fields}


class UsersService:
    """Reads directory users through Graph: with the app's client, application permission ``User.Read.All``;
    with a person's delegated client (:meth:`shared.edge.Call.delegated_graph`), delegated
    ``User.ReadBasic.All`` (what Graph lets that person see), with the same cursors."""

    def __init__(self, graph: GraphClient) -> None:
        self._graph = graph

    def list_users(self, query: ListUsersQuery) -> UsersPage:
        """One page of users for ``query``.

        Raises:
            InvalidCursor: a cursor that is not one of ours, or names a page Graph no longer has.
            BadRequest: a parameter that differs from what its cursor encodes, or a search Graph rejects.
            UpstreamThrottled, UpstreamError, CredentialUnavailable, ConfigurationError: see GraphClient.
        """
        if query.cursor is not None:
            cursor, fields = self._read_cursor(query.cursor, query)
            eventual = cursor.eventual
            try:
                page = self._graph.get_page(cursor.next_link, eventual=eventual, client_input=True)
            except BadRequest as exc:  # e.g. a $skiptoken Graph no longer honours: stale or forged
                raise InvalidCursor(
                    "cursor is no longer valid: start again from the first page",
                    graph_code=exc.graph_code,
                    graph_request_id=exc.graph_request_id,
                ) from exc
        else:
            params = {"$top": str(query.top), "$select": ",".join(query.select)}
            eventual = query.search is not None
            if query.search is not None:
                # Directory $search is an "advanced query": it needs $count=true and ConsistencyLevel.
                params["$search"] = search_expression(query.search)
                params["$count"] = "true"
            page = self._graph.get_page("users", params=params, eventual=eventual, client_input=eventual)
            fields = query.select
        next_cursor = None
        if page.next_link is not None:
            if not self.is_users_link(page.next_link):
                raise UpstreamError("Microsoft Graph returned a next link outside the users collection")
            next_cursor = encode_cursor(page.next_link, eventual=eventual, select=fields)
        return UsersPage(items=[project(item, fields) for item in page.items], next_cursor=next_cursor)

    def get_user(self, user_id: str, select: tuple[str, ...] = DEFAULT_FIELDS) -> dict[str, Any]:
        """One user by object id or userPrincipalName (validated by :func:`validate_user_id`).

        Raises:
            NotFound: no such user. BadRequest: Graph rejects the id. Others: see GraphClient.
        """
        try:
            body = self._graph.get_json(
                user_path(user_id), params={"$select": ",".join(select)}, client_input=True
            )
        except NotFound as exc:
            raise NotFound(
                "No user has this id or userPrincipalName",
                graph_code=exc.graph_code,
                graph_request_id=exc.graph_request_id,
            ) from exc
        return project(body, select)

    def me(self) -> dict[str, Any]:
        """The signed-in person's profile (Graph ``/me``; needs a delegated client and ``User.Read``).

        Raises:
            ClaimsChallenge, SignInRequired: the person's sign-in must be renewed. Others: see GraphClient.
        """
        return project(self._graph.get_json("me", params={"$select": ",".join(ME_FIELDS)}), ME_FIELDS)

    def is_users_link(self, link: str) -> bool:
        """True for a Graph next link of a query this module builds (see :meth:`link_query`)."""
        return self.link_query(link) is not None

    def link_query(self, link: str) -> UsersLink | None:
        """The query a Graph next link of ``/v1.0/users`` continues, or None when the link is not one:
        another origin or path, a character that is not printable ASCII, an option we never send, a
        repeated option, or a value we would not send (``$top`` 1-999, allowlisted ``$select``,
        ``$search`` as :func:`search_expression` writes it with ``$count=true``, exactly one of a
        printable ``$skiptoken`` or a numeric ``$skip``)."""
        if not self._graph.is_graph_url(link) or urlsplit(link).path != USERS_PATH:
            return None
        options = link_options(urlsplit(link).query, _NEXT_LINK_OPTIONS)
        if options is None:
            return None
        top = options.get("$top", str(DEFAULT_TOP))
        select = options.get("$select", ",".join(DEFAULT_FIELDS))
        if (
            not (re.fullmatch(_TOP, top) and 1 <= int(top) <= MAX_TOP)
            or not set(select.split(",")) <= _FIELD_SET
        ):
            return None
        if not pages_once(options):
            return None
        if options.get("$count") != ("true" if "$search" in options else None):  # we send both or neither
            return None
        try:
            search = search_term_of(options["$search"]) if "$search" in options else None
        except InvalidCursor:
            return None
        return UsersLink(top=int(top), select=tuple(dict.fromkeys(["id", *select.split(",")])), search=search)

    def _read_cursor(self, text: str, query: ListUsersQuery) -> tuple[Cursor, tuple[str, ...]]:
        """The decoded cursor and the fields its pages carry; checks the parameters repeated with it."""
        cursor = decode_cursor(text, check_link=self.is_users_link, check_select=_is_selection)
        link = self.link_query(cursor.next_link)
        if link is None or cursor.eventual != (
            link.search is not None
        ):  # $search needs ConsistencyLevel, nothing else does
            raise invalid_cursor()
        fields = cursor.select or link.select
        given = {"top": query.top, "select": frozenset(query.select), "search": query.search}
        encoded = {"top": link.top, "select": frozenset(fields), "search": link.search}
        for name in sorted(query.repeated):
            if given[name] != encoded[name]:
                raise BadRequest(
                    f"{name} differs from the query this cursor continues: send the cursor alone, or "
                    f"with the same top, select and search as the first page"
                )
        return cursor, fields


def _is_selection(fields: tuple[str, ...]) -> bool:
    return set(fields) <= _FIELD_SET
