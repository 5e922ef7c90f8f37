"""``GET /users/{id}/mailFolders/{id}/messages/delta`` (and ``/me/…``): messages delta, one folder at a time,
as delta-query-messages and message-delta document it (sources: docs/notifications.md).

* First round: every message of the folder in pages of ``Prefer: odata.maxpagesize`` (default 10, echoed in
  ``Preference-Applied``), ``@odata.nextLink`` (``$skiptoken``) until ``@odata.deltaLink`` (``$deltatoken``).
* Later rounds: messages created, changed or moved into the folder since, and
  ``{"@odata.type": "#microsoft.graph.message", "id", "@removed": {"reason": "deleted"}}`` for those
  deleted or moved out. Read from the mailbox's change log (``NotifyStore.mail``); a message changed
  again while the client pages comes again in the next round (replays are allowed).
* Options fixed on the first call and carried in the tokens: ``$select``, ``$filter``
  (``receivedDateTime ge|gt`` only), ``$top`` (caps the round, not the page),
  ``changeType=created|updated|deleted``; ``$orderby`` only ``receivedDateTime desc``; ``$search``,
  ``$expand``, ``$skip``, ``$count`` refused.
* ``POST /_emulator/graph/delta/expire`` → older links answer ``400 syncStateNotFound``;
  ``POST /_emulator/graph/mail/delta/reset`` → ``410 Gone`` with ``Location`` = the initial URL and an empty
  ``$deltatoken`` (a full resync).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from starlette.responses import Response

from emulator.directory.model import Message
from emulator.graph.delta import _sync_state_not_found
from emulator.graph.http import Ctx, GraphError, json_response
from emulator.graph.mail import _select, project
from emulator.graph.mailbox import open_mailbox, preferred_body_type
from emulator.graph.notify_store import notify_store
from emulator.graph.query import build_url, decode_token, encode_token, parse_int_option
from emulator.graph.store import graph_store

DEFAULT_PAGE = 10
_RECEIVED = re.compile(r"\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*", re.IGNORECASE)
CHANGE_TYPES = ("created", "updated", "deleted")


def _preferences(ctx: Ctx) -> tuple[int, str | None]:
    size, applied = DEFAULT_PAGE, None
    for item in (ctx.header("prefer") or "").split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            size = max(1, min(1000, int(value.strip())))
            applied = f"odata.maxpagesize={size}"
    return size, applied


def _received_filter(text: str | None) -> tuple[str, float] | None:
    if text is None:
        return None
    match = _RECEIVED.fullmatch(text)
    if match is None:
        raise GraphError(
            400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
        )
    try:
        when = dt.datetime.fromisoformat(match.group(2).replace("Z", "+00:00"))
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Invalid filter clause") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return match.group(1).lower(), when.timestamp()


def _keep(message: Message, flt: list[Any] | None) -> bool:
    if flt is None:
        return True
    op, stamp = str(flt[0]), float(flt[1])
    received = message.received.timestamp()
    return received >= stamp if op == "ge" else received > stamp


def _first_payload(ctx: Ctx, user_id: str, folder_id: str) -> dict[str, Any]:
    q = ctx.query
    for option in ("$search", "$expand", "$skip", "$count"):
        if option in q:
            raise GraphError(400, "ErrorInvalidUrlQuery", f"The query parameter '{option}' is invalid.")
    if "$orderby" in q and q["$orderby"].strip().lower() != "receiveddatetime desc":
        raise GraphError(400, "ErrorInvalidUrlQuery", "The query parameter '$orderby' is invalid.")
    change = ctx.request.query_params.get("changeType")
    if change is not None and change not in CHANGE_TYPES:
        raise GraphError(400, "ErrorInvalidUrlQuery", f"The value '{change}' of changeType is invalid.")
    top = parse_int_option("$top", q["$top"]) if "$top" in q else None
    return {
        "e": "messages/delta",
        "u": user_id,
        "f": folder_id,
        "p": "initial",
        "s": notify_store(ctx.state).mail_changes(user_id).seq,
        "k": None,
        "sel": q.get("$select"),
        "flt": _received_filter(q.get("$filter")),
        "ct": change,
        "top": top,
        "n": 0,
        "ep": graph_store(ctx.state).delta_epoch,
        "rs": notify_store(ctx.state).mail_delta_reset,
    }


def _link(ctx: Ctx, kind: str, payload: dict[str, Any]) -> str:
    token = encode_token(graph_store(ctx.state).page_secret, payload)
    return build_url(ctx.origin, ctx.request.url.path, [(kind, token)])


async def messages_delta(ctx: Ctx) -> Response:
    async with open_mailbox(ctx) as acc:
        folder = acc.box.folder(ctx.request.path_params["fid"])
        if folder is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        store = notify_store(ctx.state)
        q = ctx.query
        token = q.get("$skiptoken") or q.get("$deltatoken")
        if token:
            payload = decode_token(graph_store(ctx.state).page_secret, token)
            if payload is None or payload.get("e") != "messages/delta" or payload.get("u") != acc.user.id:
                raise _sync_state_not_found()
            if payload.get("ep") != graph_store(ctx.state).delta_epoch:
                raise _sync_state_not_found()
            if payload.get("rs") != store.mail_delta_reset:
                location = build_url(ctx.origin, ctx.request.url.path, [("$deltatoken", "")])
                raise GraphError(
                    410,
                    "resyncRequired",
                    "The delta token is no longer valid; the application must resynchronize.",  # [INFERRED]
                    headers={"Location": location},
                )
        else:
            payload = _first_payload(ctx, acc.user.id, folder.id)
        select = _select(ctx, acc.level) if payload.get("sel") is None else None
        if payload.get("sel") is not None:
            ctx.query["$select"] = payload["sel"]
            select = _select(ctx, acc.level)
        size, applied = _preferences(ctx)
        body_type = preferred_body_type(ctx.header("prefer"))
        log = store.mail_changes(acc.user.id)
        flt = payload.get("flt")
        remaining = None if payload.get("top") is None else int(payload["top"]) - int(payload.get("n", 0))
        if remaining is not None:
            size = max(0, min(size, remaining))
        items: list[dict[str, Any]] = []
        next_payload: dict[str, Any] | None = None

        def shown(m: Message) -> dict[str, Any]:
            return {
                "@odata.type": "#microsoft.graph.message",
                **project(ctx, m, select, acc.level, body_type),
            }

        if payload["p"] == "initial":
            after = payload.get("k")
            inside = sorted(
                (m for m in acc.box.messages if m.folder_id == folder.id and _keep(m, flt)),
                key=lambda m: m.id,
            )
            candidates = [m for m in inside if after is None or m.id > after]
            chunk = candidates[:size]
            if payload.get("ct") in (None, "created"):
                items = [shown(m) for m in chunk]
            if len(candidates) > len(chunk) and size > 0:
                next_payload = {**payload, "k": chunk[-1].id, "n": int(payload.get("n", 0)) + len(chunk)}
            delta_seq = int(payload["s"])
        else:
            since, upto = int(payload["s"]), int(payload.get("up", log.seq))
            after_seq = int(payload.get("a", since))
            events: list[tuple[int, str, str]] = []  # (seq, message id, changed | removed)
            for mid, (seq, fid) in log.changed.items():
                if after_seq < seq <= upto and fid == folder.id:
                    events.append((seq, mid, "changed"))
            for seq, mid, fid in log.removed:
                if after_seq < seq <= upto and fid == folder.id:
                    events.append((seq, mid, "removed"))
            events.sort()
            wanted = payload.get("ct")
            by_id = {m.id: m for m in acc.box.messages}
            taken = events[:size]
            for _seq, mid, what in taken:
                message = by_id.get(mid)
                if what == "removed":
                    if (message is None or message.folder_id != folder.id) and wanted in (None, "deleted"):
                        items.append(
                            {
                                "@odata.type": "#microsoft.graph.message",
                                "id": mid,
                                "@removed": {"reason": "deleted"},
                            }
                        )
                    continue
                if message is None or message.folder_id != folder.id or not _keep(message, flt):
                    continue
                created = log.created.get(mid, 0) > since
                if wanted is None or wanted == ("created" if created else "updated"):
                    items.append(shown(message))
            if len(events) > len(taken) and size > 0:
                next_payload = {
                    **payload,
                    "up": upto,
                    "a": taken[-1][0],
                    "n": int(payload.get("n", 0)) + len(taken),
                }
            delta_seq = upto
        body: dict[str, Any] = {
            "@odata.context": f"{ctx.origin}/v1.0/$metadata#Collection(message)",
            "value": items,
        }
        if next_payload is not None:
            body["@odata.nextLink"] = _link(ctx, "$skiptoken", next_payload)
        else:
            final = {**payload, "p": "changes", "s": delta_seq, "k": None, "n": 0}
            final.pop("a", None)
            final.pop("up", None)
            body["@odata.deltaLink"] = _link(ctx, "$deltatoken", final)
        headers = {"Preference-Applied": applied} if applied else None
        return json_response(body, headers=headers)
