"""Messages and mail folders: ``/users/{id|upn}/messages``, ``/me/messages``, ``…/mailFolders/{id}/messages``,
``…/messages/{id}``, ``…/mailFolders`` and ``…/mailFolders/{id}``.

Outlook semantics: default page 10, ``$top`` 1-1000, ``$skip`` paging, ``$filter``/``$orderby`` with the
"orderby properties first in the filter" rule, bodies converted on ``Prefer: outlook.body-content-type``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from emulator.directory.model import Mailbox, MailFolder, Message
from emulator.graph.filters import Compiler, Field, FilterPolicy
from emulator.graph.http import Ctx, GraphError, json_response
from emulator.graph.mailbox import html_to_text, open_mailbox, preferred_body_type, text_to_html
from emulator.graph.odata import FilterSyntaxError, parse_filter, properties_in_order
from emulator.graph.query import build_url, parse_count, parse_int_option, parse_orderby
from emulator.graph.store import graph_store

MESSAGE_TYPE = "Microsoft.OutlookServices.Message"
BODY_PROPERTIES = frozenset({"body", "bodyPreview", "uniqueBody"})
_ID = re.compile(r"[A-Za-z0-9+/=_-]{16,}")


def message_json(m: Message) -> dict[str, Any]:
    data = m.to_graph()
    data.update(
        {
            "changeKey": m.change_key,
            "categories": [],
            "isReadReceiptRequested": False,
            "isDeliveryReceiptRequested": False,
            "inferenceClassification": "focused",
            "webLink": f"https://outlook.office365.com/owa/?ItemID={m.id}&exvsurl=1&viewmodel=ReadMessageItem",
            "flag": {"flagStatus": "notFlagged"},
        }
    )
    return data


MESSAGE_PROPERTIES = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "uniqueBody",
]
MESSAGE_LOOKUP = {name.lower(): name for name in MESSAGE_PROPERTIES}

_STR = frozenset({"eq", "ne"})
_DATE = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
MESSAGE_FILTERS = {
    "receivedDateTime": Field("receivedDateTime", "datetime", lambda m: m.received, _DATE),
    "sentDateTime": Field("sentDateTime", "datetime", lambda m: m.received, _DATE),
    "createdDateTime": Field("createdDateTime", "datetime", lambda m: m.received, _DATE),
    "lastModifiedDateTime": Field(
        "lastModifiedDateTime", "datetime", lambda m: m.modified or m.received, _DATE
    ),
    "isRead": Field("isRead", "bool", lambda m: m.is_read, _STR),
    "hasAttachments": Field("hasAttachments", "bool", lambda m: m.has_attachments, _STR),
    "importance": Field("importance", "enum", lambda m: m.importance, _STR),
    "subject": Field("subject", "string", lambda m: m.subject, _STR | {"startswith", "contains"}),
    "from/emailAddress/address": Field(
        "from/emailAddress/address", "string", lambda m: m.sender.address, _STR
    ),
    "from/emailAddress/name": Field("from/emailAddress/name", "string", lambda m: m.sender.name, _STR),
    "sender/emailAddress/address": Field(
        "sender/emailAddress/address", "string", lambda m: m.sender.address, _STR
    ),
    "sender/emailAddress/name": Field("sender/emailAddress/name", "string", lambda m: m.sender.name, _STR),
    "conversationId": Field("conversationId", "string", lambda m: m.conversation_id, _STR),
    "parentFolderId": Field("parentFolderId", "string", lambda m: m.folder_id, _STR),
    "internetMessageId": Field("internetMessageId", "string", lambda m: m.internet_message_id, _STR),
    "id": Field("id", "string", lambda m: m.id, _STR),
}
IMPORTANCE_RANK = {"low": 0, "normal": 1, "high": 2}
SORT_VALUES: dict[str, Callable[[Message], Any]] = {
    "receivedDateTime": lambda m: m.received,
    "sentDateTime": lambda m: m.received,
    "createdDateTime": lambda m: m.received,
    "lastModifiedDateTime": lambda m: m.modified or m.received,
    "subject": lambda m: m.subject.casefold(),
    "importance": lambda m: IMPORTANCE_RANK.get(m.importance, 1),
    "isRead": lambda m: m.is_read,
    "hasAttachments": lambda m: m.has_attachments,
    "from/emailAddress/name": lambda m: m.sender.name.casefold(),
    "from/emailAddress/address": lambda m: m.sender.address.casefold(),
}
_PATH_LOOKUP = {k.lower(): k for k in [*MESSAGE_FILTERS, *SORT_VALUES]}


def unknown_property(name: str) -> GraphError:
    return GraphError(
        400,
        "RequestBroker--ParseUri",
        f"Could not find a property named '{name.split('/')[0]}' on type '{MESSAGE_TYPE}'.",
    )


class MailFilterPolicy(FilterPolicy):
    def unknown_property(self, name: str) -> Exception:
        if name.split("/")[0].lower() in MESSAGE_LOOKUP:
            return GraphError(
                400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
            )
        return unknown_property(name)

    def unsupported(self, field: str, op: str) -> Exception:
        return GraphError(
            400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
        )

    def incompatible(self, message: str) -> Exception:
        return GraphError(400, "BadRequest", message)


def _select(ctx: Ctx, level: str) -> list[str] | None:
    raw = ctx.query.get("$select")
    if raw is None or not raw.strip():
        return None
    chosen: list[str] = []
    for part in raw.split(","):
        name = MESSAGE_LOOKUP.get(part.strip().lower())
        if name is None:
            raise unknown_property(part.strip())
        if level == "basic" and name in BODY_PROPERTIES:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if name not in chosen:
            chosen.append(name)
    return chosen


def project(
    ctx: Ctx, m: Message, select: list[str] | None, level: str, body_type: str | None
) -> dict[str, Any]:
    full = message_json(m)
    if body_type is not None and body_type != m.body_content_type:
        content = html_to_text(m.body) if body_type == "text" else text_to_html(m.body)
        full["body"] = {"contentType": body_type, "content": content}
    if select is None:
        names = [n for n in full if n != "uniqueBody" and not (level == "basic" and n in BODY_PROPERTIES)]
        return {n: full[n] for n in names}
    if "uniqueBody" in select:
        full["uniqueBody"] = full["body"]
    return {"@odata.etag": full["@odata.etag"], "id": m.id, **{n: full[n] for n in select if n != "id"}}


def _folder(box: Mailbox, fid: str) -> MailFolder:
    folder = box.folder(fid)
    if folder is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return folder


def _context(ctx: Ctx, uid_seg: str, tail: str) -> str:
    return f"{ctx.origin}/v1.0/$metadata#users('{uid_seg}')/{tail}"


def _order(ctx: Ctx, filter_props: list[str] | None) -> list[tuple[str, bool]]:
    order = []
    for raw, desc in parse_orderby(ctx.query.get("$orderby")):
        name = _PATH_LOOKUP.get(raw.lower())
        if name is None:
            if raw.split("/")[0].lower() in MESSAGE_LOOKUP:
                raise GraphError(400, "BadRequest", "OrderBy not supported.")
            raise unknown_property(raw)
        order.append((name, desc))
    if order and filter_props is not None:
        seen: list[str] = []
        for p in filter_props:
            if p not in seen:
                seen.append(p)
        if any(i >= len(seen) or seen[i] != name for i, (name, _) in enumerate(order)):
            raise GraphError(
                400, "InefficientFilter", "The restriction or sort order is too complex for this operation."
            )
    return order


def _search(text: str) -> Callable[[Message], bool]:
    term = text.strip()
    if len(term) >= 2 and term[0] == term[-1] == '"':
        term = term[1:-1]
    prop, sep, value = term.partition(":")
    fields: dict[str, Callable[[Message], str]] = {
        "subject": lambda m: m.subject,
        "body": lambda m: m.body,
        "from": lambda m: f"{m.sender.name} {m.sender.address}",
        "to": lambda m: " ".join(f"{r.name} {r.address}" for r in m.to),
    }
    if sep and prop.strip().lower() in fields:
        getters = [fields[prop.strip().lower()]]
        needle = value.strip().casefold()
    else:
        getters = [fields["subject"], fields["body"], fields["from"]]
        needle = term.strip().casefold()
    return lambda m: any(needle in g(m).casefold() for g in getters)


async def list_messages(ctx: Ctx) -> Response:
    q = ctx.query
    async with open_mailbox(ctx) as acc:
        select = _select(ctx, acc.level)
        top = parse_int_option("$top", q["$top"]) if "$top" in q else 10
        if not 1 <= top <= 1000:
            raise GraphError(
                400,
                "ErrorInvalidArgument",
                f"The value '{top}' of the $top query option is out of range. It must be between 1 and 1000.",
            )
        skip = parse_int_option("$skip", q["$skip"]) if "$skip" in q else 0
        count = parse_count(q.get("$count"))
        if "$expand" in q:
            raise unknown_property(q["$expand"].split("(")[0].strip())
        fid = ctx.request.path_params.get("fid")
        folder = _folder(acc.box, fid) if fid is not None else None
        messages = [m for m in acc.box.messages if folder is None or m.folder_id == folder.id]
        filter_props = None
        if "$filter" in q:
            try:
                node = parse_filter(q["$filter"])
            except FilterSyntaxError as exc:
                raise GraphError(400, "BadRequest", "Invalid filter clause") from exc
            predicate = Compiler(MESSAGE_FILTERS, MailFilterPolicy()).compile(node)
            filter_props = [_PATH_LOOKUP.get(p.lower(), p) for p in properties_in_order(node)]
            messages = [m for m in messages if predicate(m)]
        if "$search" in q:
            if "$orderby" in q or "$filter" in q:
                which = "$orderby" if "$orderby" in q else "$filter"
                raise GraphError(400, "ErrorInvalidUrlQuery", f"The query parameter '{which}' is invalid.")
            messages = [m for m in messages if _search(q["$search"])(m)]
        order = _order(ctx, filter_props)
        if order:
            for name, desc in reversed(order):
                messages.sort(key=SORT_VALUES[name], reverse=desc)
        elif graph_store(ctx.state).settings.mail_default_order == "asc":
            messages.reverse()
        body_type = preferred_body_type(ctx.header("prefer"))
        page = messages[skip : skip + top]
        uid_seg = str(ctx.request.path_params.get("uid") or acc.user.id)
        tail = f"mailFolders('{fid}')/messages" if fid is not None else "messages"
        sel = f"({','.join(select)})" if select else ""
        data: dict[str, Any] = {"@odata.context": _context(ctx, uid_seg, tail + sel)}
        if count:
            data["@odata.count"] = len(messages)
        data["value"] = [project(ctx, m, select, acc.level, body_type) for m in page]
        if skip + top < len(messages):
            params = [(k, q[k]) for k in ("$select", "$filter", "$orderby", "$search") if k in q]
            if count:
                params.append(("$count", "true"))
            params += [("$top", str(top)), ("$skip", str(skip + top))]
            data["@odata.nextLink"] = build_url(ctx.origin, ctx.request.url.path, params)
        headers = {"Preference-Applied": f'outlook.body-content-type="{body_type}"'} if body_type else None
        return json_response(data, headers=headers)


async def get_message(ctx: Ctx) -> Response:
    mid = ctx.request.path_params["mid"]
    async with open_mailbox(ctx) as acc:
        select = _select(ctx, acc.level)
        if not _ID.fullmatch(mid):
            raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        fid = ctx.request.path_params.get("fid")
        folder = _folder(acc.box, fid) if fid is not None else None
        message = next(
            (m for m in acc.box.messages if m.id == mid and (folder is None or m.folder_id == folder.id)),
            None,
        )
        if message is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        body_type = preferred_body_type(ctx.header("prefer"))
        uid_seg = str(ctx.request.path_params.get("uid") or acc.user.id)
        sel = f"({','.join(select)})" if select else ""
        data = {
            "@odata.context": _context(ctx, uid_seg, f"messages{sel}/$entity"),
            **project(ctx, message, select, acc.level, body_type),
        }
        headers = {"Preference-Applied": f'outlook.body-content-type="{body_type}"'} if body_type else None
        return json_response(data, headers=headers)


def folder_json(box: Mailbox, folder: MailFolder) -> dict[str, Any]:
    inside = [m for m in box.messages if m.folder_id == folder.id]
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": "AAMkAGRvb3Q" + folder.id[11:20] + "AAAEIAAA=",
        "childFolderCount": 0,
        "unreadItemCount": sum(1 for m in inside if not m.is_read),
        "totalItemCount": len(inside),
        "sizeInBytes": sum(len(m.body) + len(m.subject) for m in inside),
        "isHidden": False,
    }


async def list_folders(ctx: Ctx) -> Response:
    async with open_mailbox(ctx) as acc:
        uid_seg = str(ctx.request.path_params.get("uid") or acc.user.id)
        folders = sorted(acc.box.folders.values(), key=lambda f: f.display_name.casefold())
        top = parse_int_option("$top", ctx.query["$top"]) if "$top" in ctx.query else 10
        skip = parse_int_option("$skip", ctx.query["$skip"]) if "$skip" in ctx.query else 0
        data: dict[str, Any] = {
            "@odata.context": _context(ctx, uid_seg, "mailFolders"),
            "value": [folder_json(acc.box, f) for f in folders[skip : skip + top]],
        }
        if skip + top < len(folders):
            data["@odata.nextLink"] = build_url(
                ctx.origin, ctx.request.url.path, [("$top", str(top)), ("$skip", str(skip + top))]
            )
        return json_response(data)


async def get_folder(ctx: Ctx) -> Response:
    async with open_mailbox(ctx) as acc:
        folder = _folder(acc.box, ctx.request.path_params["fid"])
        uid_seg = str(ctx.request.path_params.get("uid") or acc.user.id)
        return json_response(
            {"@odata.context": _context(ctx, uid_seg, "mailFolders/$entity"), **folder_json(acc.box, folder)}
        )
