"""``/groups``, ``/groups/{id}``, ``/groups/{id}/members``, ``memberOf``, ``checkMemberGroups`` and
``checkMemberObjects``.

Relationship lists are ``directoryObject`` collections: each item names its ``@odata.type``. A caller that
may read memberships but not users (GroupMember.Read.All alone) gets user members with ``@odata.type`` and
``id`` only, as Graph documents for directoryObject relationships.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from emulator.directory.model import Group, iso
from emulator.graph.auth import GROUP_READ, USER_READ_ALL, require
from emulator.graph.collection import list_directory
from emulator.graph.entity import EntitySchema
from emulator.graph.filters import Field
from emulator.graph.http import Ctx, GraphError, json_response, read_json
from emulator.graph.query import build_url, decode_token, encode_token, parse_int_option
from emulator.graph.routing import not_found, target_user
from emulator.graph.store import graph_store
from emulator.graph.users import USER_SCHEMA

STRING_OPS = frozenset({"eq", "ne", "ge", "le", "in", "startswith", "endswith", "null"})


def _mail(g: Group) -> str | None:
    return f"{g.mail_nickname}@contoso.onmicrosoft.com" if g.mail_enabled else None


GROUP_PROPERTIES: dict[str, Any] = {
    "id": lambda g: g.id,
    "classification": lambda g: None,
    "createdDateTime": lambda g: iso(g.created),
    "description": lambda g: g.description,
    "displayName": lambda g: g.display_name,
    "groupTypes": lambda g: list(g.group_types),
    "mail": _mail,
    "mailEnabled": lambda g: g.mail_enabled,
    "mailNickname": lambda g: g.mail_nickname,
    "proxyAddresses": lambda g: [f"SMTP:{_mail(g)}"] if g.mail_enabled else [],
    "renewedDateTime": lambda g: iso(g.created),
    "securityEnabled": lambda g: g.security_enabled,
    "visibility": lambda g: "Public" if "Unified" in g.group_types else None,
}

GROUP_SCHEMA = EntitySchema(
    type_name="microsoft.graph.group",
    resource="Group",
    entity_set="groups",
    properties=GROUP_PROPERTIES,
    default_select=list(GROUP_PROPERTIES),
    filters={
        "id": Field("id", "string", lambda g: g.id, frozenset({"eq", "ne", "in"})),
        "displayName": Field("displayName", "string", lambda g: g.display_name, STRING_OPS),
        "mailNickname": Field("mailNickname", "string", lambda g: g.mail_nickname, STRING_OPS),
        "mail": Field("mail", "string", _mail, STRING_OPS),
        "mailEnabled": Field("mailEnabled", "bool", lambda g: g.mail_enabled, frozenset({"eq", "ne"})),
        "securityEnabled": Field(
            "securityEnabled", "bool", lambda g: g.security_enabled, frozenset({"eq", "ne"})
        ),
        "groupTypes": Field("groupTypes", "strings", lambda g: list(g.group_types), frozenset({"any", "eq"})),
    },
    sort_basic=frozenset({"displayName"}),
    sort_advanced=frozenset({"createdDateTime", "mailNickname"}),
    sort_values={
        "id": lambda g: g.id,
        "displayName": lambda g: g.display_name,
        "createdDateTime": lambda g: g.created,
        "mailNickname": lambda g: g.mail_nickname,
    },
    search_fields={
        "displayname": lambda g: g.display_name,
        "description": lambda g: g.description,
        "mailnickname": lambda g: g.mail_nickname,
    },
)


def _group(ctx: Ctx) -> Group:
    gid = ctx.request.path_params["gid"]
    group = ctx.state.directory.group(gid)
    if group is None:
        raise not_found(gid)
    return group


async def list_groups(ctx: Ctx) -> Response:
    require(ctx.principal, GROUP_READ)
    return list_directory(ctx, GROUP_SCHEMA, ctx.state.directory.groups, "/v1.0/groups")


async def get_group(ctx: Ctx) -> Response:
    require(ctx.principal, GROUP_READ)
    group = _group(ctx)
    select = GROUP_SCHEMA.select(ctx.query.get("$select"))
    return json_response(
        {
            "@odata.context": GROUP_SCHEMA.context_url(ctx.origin, select, entity=True),
            **GROUP_SCHEMA.project(group, select),
        }
    )


def _relation_page(
    ctx: Ctx,
    path: str,
    items: list[Any],
    project: Callable[[Any, list[str] | None], dict[str, Any]],
    schema: EntitySchema,
) -> Response:
    """Offset paging of a relationship, with a signed ``$skiptoken``; ``$filter``/``$orderby`` refused."""
    q = ctx.query
    offset, top, select_text = 0, 100, q.get("$select")
    if "$skiptoken" in q:
        payload = decode_token(graph_store(ctx.state).page_secret, q["$skiptoken"])
        if payload is None or payload.get("e") != path:
            raise GraphError(
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        offset, top, select_text = int(payload["i"]), int(payload["t"]), payload.get("sel")
    else:
        if "$skip" in q:
            raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
        if "$filter" in q or "$orderby" in q or "$search" in q:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        if "$top" in q:
            top = parse_int_option("$top", q["$top"])
            if not 1 <= top <= 999:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
                )
    select = schema.select(select_text)
    page = items[offset : offset + top]
    body: dict[str, Any] = {
        "@odata.context": f"{ctx.origin}/v1.0/$metadata#directoryObjects",
        "value": [project(o, select) for o in page],
    }
    if offset + top < len(items):
        token = encode_token(
            graph_store(ctx.state).page_secret, {"e": path, "i": offset + top, "t": top, "sel": select_text}
        )
        params = [("$top", str(top))] if top != 100 else []
        if select_text:
            params.append(("$select", select_text))
        body["@odata.nextLink"] = build_url(ctx.origin, path, [*params, ("$skiptoken", token)])
    return json_response(body)


async def list_members(ctx: Ctx) -> Response:
    require(ctx.principal, GROUP_READ)
    group = _group(ctx)
    directory = ctx.state.directory
    members = [u for u in (directory.user(uid) for uid in group.members) if u is not None]
    full = ctx.principal.has_any(USER_READ_ALL)
    basic = not full and ctx.principal.has_any(frozenset({"User.ReadBasic.All"}))

    def project(user: Any, select: list[str] | None) -> dict[str, Any]:
        if not full and not basic:
            return {"@odata.type": "#microsoft.graph.user", "id": user.id}
        return {"@odata.type": "#microsoft.graph.user", **USER_SCHEMA.project(user, select, basic)}

    return _relation_page(ctx, f"/v1.0/groups/{group.id}/members", members, project, USER_SCHEMA)


def _member_groups(ctx: Ctx, user_id: str) -> list[Group]:
    return [g for g in ctx.state.directory.groups if user_id in g.members]


async def member_of(ctx: Ctx) -> Response:
    require(ctx.principal, GROUP_READ)
    user = target_user(ctx)
    path = f"/v1.0/users/{user.id}/memberOf" if "uid" in ctx.request.path_params else "/v1.0/me/memberOf"

    def project(group: Any, select: list[str] | None) -> dict[str, Any]:
        return {"@odata.type": "#microsoft.graph.group", **GROUP_SCHEMA.project(group, select)}

    return _relation_page(ctx, path, _member_groups(ctx, user.id), project, GROUP_SCHEMA)


async def _check(ctx: Ctx, key: str) -> Response:
    require(ctx.principal, GROUP_READ)
    body = await read_json(ctx.request)
    user = target_user(ctx)
    ids = body.get(key) if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise GraphError(
            400, "Request_BadRequest", f"Invalid request: '{key}' must be a collection of strings."
        )
    if len(ids) > 20:
        raise GraphError(400, "Request_BadRequest", f"The '{key}' collection can contain at most 20 ids.")
    mine = {g.id for g in _member_groups(ctx, user.id)}
    return json_response(
        {
            "@odata.context": f"{ctx.origin}/v1.0/$metadata#Collection(Edm.String)",
            "value": [i for i in ids if i in mine],
        }
    )


async def check_member_groups(ctx: Ctx) -> Response:
    return await _check(ctx, "groupIds")


async def check_member_objects(ctx: Ctx) -> Response:
    return await _check(ctx, "ids")
