"""Directory users: ``GET /api/users`` and ``GET /api/users/{id}``.

``GET /api/users`` serves services holding the app role ``Users.Read.All`` (app-only Graph, application
permission ``User.Read.All``) and people signed in to this app (session cookie; delegated Graph with
``User.ReadBasic.All``, so a person sees what Graph lets them see), and callers holding a person's own token
for this API (scope ``access_as_user``: exchanged on the person's behalf, docs/on-behalf-of.md), with the
same resource and cursors. A bearer token and a cookie on one request: the bearer token wins.
``GET /api/users/{id}`` is for services only: a delegated bearer token (kind ``user``) is refused there
(403 ``caller_kind_not_allowed``), even when its user holds the role.
Authentication runs before parameter validation, so anonymous callers learn nothing about the API's
parameters.
"""

from __future__ import annotations

import azure.functions as func

from shared.edge import Call, api
from shared.identity import ACCESS_AS_USER, APPLICATIONS, PEOPLE, USERS, Access, AppRole
from shared.users import UsersService, parse_get_query, parse_list_query, validate_user_id
from shared.web import JsonBody, new_blueprint

bp = new_blueprint()


@bp.function_name("users_list")
@bp.route(route="api/users", methods=[func.HttpMethod.GET])
@api(Access(kinds=APPLICATIONS | PEOPLE | USERS, app_role=AppRole.USERS_READ, user_scope=ACCESS_AS_USER))
def list_users(call: Call) -> JsonBody:
    """One page of users: ``{"value": [...], "nextCursor": str | null}``.

    Query parameters: top, select, search, cursor.
    """
    query = parse_list_query(call.request.params)
    if call.caller.kind == "application":
        return call.services.users().list_users(query).to_json()
    return UsersService(call.delegated_graph(("User.ReadBasic.All",))).list_users(query).to_json()


@bp.function_name("users_get")
@bp.route(route="api/users/{id}", methods=[func.HttpMethod.GET])
@api(Access(kinds=APPLICATIONS, app_role=AppRole.USERS_READ))
def get_user(call: Call) -> JsonBody:
    """One user by object id or userPrincipalName. Query: select."""
    select = parse_get_query(call.request.params)
    user_id = validate_user_id(call.request.route_params.get("id", ""))
    return call.services.users().get_user(user_id, select)
