"""Directory users: ``GET /api/users`` and ``GET /api/users/{id}``.

``GET /api/users`` serves services holding the app role ``Users.Read.All`` (app-only Graph, application
permission ``User.Read.All``) and people signed in to this app (session cookie; delegated Graph with
``User.ReadBasic.All``, so a person sees what Graph lets them see), with the same resource and cursors. A
bearer token and a cookie on one request: the bearer token wins. ``GET /api/users/{id}`` is for services
only. A delegated bearer token (kind ``user``) is refused on both, even when its user holds the role.
Authentication runs before parameter validation, so anonymous callers learn nothing about the API's
parameters.
"""

from __future__ import annotations

import azure.functions as func

from shared.app import services as runtime
from shared.identity.bearer import APPLICATIONS, PEOPLE
from shared.identity.principal import identify
from shared.signin.delegated import answering_claims
from shared.users.service import (
    USERS_READ_ROLE,
    UsersService,
    parse_get_query,
    parse_list_query,
    validate_user_id,
)
from shared.web.api import ApiRequest, JsonBody, json_endpoint, new_blueprint

bp = new_blueprint()


@bp.function_name("users_list")
@bp.route(route="api/users", methods=[func.HttpMethod.GET])
@json_endpoint
def list_users(request: ApiRequest) -> JsonBody:
    """One page of users: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: top, select, search, cursor.
    """
    services = runtime.current()
    principal = identify(request.http, kinds=APPLICATIONS | PEOPLE, required_role=USERS_READ_ROLE)
    query = parse_list_query(request.params)
    if not principal.is_person:
        return services.users().list_users(query).to_json()
    tokens = principal.delegated()
    people = UsersService(services.delegated_graph(tokens))
    return answering_claims(
        tokens, services.settings().graph_scope, lambda: people.list_users(query).to_json()
    )


@bp.function_name("users_get")
@bp.route(route="api/users/{id}", methods=[func.HttpMethod.GET])
@json_endpoint
def get_user(request: ApiRequest) -> JsonBody:
    """One user by object id or userPrincipalName. Query: select."""
    services = runtime.current()
    services.authenticator().authenticate(request.headers, required_role=USERS_READ_ROLE, kinds=APPLICATIONS)
    select = parse_get_query(request.params)
    user_id = validate_user_id(request.route_params.get("id", ""))
    return services.users().get_user(user_id, select)
