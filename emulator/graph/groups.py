"""``/groups``, ``/groups/{id}``, ``/groups/{id}/members`` (and ``members/$ref`` to add one), ``memberOf``,
``transitiveMemberOf`` (each also cast to ``microsoft.graph.group``), ``checkMemberGroups`` and
``checkMemberObjects`` (both transitive; see :mod:`emulator.graph.membership`).

Relationship lists are ``directoryObject`` collections: each item names its ``@odata.type``; the cast
``…/microsoft.graph.group`` is a ``groups`` collection. A caller that may read memberships but not users
(GroupMember.Read.All alone) gets user members with ``@odata.type`` and ``id`` only, as Graph documents for
directoryObject relationships. ``$filter`` on a relationship takes ``id eq '…'`` and ``id in (…)`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from emulator.directory.model import Group, iso
from emulator.graph.auth import GROUP_READ, USER_READ_ALL, require
from emulator.graph.collection import list_directory
from emulator.graph.entity import EntitySchema
from emulator.graph.filters import Compiler, Field, FilterPolicy
from emulator.graph.http import Ctx, GraphError, json_response, read_json
from emulator.graph.membership import add_member, direct_groups, direct_members, transitive_groups
from emulator.graph.odata import FilterSyntaxError, parse_filter
from emulator.graph.query import build_url, decode_token, encode_token, parse_int_option
from emulator.graph.routing import not_found, target_user
from emulator.graph.store import graph_store
from emulator.graph.users import USER_SCHEMA

STRING_OPS = frozenset({"eq", "ne", "ge", "le", "in", "startswith", "endswith", "null"})
GROUP_WRITE = frozenset({"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"})
_UNSUPPORTED = ("Request_UnsupportedQuery", "Unsupported Query.")


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


class _RelationFilterPolicy(FilterPolicy):
    def unknown_property(self, name: str) -> Exception:
        return GraphError(400, *_UNSUPPORTED)

    def unsupported(self, field: str, op: str) -> Exception:
        return GraphError(400, *_UNSUPPORTED)

    def incompatible(self, message: str) -> Exception:
        return GraphError(400, "BadRequest", message)


_ID_ONLY = {"id": Field("id", "string", lambda o: o.id, frozenset({"eq", "in"}))}


def _relation_filter(text: str) -> Callable[[Any], bool]:
    """``id eq '…'`` / ``id in (…)`` (with ``or``) on a relationship; anything else is Unsupported Query."""
    try:
        node = parse_filter(text)
    except FilterSyntaxError as exc:
        raise GraphError(400, "BadRequest", "Invalid filter clause") from exc
    compiler = Compiler(_ID_ONLY, _RelationFilterPolicy())
    predicate = compiler.compile(node)
    if compiler.advanced:
        raise GraphError(400, *_UNSUPPORTED)
    return predicate


def _relation_page(
    ctx: Ctx,
    path: str,
    items: list[Any],
    project: Callable[[Any, list[str] | None], dict[str, Any]],
    schema: EntitySchema,
    context: str = "directoryObjects",
) -> Response:
    """Offset paging of a relationship, with a signed ``$skiptoken``; ``$orderby``/``$search`` refused."""
    q = ctx.query
    offset, top, select_text, filter_text = 0, 100, q.get("$select"), q.get("$filter")
    if "$skiptoken" in q:
        payload = decode_token(graph_store(ctx.state).page_secret, q["$skiptoken"])
        if payload is None or payload.get("e") != path:
            raise GraphError(
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        offset, top = int(payload["i"]), int(payload["t"])
        select_text, filter_text = payload.get("sel"), payload.get("f")
    else:
        if "$skip" in q:
            raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
        if "$orderby" in q or "$search" in q:
            raise GraphError(400, *_UNSUPPORTED)
        if "$top" in q:
            top = parse_int_option("$top", q["$top"])
            if not 1 <= top <= 999:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
                )
    select = schema.select(select_text)
    if filter_text is not None:
        keep = _relation_filter(filter_text)
        items = [o for o in items if keep(o)]
    page = items[offset : offset + top]
    body: dict[str, Any] = {
        "@odata.context": f"{ctx.origin}/v1.0/$metadata#{context}",
        "value": [project(o, select) for o in page],
    }
    if offset + top < len(items):
        token = encode_token(
            graph_store(ctx.state).page_secret,
            {"e": path, "i": offset + top, "t": top, "sel": select_text, "f": filter_text},
        )
        params = [("$top", str(top))] if top != 100 else []
        if select_text:
            params.append(("$select", select_text))
        body["@odata.nextLink"] = build_url(ctx.origin, path, [*params, ("$skiptoken", token)])
    return json_response(body)


def _group_item(group: Group, select: list[str] | None, typed: bool = True) -> dict[str, Any]:
    """A group in a relationship list: ``$select`` names it shares with users are kept, others dropped."""
    names = [n for n in select if n in GROUP_PROPERTIES] if select else None
    body = GROUP_SCHEMA.project(group, names or None) if not select or names else {"id": group.id}
    return {"@odata.type": "#microsoft.graph.group", **body} if typed else body


async def list_members(ctx: Ctx) -> Response:
    require(ctx.principal, GROUP_READ)
    group = _group(ctx)
    full = ctx.principal.has_any(USER_READ_ALL)
    basic = not full and ctx.principal.has_any(frozenset({"User.ReadBasic.All"}))

    def project(obj: Any, select: list[str] | None) -> dict[str, Any]:
        if isinstance(obj, Group):
            return _group_item(obj, select)
        if not full and not basic:
            return {"@odata.type": "#microsoft.graph.user", "id": obj.id}
        return {"@odata.type": "#microsoft.graph.user", **USER_SCHEMA.project(obj, select, basic)}

    members = direct_members(ctx.state.directory, group)
    return _relation_page(ctx, f"/v1.0/groups/{group.id}/members", members, project, USER_SCHEMA)


async def add_member_ref(ctx: Ctx) -> Response:
    """``POST /groups/{id}/members/$ref {"@odata.id": ".../directoryObjects/{id}"}`` → 204."""
    require(ctx.principal, GROUP_WRITE)
    group = _group(ctx)
    body = await read_json(ctx.request)
    ref = body.get("@odata.id") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not ref.strip():
        raise GraphError(400, "BadRequest", "The @odata.id of the reference is missing.")
    segments = [p for p in ref.split("?")[0].rstrip("/").split("/") if p]
    if len(segments) < 2 or segments[-2].lower() not in ("directoryobjects", "users", "groups"):
        raise GraphError(400, "BadRequest", f"Invalid URL format specified in @odata.id: '{ref}'.")
    add_member(ctx.state.directory, group, segments[-1])
    from emulator.graph.notify_events import record_group_change  # notify_events imports this package

    record_group_change(ctx.state, group.id)
    return Response(status_code=204)


def _membership_list(ctx: Ctx, relation: str, transitive: bool) -> Response:
    require(ctx.principal, GROUP_READ)
    user = target_user(ctx)
    cast = ctx.request.url.path.rstrip("/").endswith("/microsoft.graph.group")
    base = f"/v1.0/users/{user.id}" if "uid" in ctx.request.path_params else "/v1.0/me"
    path = f"{base}/{relation}" + ("/microsoft.graph.group" if cast else "")
    directory = ctx.state.directory
    groups = transitive_groups(directory, user.id) if transitive else direct_groups(directory, user.id)

    def project(group: Any, select: list[str] | None) -> dict[str, Any]:
        return _group_item(group, select, typed=not cast)

    context = "groups" if cast else "directoryObjects"
    return _relation_page(ctx, path, groups, project, GROUP_SCHEMA, context)


async def member_of(ctx: Ctx) -> Response:
    return _membership_list(ctx, "memberOf", transitive=False)


async def transitive_member_of(ctx: Ctx) -> Response:
    return _membership_list(ctx, "transitiveMemberOf", transitive=True)


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
    mine = {g.id for g in transitive_groups(ctx.state.directory, user.id)}
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
