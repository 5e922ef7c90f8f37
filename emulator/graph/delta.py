"""``GET /users/delta``: a full sync in pages (``$skiptoken``), ending in a ``$deltatoken`` link; later calls
with that link return the users changed since, and removed users as ``{"id", "@removed": {"reason"}}``.

As user-delta documents: a property never set is absent (not ``null``); one set to null after having a value
is ``null``; ``Prefer: return=minimal`` on a change round returns only the properties changed since the last
round (new users in full), answered with ``Preference-Applied: return=minimal``; ``$deltatoken=latest``
answers no users and a deltaLink for now; ``$filter=id eq '…' or id eq '…'`` (at most 50 ids) tracks only
those users; ``$select`` limits the tracked properties. Options are fixed on the first request and carried
in the tokens.

Change tracking uses the directory's ``change_seq``/``user_seq`` (every add, patch and delete bumps them). A
round of changes is paged by sequence number, so a user changed again while the client pages is simply
reported in the next round. ``reason`` is ``changed`` for a soft delete (restorable) and ``deleted`` for a
permanent one.
"""

from __future__ import annotations

import bisect
from typing import Any

from starlette.responses import Response

from emulator.directory.model import User
from emulator.graph.auth import user_read_level
from emulator.graph.collection import sorted_index
from emulator.graph.http import Ctx, GraphError, json_response
from emulator.graph.odata import BoolOp, Compare, FilterSyntaxError, Node, parse_filter
from emulator.graph.query import build_url, decode_token, encode_token
from emulator.graph.store import GraphStore, graph_store
from emulator.graph.users import USER_SCHEMA

DEFAULT_PAGE = 100  # [INFERRED] Graph picks its own page size; odata.maxpagesize overrides
MAX_FILTER_IDS = 50


def _sync_state_not_found() -> GraphError:
    # devblogs.microsoft.com/microsoft365dev/duration-of-change-tracking-tokens-for-identity-and-education-
    # resources: identity delta links live 7 days, then answer this BadRequest.
    return GraphError(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. "
        "The delta token is expired and data must be synchronized again.",
    )


def _expired() -> GraphError:
    return GraphError(
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    )


def _preferences(ctx: Ctx) -> tuple[int, bool, str | None]:
    """Page size, ``return=minimal``, and the ``Preference-Applied`` value."""
    size, minimal, applied = DEFAULT_PAGE, False, []
    for item in (ctx.header("prefer") or "").split(","):
        name, _, value = item.strip().partition("=")
        key, value = name.strip().lower(), value.strip()
        if key == "odata.maxpagesize" and value.isdigit():
            size = max(1, min(999, int(value)))
            applied.append(f"odata.maxpagesize={size}")
        elif key == "return" and value.lower() == "minimal":
            minimal = True
            applied.append("return=minimal")
    return size, minimal, ", ".join(applied) or None


def _filter_ids(text: str) -> list[str]:
    """The ids of ``id eq '…' [or id eq '…']…``; any other filter is refused, as user-delta documents."""
    try:
        node = parse_filter(text)
    except FilterSyntaxError as exc:
        raise GraphError(400, "BadRequest", "Invalid filter clause") from exc
    ids: list[str] = []

    def walk(n: Node) -> None:
        if isinstance(n, BoolOp) and n.op == "or":
            walk(n.left)
            walk(n.right)
        elif (
            isinstance(n, Compare)
            and n.op == "eq"
            and [p.lower() for p in n.prop.path] == ["id"]
            and n.value.kind in ("string", "guid")
        ):
            ids.append(str(n.value.value))
        else:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")

    walk(node)
    if len(ids) > MAX_FILTER_IDS:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            f"The $filter of a delta query can name at most {MAX_FILTER_IDS} ids.",  # [INFERRED] wording
        )
    return ids


def _project(
    store: GraphStore, user: User, select: list[str] | None, basic: bool, since: int | None, minimal: bool
) -> dict[str, Any]:
    full = USER_SCHEMA.project(user, select, basic)
    changed = store.property_seq.get(user.id, {})
    if minimal and since is not None and store.created_seq.get(user.id, 0) <= since:
        return {n: full[n] for n in full if changed.get(n, 0) > since} | {"id": user.id}
    return {n: v for n, v in full.items() if v is not None or n in changed} | {"id": user.id}


def _selected_change(store: GraphStore, uid: str, select: list[str], since: int) -> bool:
    """Whether the user is new since ``since`` or had one of the selected properties changed."""
    if store.created_seq.get(uid, 0) > since:
        return True
    changed = store.property_seq.get(uid)
    if changed is None:
        return True  # changed by other means than the control API: report it, as before
    return any(changed.get(name, 0) > since for name in select)


def _delta_link(ctx: Ctx, store: GraphStore, seq: int, payload: dict[str, Any]) -> str:
    final = {
        "e": "users/delta",
        "p": "changes",
        "s": seq,
        "sel": payload.get("sel"),
        "ids": payload.get("ids"),
        "ep": store.delta_epoch,
    }
    return build_url(
        ctx.origin, "/v1.0/users/delta", [("$deltatoken", encode_token(store.page_secret, final))]
    )


async def users_delta(ctx: Ctx) -> Response:
    basic = user_read_level(ctx.principal, None) == "basic"
    q = ctx.query
    for option in ("$orderby", "$top", "$search", "$count", "$skip", "$expand"):
        if option in q:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
    store = graph_store(ctx.state)
    directory = ctx.state.directory
    size, minimal, applied = _preferences(ctx)
    headers = {"Preference-Applied": applied} if applied else None
    token = q.get("$skiptoken") or q.get("$deltatoken")
    first = {
        "e": "users/delta",
        "p": "initial",
        "s": directory.change_seq,
        "k": None,
        "sel": q.get("$select"),
        "ids": _filter_ids(q["$filter"]) if "$filter" in q else None,
        "ep": store.delta_epoch,
    }
    if token is not None and token.strip().lower() == "latest" and "$deltatoken" in q:
        select = USER_SCHEMA.select(first["sel"])
        body = {"@odata.context": USER_SCHEMA.context_url(ctx.origin, select), "value": []}
        body["@odata.deltaLink"] = _delta_link(ctx, store, directory.change_seq, first)
        return json_response(body, headers=headers)
    if token is not None:
        payload = decode_token(store.page_secret, token)
        if payload is None or payload.get("e") != "users/delta":
            raise _expired()
        if payload.get("ep", 0) != store.delta_epoch:
            raise _sync_state_not_found()
    else:
        payload = first
    select = USER_SCHEMA.select(payload.get("sel"))
    wanted = set(payload["ids"]) if payload.get("ids") is not None else None
    items: list[dict[str, Any]] = []
    next_payload: dict[str, Any] | None = None
    if payload["p"] == "initial":
        index = sorted_index(ctx, USER_SCHEMA, directory.users, "id")
        after = payload.get("k")
        start = 0 if after is None else bisect.bisect_right(index.keys, (0, after.casefold(), after))
        candidates = [u for u in index.items[start:] if wanted is None or u.id in wanted]
        chunk = candidates[:size]
        items = [_project(store, u, select, basic, None, False) for u in chunk]
        if len(candidates) > size:
            next_payload = {**payload, "k": chunk[-1].id}
        delta_seq = int(payload["s"])
    else:
        since, upto = int(payload["s"]), int(payload.get("u", directory.change_seq))
        after_seq = int(payload.get("a", since))
        changed = sorted(
            (seq, uid)
            for uid, seq in directory.user_seq.items()
            if after_seq < seq <= upto and (wanted is None or uid in wanted)
        )
        for _seq, uid in changed[:size]:
            user = directory.user(uid)
            if user is not None and user.id == uid:
                if select is not None and not _selected_change(store, uid, select, since):
                    continue  # only the selected properties are tracked
                items.append(_project(store, user, select, basic, since, minimal))
            elif uid in directory.removed:
                reason = store.removed_reason.get(uid, "changed")
                items.append({"id": uid, "@removed": {"reason": reason}})
        if len(changed) > size:
            next_payload = {**payload, "p": "changes", "u": upto, "a": changed[size - 1][0]}
        delta_seq = upto
    body: dict[str, Any] = {"@odata.context": USER_SCHEMA.context_url(ctx.origin, select), "value": items}
    if next_payload is not None:
        body["@odata.nextLink"] = build_url(
            ctx.origin, "/v1.0/users/delta", [("$skiptoken", encode_token(store.page_secret, next_payload))]
        )
    else:
        body["@odata.deltaLink"] = _delta_link(ctx, store, delta_seq, payload)
    return json_response(body, headers=headers)
