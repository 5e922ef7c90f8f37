"""The pages of mailbox reads for signed-in people: ``/mail`` (a mailbox's newest messages),
``/mail/message`` (one message as text) and ``/audit`` (the audit trail). Rendered with the pages framework
(:mod:`shared.web.pages`: Jinja2 autoescape, the strict CSP, friendly error pages): subjects, senders and
previews are data and come out escaped, whatever markup they hold.

The reads are the API's (:class:`shared.mail.reads.MailReads`, recorded with channel ``page``); the answers a
reader can act on (out of scope, no mailbox, no such user or message, a bad address) are shown on the page
itself next to the form, with their stable code; anything else goes to the framework's error page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from shared.core.errors import (
    BadRequest,
    Forbidden,
    GraphFunctionsError,
    MailboxOutOfScope,
    NotFound,
    PermissionNotGranted,
)
from shared.identity.principal import Principal
from shared.mail.audit import AuditStore
from shared.mail.audit_query import list_audit, parse_audit_query
from shared.mail.reads import MailReads
from shared.web.pages import Page, PageRequest

PAGE_SIZE = 10
MAX_MAILBOX_INPUT = 113
NAV = (
    {"href": "/mail", "label": "Mail", "key": "mail"},
    {"href": "/audit", "label": "Audit", "key": "audit"},
)
#: Errors the reader gets on the page itself, with the form: they can fix or understand them there.
_SHOWN_INLINE = (MailboxOutOfScope, NotFound, BadRequest, PermissionNotGranted)


def _when(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM UTC`` (or as given when it is not one)."""
    if not isinstance(value, str):
        return ""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _problem(error: GraphFunctionsError) -> dict[str, str]:
    return {"message": error.public_message, "code": error.code}


def mail_page(
    request: PageRequest, *, reader: Principal, refusal: Forbidden | None, reads: MailReads
) -> Page:
    """``/mail?mailbox=&cursor=``: the form, and the mailbox's :data:`PAGE_SIZE` newest messages, read by
    ``reader`` (refused with ``refusal``, recorded, when they may not read)."""
    mailbox = (request.params.get("mailbox") or "").strip()[:MAX_MAILBOX_INPUT]
    cursor = request.params.get("cursor") or None
    context: dict[str, Any] = {
        "title": "Mail",
        "active": "mail",
        "extra_nav": NAV,
        "mailbox": mailbox,
        "messages": None,
        "problem": None,
        "next_href": None,
        "first_href": None,
    }
    if not mailbox:
        if refusal is not None:
            raise refusal
        return Page("mail.html", context)
    params = {"top": str(PAGE_SIZE), **({"cursor": cursor} if cursor else {})}
    try:
        page = reads.list_messages(
            reader, mailbox, params, request_id=request.request_id, refusal=refusal, channel="page"
        )
    except _SHOWN_INLINE as error:
        return Page("mail.html", {**context, "problem": _problem(error)}, status=error.status)
    context["messages"] = [
        {
            **item,
            "received": _when(item.get("receivedDateTime")),
            "href": "/mail/message?" + urlencode({"mailbox": mailbox, "id": item.get("id") or ""}),
        }
        for item in page.items
    ]
    if page.next_cursor:
        context["next_href"] = "/mail?" + urlencode({"mailbox": mailbox, "cursor": page.next_cursor})
    if cursor:
        context["first_href"] = "/mail?" + urlencode({"mailbox": mailbox})
    return Page("mail.html", context)


def message_page(
    request: PageRequest, *, reader: Principal, refusal: Forbidden | None, reads: MailReads
) -> Page:
    """``/mail/message?mailbox=&id=``: one message, its body as text (see :func:`mail_page`)."""
    mailbox = (request.params.get("mailbox") or "").strip()[:MAX_MAILBOX_INPUT]
    message_id = (request.params.get("id") or "").strip()
    context: dict[str, Any] = {
        "title": "Message",
        "active": "mail",
        "extra_nav": NAV,
        "mailbox": mailbox,
        "message": None,
        "problem": None,
        "back_href": "/mail?" + urlencode({"mailbox": mailbox}) if mailbox else "/mail",
    }
    try:
        message = reads.get_message(
            reader, mailbox, message_id, {}, request_id=request.request_id, refusal=refusal, channel="page"
        )
    except _SHOWN_INLINE as error:
        return Page("mail_message.html", {**context, "problem": _problem(error)}, status=error.status)
    context["message"] = {**message, "received": _when(message.get("receivedDateTime"))}
    context["title"] = "Message"
    return Page("mail_message.html", context)


_AUDIT_FILTERS = ("mailbox", "actor", "from", "to")


def audit_page(
    request: PageRequest,
    *,
    audit: AuditStore,
    owner_of: Callable[[str], str | None] = lambda upn: None,
) -> Page:
    """``/audit?mailbox=&actor=&from=&to=&cursor=``: the audit records, newest first (``Audit.Read``);
    ``owner_of`` resolves a UPN in ``mailbox`` (see :func:`shared.mail.audit_query.list_audit`)."""
    filters = {
        name: request.params[name].strip() for name in _AUDIT_FILTERS if request.params.get(name, "").strip()
    }
    cursor = request.params.get("cursor") or None
    context: dict[str, Any] = {
        "title": "Audit",
        "active": "audit",
        "extra_nav": NAV,
        "filters": {name: filters.get(name, "") for name in _AUDIT_FILTERS},
        "records": [],
        "problem": None,
        "next_href": None,
        "first_href": None,
    }
    params = {**filters, "top": "25", **({"cursor": cursor} if cursor else {})}
    try:
        query = parse_audit_query(params, now=dt.datetime.now(dt.UTC))
    except BadRequest as error:
        return Page("audit.html", {**context, "problem": _problem(error)}, status=400)
    page = list_audit(audit, query, owner_of)
    context["records"] = [{**record, "when": _when(record.get("time"))} for record in page.items]
    if page.next_cursor:
        context["next_href"] = "/audit?" + urlencode({**filters, "cursor": page.next_cursor})
    if cursor:
        context["first_href"] = "/audit?" + urlencode(filters)
    return Page("audit.html", context)
