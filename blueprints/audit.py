"""The mailbox-read audit trail: ``GET /api/audit/mail`` (read-only; no route updates or deletes records).

For services and signed-in people holding this API's app role ``Audit.Read`` (a bearer token wins).
"""

from __future__ import annotations

import datetime as dt

import azure.functions as func

from shared.app import services as runtime
from shared.identity.bearer import APPLICATIONS, PEOPLE
from shared.identity.principal import identify
from shared.mail import pages as mail_pages
from shared.mail.audit_query import AUDIT_READ_ROLE, list_audit, parse_audit_query
from shared.web.api import ApiRequest, JsonBody, json_endpoint, new_blueprint
from shared.web.pages import Page, PageRequest, Redirect, page_endpoint

bp = new_blueprint()


@bp.function_name("audit_mail_list")
@bp.route(route="api/audit/mail", methods=[func.HttpMethod.GET])
@json_endpoint
def list_mail_audit(request: ApiRequest) -> JsonBody:
    """Audit records, newest first: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: from, to, mailbox, actor, top, cursor.
    """
    services = runtime.current()
    identify(
        request.http, kinds=APPLICATIONS | PEOPLE, required_role=AUDIT_READ_ROLE, person_role=AUDIT_READ_ROLE
    )
    query = parse_audit_query(request.params, now=dt.datetime.now(dt.UTC))
    return list_audit(services.audit(), query).to_json()


@bp.function_name("page_audit")
@bp.route(route="audit", methods=[func.HttpMethod.GET])
@page_endpoint
def audit_page(request: PageRequest) -> Page | Redirect:
    """The audit trail, for signed-in people holding ``Audit.Read``."""
    return mail_pages.audit_page(request)
