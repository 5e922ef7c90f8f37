"""Directory users, app-only: ``GET /api/users`` and ``GET /api/users/{id}``.

Both are for services only (app-only tokens; a signed-in user's delegated token is refused even when the
user holds the role, until the sign-in work opens them to people deliberately) and require the app role
``Users.Read.All``; the app itself needs the Graph application permission ``User.Read.All``.
Authentication runs before parameter validation, so anonymous callers learn nothing about the API's
parameters.
"""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.api import ApiRequest, JsonBody, json_endpoint, new_blueprint
from shared.caller import APPLICATIONS
from shared.users import USERS_READ_ROLE, parse_get_query, parse_list_query, validate_user_id

bp = new_blueprint()


@bp.function_name("users_list")
@bp.route(route="api/users", methods=[func.HttpMethod.GET])
@json_endpoint
def list_users(request: ApiRequest) -> JsonBody:
    """One page of users: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: top, select, search, cursor.
    """
    services = runtime.current()
    services.authenticator().authenticate(request.headers, required_role=USERS_READ_ROLE, kinds=APPLICATIONS)
    query = parse_list_query(request.params)
    return services.users().list_users(query).to_json()


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
