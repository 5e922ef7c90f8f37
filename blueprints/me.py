"""The signed-in person's own data, as JSON: ``GET /api/me`` (Graph ``/me``) and ``GET /api/me/sharepoint``
(the SharePoint current user of ``SHAREPOINT_SITE_URL``).

For people only (session cookie; kind ``person``): a bearer token is refused with 403
``caller_kind_not_allowed``. Without a usable session: 401 ``unauthenticated`` (no cookie),
``session_expired`` (ended, revoked or expired sign-in) or ``interaction_required`` (MFA, Conditional
Access, a CAE challenge): the person signs in again at ``/auth/login``. Delegated permissions:
Graph ``User.Read``; SharePoint ``AllSites.Read``.
"""

from __future__ import annotations

import azure.functions as func

from shared.core import BadRequest
from shared.edge import Call, api
from shared.identity import PEOPLE, Access
from shared.users import UsersService
from shared.web import JsonBody, new_blueprint

bp = new_blueprint()

PERSON = Access(kinds=PEOPLE)


@bp.function_name("me")
@bp.route(route="api/me", methods=[func.HttpMethod.GET])
@api(PERSON)
def me(call: Call) -> JsonBody:
    """The person's Graph profile (the users API's default fields)."""
    _no_parameters(call)
    return UsersService(call.delegated_graph()).me()


@bp.function_name("me_sharepoint")
@bp.route(route="api/me/sharepoint", methods=[func.HttpMethod.GET])
@api(PERSON)
def me_sharepoint(call: Call) -> JsonBody:
    """``{"Title", "Email", "LoginName"}`` of the person on the SharePoint site."""
    _no_parameters(call)
    return call.sharepoint_profile()


def _no_parameters(call: Call) -> None:
    unknown = sorted(call.request.params)
    if unknown:
        raise BadRequest(f"Unknown query parameter '{unknown[0]}': this endpoint takes none")
