"""Microsoft Graph v1.0 of the local tenant. ``build_app(state)`` returns its ASGI app (see docs/graph.md).

Modules: ``auth`` (token → principal, permissions), ``query``/``odata``/``collection`` (query options,
``$filter`` parser, directory listing and paging), ``users``, ``groups``, ``mail``/``mailbox``/``sendmail``,
``membership`` (nested groups, transitive membership), ``delta``, ``batch``, ``throttle``, ``store`` (service
state, reset hook, pending mail deliveries), ``control`` (control routes). Change notifications
(docs/notifications.md): ``subscriptions``/``subscription_rules`` (the API), ``notify_delivery``,
``notify_events``, ``notify_crypto``, ``notify_store``, ``notify_control``, ``webhook_client``; ``mail_delta``
(messages delta).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from emulator.graph import delta, groups, mail, mail_delta, sendmail, subscriptions, users
from emulator.graph.batch import batch_endpoint
from emulator.graph.http import GraphError, GraphHeaders, render_error
from emulator.graph.routing import Handler, endpoint
from emulator.graph.store import graph_store
from emulator.state import EmulatorState

TOP_SEGMENTS = {"users", "me", "groups", "$batch", "subscriptions"}


def _both(path: str) -> list[str]:
    """``/users/{uid}/x`` and its ``/me/x`` twin."""
    return [f"/v1.0/users/{{uid}}{path}", f"/v1.0/me{path}"]


def build_app(state: EmulatorState) -> ASGIApp:
    graph_store(state)
    table: list[tuple[list[str], Handler, list[str], int | None]] = [
        (["/v1.0/users"], users.list_users, ["GET"], 2),
        (["/v1.0/users/$count"], users.count_users, ["GET"], 1),
        (["/v1.0/users/delta", "/v1.0/users/delta()"], delta.users_delta, ["GET"], 2),
        (["/v1.0/users/{uid}", "/v1.0/me"], users.get_user, ["GET"], 1),
        (_both("/memberOf"), groups.member_of, ["GET"], 1),
        (_both("/memberOf/microsoft.graph.group"), groups.member_of, ["GET"], 1),
        (_both("/transitiveMemberOf"), groups.transitive_member_of, ["GET"], 1),
        (_both("/transitiveMemberOf/microsoft.graph.group"), groups.transitive_member_of, ["GET"], 1),
        (_both("/checkMemberGroups"), groups.check_member_groups, ["POST"], 1),
        (_both("/checkMemberObjects"), groups.check_member_objects, ["POST"], 1),
        (["/v1.0/groups"], groups.list_groups, ["GET"], 1),
        (["/v1.0/groups/{gid}"], groups.get_group, ["GET"], 1),
        (["/v1.0/groups/{gid}/members"], groups.list_members, ["GET"], 3),
        (["/v1.0/groups/{gid}/members/$ref"], groups.add_member_ref, ["POST"], 1),
        (["/v1.0/subscriptions"], subscriptions.create_subscription, ["POST"], None),
        (["/v1.0/subscriptions"], subscriptions.list_subscriptions, ["GET"], None),
        (["/v1.0/subscriptions/{sid}"], subscriptions.get_subscription, ["GET"], None),
        (["/v1.0/subscriptions/{sid}"], subscriptions.update_subscription, ["PATCH"], None),
        (["/v1.0/subscriptions/{sid}"], subscriptions.delete_subscription, ["DELETE"], None),
        (["/v1.0/subscriptions/{sid}/reauthorize"], subscriptions.reauthorize_subscription, ["POST"], None),
        (_both("/mailFolders/{fid}/messages/delta"), mail_delta.messages_delta, ["GET"], None),
        (_both("/mailFolders/{fid}/messages/delta()"), mail_delta.messages_delta, ["GET"], None),
        (_both("/messages"), mail.list_messages, ["GET"], None),
        (_both("/messages/{mid}"), mail.get_message, ["GET"], None),
        (_both("/mailFolders"), mail.list_folders, ["GET"], None),
        (_both("/mailFolders/{fid}"), mail.get_folder, ["GET"], None),
        (_both("/mailFolders/{fid}/messages"), mail.list_messages, ["GET"], None),
        (_both("/mailFolders/{fid}/messages/{mid}"), mail.get_message, ["GET"], None),
        (_both("/sendMail"), sendmail.send_mail, ["POST"], None),
    ]
    app_ref: list[ASGIApp] = []
    routes = [Route("/v1.0/$batch", batch_endpoint(state, lambda: app_ref[0]), methods=["POST"])]
    for paths, handler, methods, cost in table:
        for path in paths:
            routes.append(Route(path, endpoint(state, handler, cost=cost), methods=methods))

    async def http_error(request: Request, exc: Any) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 405:
            err = GraphError(
                405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
            )
        elif status == 404:
            parts = [p for p in request.url.path.split("/") if p]
            if not parts or parts[0] != "v1.0":
                err = GraphError(400, "BadRequest", f"Invalid version: {parts[0] if parts else ''}")
            elif len(parts) == 1:
                err = GraphError(400, "BadRequest", "Resource not found for the segment 'v1.0'.")
            else:
                segment = parts[1] if parts[1] not in TOP_SEGMENTS else parts[-1]
                err = GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        else:
            err = GraphError(status, "UnknownError", str(getattr(exc, "detail", "")) or "An error occurred.")
        return render_error(request.scope, err)

    async def crash(request: Request, exc: Exception) -> Response:
        return render_error(
            request.scope, GraphError(500, "InternalServerError", "An internal server error occurred.")
        )

    app = GraphHeaders(
        Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: crash})
    )
    app_ref.append(app)
    return app
