"""Mailbox reads: ``GET /api/users/{id}/messages`` and ``GET /api/users/{id}/messages/{message_id}``.

For services holding this API's app role ``Mail.Read.All`` (app-only tokens) and people signed in to the
pages who hold it (the ID token's ``roles``); a delegated bearer token is refused. The app itself reads
with the Graph application permission ``Mail.Read``, only mailboxes inside ``MAILBOX_SCOPE``, and records
every attempt in the audit trail before answering (:mod:`shared.mail.reads`): refusals of an identified
caller reach the handler (``audited``) so that they are recorded too. A read that another site's link or
redirect started on a person's session cookie is not made (``refuse_cross_site``, ``confirm_cross_site``):
the pages offer to continue, the API answers 403 ``cross_site_navigation``.
"""

from __future__ import annotations

import azure.functions as func

from shared.edge import Call, api, page
from shared.identity import APPLICATIONS, PEOPLE, Access, AppRole
from shared.mail import mail_page, message_page
from shared.web import JsonBody, Page, Redirect, new_blueprint

bp = new_blueprint()

#: Services (bearer token) and people signed in to the pages (session cookie); a bearer token wins.
READERS = Access(
    kinds=APPLICATIONS | PEOPLE, app_role=AppRole.MAIL_READ, person_role=AppRole.MAIL_READ, audited=True
)
#: The pages: people only.
PAGE_READERS = Access(kinds=PEOPLE, person_role=AppRole.MAIL_READ, audited=True)


@bp.function_name("mail_list")
@bp.route(route="api/users/{id}/messages", methods=[func.HttpMethod.GET])
@api(READERS, refuse_cross_site=True)
def list_messages(call: Call) -> JsonBody:
    """A page of a mailbox's messages, newest first: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: top (1-50, default 10), folder (inbox, sentitems, drafts, archive), cursor.
    """
    page_of_mail = call.services.mail_reads().list_messages(
        call.caller,
        call.request.route_params.get("id", ""),
        call.request.params,
        request_id=call.request_id,
        refusal=call.refusal,
    )
    return page_of_mail.to_json()


@bp.function_name("mail_get")
@bp.route(route="api/users/{id}/messages/{message_id}", methods=[func.HttpMethod.GET])
@api(READERS, refuse_cross_site=True)
def get_message(call: Call) -> JsonBody:
    """One message with its body as text (never HTML)."""
    return call.services.mail_reads().get_message(
        call.caller,
        call.request.route_params.get("id", ""),
        call.request.route_params.get("message_id", ""),
        call.request.params,
        request_id=call.request_id,
        refusal=call.refusal,
    )


@bp.function_name("page_mail")
@bp.route(route="mail", methods=[func.HttpMethod.GET])
@page(PAGE_READERS, confirm_cross_site=True)
def mail(call: Call) -> Page | Redirect:
    """The newest messages of a mailbox, for signed-in people holding ``Mail.Read.All``."""
    return mail_page(call.request, reader=call.caller, refusal=call.refusal, reads=call.services.mail_reads())


@bp.function_name("page_mail_message")
@bp.route(route="mail/message", methods=[func.HttpMethod.GET])
@page(PAGE_READERS, confirm_cross_site=True)
def message(call: Call) -> Page | Redirect:
    """One message as text."""
    return message_page(
        call.request, reader=call.caller, refusal=call.refusal, reads=call.services.mail_reads()
    )
