"""The calling person's own data, as JSON: ``GET /api/me`` (Graph ``/me``), ``GET /api/me/sharepoint`` (the
SharePoint current user of ``SHAREPOINT_SITE_URL``) and ``GET /api/me/messages`` (their newest mail).

Two ways to call, for a person only:

* **signed in to the pages** (session cookie; kind ``person``): the session's delegated tokens. Without a
  usable session: 401 ``unauthenticated`` (no cookie), ``session_expired`` or ``interaction_required``; the
  person signs in again at ``/auth/login``.
* **with their own token for this API** (``Authorization: Bearer``, scope
  ``api://{client id}/access_as_user``; kind ``user``), from a single-page app or another API: validated,
  then exchanged on their behalf for Graph (docs/on-behalf-of.md). Entra needing more (MFA, Conditional
  Access, a revoked session) is a 401 ``insufficient_claims`` challenge for a client declaring ``cp1``,
  else 403 ``step_up_required``; missing consent is 403 ``consent_required``. An app-only token is refused
  (403 ``caller_kind_not_allowed``).

Delegated permissions: Graph ``User.Read`` (profile), ``Mail.Read`` (mail); SharePoint ``AllSites.Read``.
"""

from __future__ import annotations

import azure.functions as func

from shared.core import BadRequest
from shared.edge import Call, api
from shared.identity import ACCESS_AS_USER, PEOPLE, USERS, Access
from shared.mail import OWN_MAIL_PERMISSION, list_own_messages
from shared.users import UsersService
from shared.web import JsonBody, new_blueprint

bp = new_blueprint()

PERSON = Access(kinds=PEOPLE | USERS, user_scope=ACCESS_AS_USER)


@bp.function_name("me")
@bp.route(route="api/me", methods=[func.HttpMethod.GET])
@api(PERSON)
def me(call: Call) -> JsonBody:
    """The person's Graph profile (the users API's default fields)."""
    _no_parameters(call)
    return UsersService(call.delegated_graph(("User.Read",))).me()


@bp.function_name("me_sharepoint")
@bp.route(route="api/me/sharepoint", methods=[func.HttpMethod.GET])
@api(PERSON)
def me_sharepoint(call: Call) -> JsonBody:
    """``{"Title", "Email", "LoginName"}`` of the person on the SharePoint site."""
    _no_parameters(call)
    return call.sharepoint_profile()


@bp.function_name("me_messages")
@bp.route(route="api/me/messages", methods=[func.HttpMethod.GET])
@api(PERSON, refuse_cross_site=True)
def me_messages(call: Call) -> JsonBody:
    """The person's newest messages: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: top (1-50, default 10), folder (inbox, sentitems, drafts, archive), cursor.
    """
    graph = call.delegated_graph((OWN_MAIL_PERMISSION,))
    return list_own_messages(graph, call.caller.object_id or "", call.request.params).to_json()


def _no_parameters(call: Call) -> None:
    unknown = sorted(call.request.params)
    if unknown:
        raise BadRequest(f"Unknown query parameter '{unknown[0]}': this endpoint takes none")
