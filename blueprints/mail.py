"""Mailbox reads: ``GET /api/users/{id}/messages`` and ``GET /api/users/{id}/messages/{message_id}``.

For services holding this API's app role ``Mail.Read.All`` (app-only tokens) and people signed in to the
pages who hold it (the ID token's ``roles``); a delegated bearer token is refused. The app itself reads
with the Graph application permission ``Mail.Read``, only mailboxes inside ``MAILBOX_SCOPE``, and records
every attempt in the audit trail before answering (:mod:`shared.mail.reads`).
"""

from __future__ import annotations

import azure.functions as func

from shared.app import services as runtime
from shared.identity.bearer import APPLICATIONS, PEOPLE
from shared.mail import pages as mail_pages
from shared.mail.query import MAIL_READ_ROLE
from shared.mail.reads import identify_reader
from shared.web.api import ApiRequest, JsonBody, json_endpoint, new_blueprint
from shared.web.pages import Page, PageRequest, Redirect, page_endpoint

bp = new_blueprint()

#: Services (bearer token) and people signed in to the pages (session cookie); a bearer token wins.
READERS = APPLICATIONS | PEOPLE


@bp.function_name("mail_list")
@bp.route(route="api/users/{id}/messages", methods=[func.HttpMethod.GET])
@json_endpoint
def list_messages(request: ApiRequest) -> JsonBody:
    """A page of a mailbox's messages, newest first: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: top (1-50, default 10), folder (inbox, sentitems, drafts, archive), cursor.
    """
    services = runtime.current()
    actor, refusal, _ = identify_reader(request.http, role=MAIL_READ_ROLE, kinds=READERS)
    page = services.mail_reads().list_messages(
        actor,
        request.route_params.get("id", ""),
        request.params,
        request_id=request.request_id,
        refusal=refusal,
    )
    return page.to_json()


@bp.function_name("mail_get")
@bp.route(route="api/users/{id}/messages/{message_id}", methods=[func.HttpMethod.GET])
@json_endpoint
def get_message(request: ApiRequest) -> JsonBody:
    """One message with its body as text (never HTML)."""
    services = runtime.current()
    actor, refusal, _ = identify_reader(request.http, role=MAIL_READ_ROLE, kinds=READERS)
    return services.mail_reads().get_message(
        actor,
        request.route_params.get("id", ""),
        request.route_params.get("message_id", ""),
        request.params,
        request_id=request.request_id,
        refusal=refusal,
    )


@bp.function_name("page_mail")
@bp.route(route="mail", methods=[func.HttpMethod.GET])
@page_endpoint
def mail_page(request: PageRequest) -> Page | Redirect:
    """The newest messages of a mailbox, for signed-in people holding ``Mail.Read.All``."""
    return mail_pages.mail_page(request)


@bp.function_name("page_mail_message")
@bp.route(route="mail/message", methods=[func.HttpMethod.GET])
@page_endpoint
def message_page(request: PageRequest) -> Page | Redirect:
    """One message as text."""
    return mail_pages.message_page(request)
