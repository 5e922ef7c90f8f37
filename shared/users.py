"""Directory users, app-only: query validation, Graph calls and response shaping for ``/api/users``.

Requires the Microsoft Graph **application** permission ``User.Read.All`` (admin consented) on the app
registration. Every caller-supplied value is validated here before it reaches Graph; unknown query
parameters are rejected rather than ignored, so typos do not silently change results.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from shared.cursor import decode_cursor, encode_cursor
from shared.errors import BadRequest, NotFound, UpstreamError
from shared.graph import GraphClient

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
#: App role a caller needs to read users through this API (defined on this app's registration).
USERS_READ_ROLE = "Users.Read.All"
DEFAULT_TOP = 100
MAX_TOP = 999  # Graph's limit for /users
MAX_SEARCH_LENGTH = 200
#: Entra ID limits userPrincipalName to 113 characters (64 before the @).
MAX_USER_ID_LENGTH = 113

LIST_PARAMETERS = frozenset({"top", "select", "search", "cursor"})
GET_PARAMETERS = frozenset({"select"})
#: Query options a Graph next link for /users may carry; anything else means the link is not ours.
_NEXT_LINK_OPTIONS = frozenset({"$top", "$select", "$search", "$count", "$skiptoken", "$skip"})

_FIELD_SET = frozenset(USER_FIELDS)
_TOP = re.compile(r"^[0-9]{1,4}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_UPN = re.compile(rf"^[A-Za-z0-9'._!#^~+$&-]{{1,64}}@{_LABEL}(?:\.{_LABEL})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

USERS_PATH = "/v1.0/users"


@dataclasses.dataclass(frozen=True)
class ListUsersQuery:
    """A validated ``GET /api/users`` query: either a first-page query or a cursor."""

    top: int = DEFAULT_TOP
    select: tuple[str, ...] = DEFAULT_FIELDS
    search: str | None = None
    cursor: str | None = None


@dataclasses.dataclass(frozen=True)
class UsersPage:
    """One page of users, projected to the selected fields, and the cursor of the next page (if any)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.items, "nextCursor": self.next_cursor}


def _reject_unknown(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(
            f"Unknown query parameter(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}"
        )


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


def parse_list_query(params: Mapping[str, str]) -> ListUsersQuery:
    """Validate ``GET /api/users`` query parameters. Raises BadRequest with the reason."""
    _reject_unknown(params, LIST_PARAMETERS)
    cursor = params.get("cursor")
    if cursor is not None:
        if len(params) > 1:
            raise BadRequest("cursor cannot be combined with other parameters: it already encodes the query")
        return ListUsersQuery(cursor=cursor)
    top = DEFAULT_TOP
    if "top" in params:
        raw = params["top"].strip()
        if not _TOP.fullmatch(raw) or not 1 <= int(raw) <= MAX_TOP:
            raise BadRequest(f"top must be an integer from 1 to {MAX_TOP}")
        top = int(raw)
    select = parse_select(params["select"]) if "select" in params else DEFAULT_FIELDS
    search = params.get("search")
    if search is not None:
        search = search.strip()
        if not search or len(search) > MAX_SEARCH_LENGTH or _CONTROL.search(search):
            raise BadRequest(f"search must be 1 to {MAX_SEARCH_LENGTH} printable characters")
    return ListUsersQuery(top=top, select=select, search=search)


def parse_get_query(params: Mapping[str, str]) -> tuple[str, ...]:
    """Validate ``GET /api/users/{id}`` query parameters; returns the fields to select. Raises BadRequest."""
    _reject_unknown(params, GET_PARAMETERS)
    return parse_select(params["select"]) if "select" in params else DEFAULT_FIELDS


def validate_user_id(value: str) -> str:
    """A user's object id (GUID) or userPrincipalName; raises BadRequest for anything else."""
    if len(value) > MAX_USER_ID_LENGTH or not (_GUID.fullmatch(value) or _UPN.fullmatch(value)):
        raise BadRequest(
            "id must be a user's object id (GUID) or userPrincipalName "
            f"(at most {MAX_USER_ID_LENGTH} characters)"
        )
    return value


def search_expression(term: str) -> str:
    """Graph ``$search`` matching display name or mail. Inside an OData search phrase, ``"`` and ``\\``
    are escaped with a backslash."""
    escaped = term.replace("\\", "\\\\").replace('"', '\\"')
    return f'"displayName:{escaped}" OR "mail:{escaped}"'


def user_path(user_id: str) -> str:
    """Graph path of one user. A UPN starting with ``$`` must use the key syntax ``users('...')``."""
    if user_id.startswith("$"):
        return "users('" + quote(user_id.replace("'", "''"), safe="@$") + "')"
    return "users/" + quote(user_id, safe="@")


def project(item: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Only the selected fields (missing ones as null), without ``@odata`` annotations."""
    return {field: item.get(field) for field in fields}


class UsersService:
    """Reads directory users through Graph (application permission ``User.Read.All``)."""

    def __init__(self, graph: GraphClient) -> None:
        self._graph = graph

    def list_users(self, query: ListUsersQuery) -> UsersPage:
        """One page of users for ``query``.

        Raises:
            BadRequest: a cursor that is not one of ours, or a search Graph rejects.
            UpstreamThrottled, UpstreamError, CredentialUnavailable, ConfigurationError: see GraphClient.
        """
        if query.cursor is not None:
            cursor = decode_cursor(query.cursor, check_link=self.is_users_link, check_select=_is_selection)
            page = self._graph.get_page(cursor.next_link, eventual=cursor.eventual)
            fields, eventual = cursor.select or _fields_of(cursor.next_link), cursor.eventual
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

    def is_users_link(self, link: str) -> bool:
        """True for a Graph next link of ``/v1.0/users`` on the configured origin with known query options."""
        if not self._graph.is_graph_url(link) or urlsplit(link).path != USERS_PATH:
            return False
        seen: set[str] = set()
        for key, value in parse_qsl(urlsplit(link).query, keep_blank_values=True):
            if key not in _NEXT_LINK_OPTIONS or key in seen:
                return False
            seen.add(key)
            if key == "$select" and not set(value.split(",")) <= _FIELD_SET:
                return False
            if key == "$top" and not (_TOP.fullmatch(value) and 1 <= int(value) <= MAX_TOP):
                return False
            if key == "$count" and value not in ("true", "false"):
                return False
        return True


def _is_selection(fields: tuple[str, ...]) -> bool:
    return set(fields) <= _FIELD_SET


def _fields_of(link: str) -> tuple[str, ...]:
    for key, value in parse_qsl(urlsplit(link).query, keep_blank_values=True):
        if key == "$select":
            return tuple(dict.fromkeys(["id", *value.split(",")]))
    return DEFAULT_FIELDS
