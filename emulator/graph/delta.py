"""``GET /users/delta``: a full sync in pages (``$skiptoken``), ending in a ``$deltatoken`` link; later calls
with that link return the users changed since, and removed users as ``{"id", "@removed": {"reason"}}``.

Change tracking uses the directory's ``change_seq``/``user_seq`` (every add, patch and delete bumps them). A
round of changes is paged by sequence number, so a user changed again while the client pages is simply
reported in the next round. ``reason`` is ``changed`` for a soft delete (restorable) and ``deleted`` for a
permanent one.
"""

from __future__ import annotations

import bisect
from typing import Any

from starlette.responses import Response

from emulator.graph.auth import user_read_level
from emulator.graph.collection import sorted_index
from emulator.graph.http import Ctx, GraphError, json_response
from emulator.graph.query import build_url, decode_token, encode_token
from emulator.graph.store import graph_store
from emulator.graph.users import USER_SCHEMA

DEFAULT_PAGE = 100  # [INFERRED] Graph picks its own page size; odata.maxpagesize overrides


def _expired() -> GraphError:
    return GraphError(
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    )


def _page_size(ctx: Ctx) -> tuple[int, str | None]:
    for item in (ctx.header("prefer") or "").split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            size = max(1, min(999, int(value.strip())))
            return size, f"odata.maxpagesize={size}"
    return DEFAULT_PAGE, None


async def users_delta(ctx: Ctx) -> Response:
    basic = user_read_level(ctx.principal, None) == "basic"
    q = ctx.query
    for option in ("$filter", "$orderby", "$top", "$search", "$count", "$skip", "$expand"):
        if option in q:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
    store = graph_store(ctx.state)
    directory = ctx.state.directory
    token = q.get("$skiptoken") or q.get("$deltatoken")
    if token is not None:
        payload = decode_token(store.page_secret, token)
        if payload is None or payload.get("e") != "users/delta":
            raise _expired()
    else:
        payload = {
            "e": "users/delta",
            "p": "initial",
            "s": directory.change_seq,
            "k": None,
            "sel": q.get("$select"),
        }
    select = USER_SCHEMA.select(payload.get("sel"))
    size, applied = _page_size(ctx)
    items: list[dict[str, Any]] = []
    next_payload: dict[str, Any] | None = None
    if payload["p"] == "initial":
        index = sorted_index(ctx, USER_SCHEMA, directory.users, "id")
        after = payload.get("k")
        start = 0 if after is None else bisect.bisect_right(index.keys, (0, after.casefold(), after))
        chunk = index.items[start : start + size]
        items = [USER_SCHEMA.project(u, select, basic) | {"id": u.id} for u in chunk]
        if start + size < len(index.items):
            next_payload = {**payload, "k": chunk[-1].id}
        delta_seq = int(payload["s"])
    else:
        since, upto = int(payload["s"]), int(payload.get("u", directory.change_seq))
        after_seq = int(payload.get("a", since))
        changed = sorted((seq, uid) for uid, seq in directory.user_seq.items() if after_seq < seq <= upto)
        for _seq, uid in changed[:size]:
            user = directory.user(uid)
            if user is not None and user.id == uid:
                items.append(USER_SCHEMA.project(user, select, basic) | {"id": user.id})
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
        final = {"e": "users/delta", "p": "changes", "s": delta_seq, "sel": payload.get("sel")}
        body["@odata.deltaLink"] = build_url(
            ctx.origin, "/v1.0/users/delta", [("$deltatoken", encode_token(store.page_secret, final))]
        )
    return json_response(body, headers={"Preference-Applied": applied} if applied else None)
