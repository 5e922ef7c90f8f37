"""The mailbox-read audit trail: ``GET /api/audit/mail`` (read-only; no route updates or deletes records)
and the ``/audit`` page.

For services and signed-in people holding this API's app role ``Audit.Read`` (a bearer token wins).
"""

from __future__ import annotations

import datetime as dt

import azure.functions as func

from shared.edge import Call, api, page
from shared.identity import APPLICATIONS, PEOPLE, Access, AppRole
from shared.mail import audit_page, list_audit, parse_audit_query
from shared.web import JsonBody, Page, Redirect, new_blueprint

bp = new_blueprint()


@bp.function_name("audit_mail_list")
@bp.route(route="api/audit/mail", methods=[func.HttpMethod.GET])
@api(Access(kinds=APPLICATIONS | PEOPLE, app_role=AppRole.AUDIT_READ, person_role=AppRole.AUDIT_READ))
def list_mail_audit(call: Call) -> JsonBody:
    """Audit records, newest first: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: from, to, mailbox, actor, top, cursor.
    """
    query = parse_audit_query(call.request.params, now=dt.datetime.now(dt.UTC))
    return list_audit(call.services.audit(), query, call.services.mail_reads().mailbox_owner_id).to_json()


@bp.function_name("page_audit")
@bp.route(route="audit", methods=[func.HttpMethod.GET])
@page(Access(kinds=PEOPLE, person_role=AppRole.AUDIT_READ))
def audit(call: Call) -> Page | Redirect:
    """The audit trail, for signed-in people holding ``Audit.Read``."""
    return audit_page(
        call.request, audit=call.services.audit(), owner_of=call.services.mail_reads().mailbox_owner_id
    )
