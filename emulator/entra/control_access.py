"""Control routes for Conditional Access and Continuous Access Evaluation (mounted under ``/_emulator``).

* ``GET /entra/conditional-access``: the policies.
* ``POST /entra/conditional-access`` ``{"control", "userId"?, "clientId"?, "signInFrequency"?}``: add one;
  ``control`` is ``block``, ``mfa``, ``mfaRegistration`` or ``signInFrequency`` (seconds required).
* ``DELETE /entra/conditional-access`` (all) and ``DELETE /entra/conditional-access/{id}``.
* ``POST /users/{id}/cae-event`` ``{"revokeSessions"?}``: a CAE critical event for the user; with
  ``revokeSessions`` also what ``revokeSignInSessions`` does (refresh tokens and SSO sessions die).
* ``GET|PUT /users/{id}/app-roles/{appId}`` ``{"roles": [value, ...]}``: the user's app role assignments
  on that app (what ``POST``/``DELETE /users/{id}/appRoleAssignments`` do in Graph); tokens issued from
  then on, refreshes included, carry the new ``roles``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.clock import CLOCK
from emulator.directory.model import AppRoleAssignment, User
from emulator.entra.conditional_access import CONTROLS, new_policy
from emulator.entra.context import find_app
from emulator.entra.store import get_store
from emulator.state import EmulatorState


def _bad(message: str, status: int = 400) -> JSONResponse:
    code = "BadRequest" if status == 400 else "NotFound"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def revoke_sessions(user: User) -> None:
    """``revokeSignInSessions``: refresh tokens, codes and SSO sessions die; also a CAE critical event."""
    now = CLOCK.time()
    user.refresh_epoch += 1
    user.sessions_revoked_at = now
    user.cae_event_at = now


def access_routes(state: EmulatorState) -> list[Route]:
    async def policies(request: Request) -> Response:
        from emulator.control import json_body

        store = get_store(state)
        if request.method == "POST":
            try:
                body: dict[str, Any] = await json_body(request)
                control = body.get("control")
                if control not in CONTROLS:
                    raise ValueError(f"control must be one of {', '.join(CONTROLS)}")
                frequency = body.get("signInFrequency")
                if control == "signInFrequency" and (
                    not isinstance(frequency, int) or isinstance(frequency, bool) or frequency < 0
                ):
                    raise ValueError("signInFrequency must be a non-negative number of seconds")
                for key in ("userId", "clientId"):
                    if body.get(key) is not None and not isinstance(body[key], str):
                        raise ValueError(f"{key} must be a string")
            except ValueError as exc:
                return _bad(str(exc))
            user_id = None
            if body.get("userId") is not None:
                user = state.directory.user(body["userId"])
                if user is None:
                    return _bad("unknown user")
                user_id = user.id
            client_id = None
            if body.get("clientId") is not None:
                app = find_app(state, body["clientId"])
                if app is None:
                    return _bad("unknown application")
                client_id = app.app_id
            policy = new_policy(
                str(control), user_id, client_id, frequency if control == "signInFrequency" else None
            )
            store.policies.append(policy)
            return JSONResponse(policy.describe(), status_code=201)
        if request.method == "DELETE":
            store.policies.clear()
        return JSONResponse({"value": [p.describe() for p in store.policies]})

    async def delete_policy(request: Request) -> Response:
        store = get_store(state)
        kept = [p for p in store.policies if p.id != request.path_params["policy_id"]]
        if len(kept) == len(store.policies):
            return _bad("no such policy", 404)
        store.policies[:] = kept
        return JSONResponse({"value": [p.describe() for p in store.policies]})

    async def cae_event(request: Request) -> Response:
        from emulator.control import json_body

        try:
            body: dict[str, Any] = await json_body(request)
            if not isinstance(body.get("revokeSessions", False), bool):
                raise ValueError("revokeSessions must be a boolean")
        except ValueError as exc:
            return _bad(str(exc))
        user = state.directory.user(request.path_params["user_id"])
        if user is None:
            return _bad("no such user", 404)
        if body.get("revokeSessions"):
            revoke_sessions(user)
        else:
            user.cae_event_at = CLOCK.time()
        return JSONResponse(
            {"userId": user.id, "caeEventAt": user.cae_event_at, "refreshEpoch": user.refresh_epoch}
        )

    async def user_app_roles(request: Request) -> Response:
        from emulator.control import json_body

        try:
            body: dict[str, Any] = await json_body(request) if request.method == "PUT" else {}
        except ValueError as exc:
            return _bad(str(exc))
        directory = state.directory
        user = directory.user(request.path_params["user_id"])
        app = find_app(state, request.path_params["app_id"])
        if user is None or app is None:
            return _bad("no such user" if user is None else "no such application", 404)
        if request.method == "PUT":
            wanted = body.get("roles")
            assignable = {r.value for r in app.app_roles if "User" in r.allowed_member_types}
            if not isinstance(wanted, list) or not all(isinstance(r, str) for r in wanted):
                return _bad('roles must be a list of role values, e.g. {"roles": ["Reports.Read"]}')
            unknown = sorted(set(wanted) - assignable)
            if unknown:
                return _bad(f"not app roles of {app.display_name} assignable to users: {', '.join(unknown)}")
            directory.app_role_assignments[:] = [
                a
                for a in directory.app_role_assignments
                if not (a.principal_id == user.id and a.resource_app_id == app.app_id)
            ]
            directory.app_role_assignments.extend(
                AppRoleAssignment(user.id, app.app_id, role) for role in sorted(set(wanted))
            )
        return JSONResponse(
            {"userId": user.id, "appId": app.app_id, "roles": directory.roles_of(user.id, app.app_id)}
        )

    return [
        Route("/users/{user_id}/app-roles/{app_id}", user_app_roles, methods=["GET", "PUT"]),
        Route("/entra/conditional-access", policies, methods=["GET", "POST", "DELETE"]),
        Route("/entra/conditional-access/{policy_id}", delete_policy, methods=["DELETE"]),
        Route("/users/{user_id}/cae-event", cae_event, methods=["POST"]),
    ]
