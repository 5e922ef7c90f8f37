"""The endpoint wrapper (authentication, query options, identity throttling, error rendering) and the
lookups every handler shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from emulator.directory.model import User
from emulator.graph.auth import authenticate, require_me
from emulator.graph.http import Ctx, GraphError, render_error
from emulator.graph.query import system_options
from emulator.graph.store import graph_store
from emulator.graph.throttle import identity_cost
from emulator.state import EmulatorState

Handler = Callable[[Ctx], Awaitable[Response]]


def endpoint(
    state: EmulatorState, handler: Handler, *, cost: int | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler``. ``cost`` = base resource units of an identity-and-access request (None: not one)."""

    async def run(request: Request) -> Response:
        extra: dict[str, str] = {}
        graph_store(state).deliver_due_mail()
        try:
            principal = authenticate(state, request)
            request.state.client_id = principal.app_id
            query = system_options(request)
            if cost is not None:
                users = len(state.directory.users)
                extra = graph_store(state).throttle.charge_identity(
                    principal.app_id,
                    principal.tenant_id,
                    identity_cost(cost, query),
                    state.throttle.identity_budget(users),
                    users,
                )
            response = await handler(Ctx(request, state, principal, query))
        except GraphError as err:
            err.headers = {**extra, **err.headers}
            return render_error(request.scope, err)
        response.headers.update(extra)
        return response

    run.__name__ = handler.__name__
    return run


def not_found(id_or_upn: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{id_or_upn}' does not exist or one of its "
        "queried reference-property objects are not present.",
    )


def target_user(ctx: Ctx) -> User:
    """The user named by ``{uid}`` (id or userPrincipalName), or the signed-in user on ``/me`` routes."""
    uid = ctx.request.path_params.get("uid")
    if uid is None:
        require_me(ctx.principal)
        me = ctx.state.directory.user(ctx.principal.user_id or "")
        if me is None:
            raise not_found(ctx.principal.user_id or "")
        return me
    user = ctx.state.directory.user(uid)
    if user is None:
        raise not_found(uid)
    return user


def is_me_route(ctx: Ctx) -> bool:
    return "uid" not in ctx.request.path_params


def user_segment(ctx: Ctx, user: User) -> str:
    """How ``@odata.context`` names the user: as the URL did (id or UPN), the object id on ``/me``."""
    return str(ctx.request.path_params.get("uid") or user.id)
