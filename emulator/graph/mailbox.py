"""Reaching a mailbox through Graph (Exchange Online): who, with which permission, under which limits; and
the body conversions ``Prefer: outlook.body-content-type`` asks for."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import ClassVar

from emulator.directory.model import Mailbox, User
from emulator.graph.auth import mail_read_level, require_me, require_send
from emulator.graph.http import Ctx, GraphError
from emulator.graph.membership import transitive_user_ids
from emulator.graph.store import graph_store
from emulator.tenants.registry import scoped_key

NO_MAILBOX = (
    "MailboxNotEnabledForRESTAPI",
    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
)


#: What Exchange Online answers an app-only request for a mailbox outside the app's access policy or RBAC
#: management scope.
SCOPED_OUT = (
    "ErrorAccessDenied",
    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
)


def in_mailbox_scope(ctx: Ctx, user: User) -> bool:
    """Whether the calling app's mailbox scope (if it has one) includes ``user``'s mailbox."""
    settings = graph_store(ctx.state).settings
    app = scoped_key(ctx.state, ctx.principal.app_id)  # a policy belongs to one organisation
    users, groups = settings.mail_access.get(app), settings.mail_scope_groups.get(app)
    if users is None and groups is None:
        return True  # no policy: application permissions reach every mailbox
    if users is not None and user.id in users:
        return True
    directory = ctx.state.directory
    return any(
        user.id in transitive_user_ids(directory, group)
        for group in (directory.group(gid) for gid in groups or ())
        if group is not None
    )


@dataclass
class MailAccess:
    user: User
    box: Mailbox
    level: str  # full | basic | send


def mail_user(ctx: Ctx) -> User:
    uid = ctx.request.path_params.get("uid")
    if uid is None:
        require_me(ctx.principal)
        uid = ctx.principal.user_id or ""
    user = ctx.state.directory.user(uid)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{uid}' is invalid.")
    return user


def _mailbox(ctx: Ctx, user: User) -> Mailbox:
    box = ctx.state.mailbox(user)
    if box is None:
        raise GraphError(404, *NO_MAILBOX)
    return box


@asynccontextmanager
async def open_mailbox(ctx: Ctx, mode: str = "read") -> AsyncIterator[MailAccess]:
    """Resolve, authorize and admit (throttling) a mail request; the caller holds a concurrency slot."""
    store = graph_store(ctx.state)
    user = mail_user(ctx)
    if mode == "send":
        require_send(ctx.principal, user)
        level = "send"
    else:
        level = mail_read_level(ctx.principal, user)
    if not ctx.principal.delegated and not in_mailbox_scope(ctx, user):
        raise GraphError(403, *SCOPED_OUT)
    _mailbox(ctx, user)
    t = ctx.state.throttle
    release = store.throttle.enter_mail(
        ctx.principal.app_id, user.id, t.mail_requests_per_10min, t.mail_concurrency, t.mail_concurrency_scope
    )
    try:
        if store.settings.mail_latency_ms > 0:
            await asyncio.sleep(store.settings.mail_latency_ms / 1000)
            user = mail_user(ctx)  # the world may have changed while we waited
        yield MailAccess(user, _mailbox(ctx, user), level)
    finally:
        release()


# ------------------------------------------------------------------------------ body conversions
class _TextExtractor(HTMLParser):
    BLOCKS: ClassVar[set[str]] = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "ul",
        "ol",
        "blockquote",
    }
    SKIP: ClassVar[set[str]] = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\r\n".join(line for line in lines if line)
    return text


def text_to_html(text: str) -> str:
    escaped = html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>\r\n")
    return (
        '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>'
        f"<body>\r\n<div>{escaped}</div>\r\n</body></html>"
    )


def preferred_body_type(prefer: str | None) -> str | None:
    """``text`` or ``html`` from ``Prefer: outlook.body-content-type="…"``, else None."""
    if not prefer:
        return None
    for item in prefer.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "outlook.body-content-type":
            wanted = value.strip().strip('"').lower()
            if wanted in ("text", "html"):
                return wanted
    return None
