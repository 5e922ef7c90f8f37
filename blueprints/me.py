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

from shared.app import services as runtime
from shared.core.errors import BadRequest
from shared.graph.sharepoint import sharepoint_profile
from shared.identity.bearer import PEOPLE
from shared.identity.principal import identify
from shared.signin.delegated import answering_claims
from shared.users.service import UsersService
from shared.web.api import ApiRequest, JsonBody, json_endpoint, new_blueprint

bp = new_blueprint()


@bp.function_name("me")
@bp.route(route="api/me", methods=[func.HttpMethod.GET])
@json_endpoint
def me(request: ApiRequest) -> JsonBody:
    """The person's Graph profile (the users API's default fields)."""
    principal = identify(request.http, kinds=PEOPLE)
    _no_parameters(request)
    services = runtime.current()
    tokens = principal.delegated()
    graph = services.delegated_graph(tokens)
    return answering_claims(tokens, services.settings().graph_scope, lambda: UsersService(graph).me())


@bp.function_name("me_sharepoint")
@bp.route(route="api/me/sharepoint", methods=[func.HttpMethod.GET])
@json_endpoint
def me_sharepoint(request: ApiRequest) -> JsonBody:
    """``{"Title", "Email", "LoginName"}`` of the person on the SharePoint site."""
    principal = identify(request.http, kinds=PEOPLE)
    _no_parameters(request)
    return sharepoint_profile(principal.delegated())


def _no_parameters(request: ApiRequest) -> None:
    unknown = sorted(request.params)
    if unknown:
        raise BadRequest(f"Unknown query parameter '{unknown[0]}': this endpoint takes none")
