"""Control route to grant delegated consent (mounted under ``/_emulator``), for the on-behalf-of tests.

* ``POST /apps/{appId}/consent/grant`` ``{"resource", "scopes": [name, ...], "userId"?}``: what a user (with
  ``userId``: an ``oAuth2PermissionGrant`` of ``consentType: Principal``) or an admin (without:
  ``AllPrincipals``) consenting to those delegated scopes records. The middle tier of an on-behalf-of
  exchange has no UI to ask for consent (v2-oauth2-on-behalf-of-flow.md), so tests grant it here or through
  the consent page of an interactive sign-in; ``/apps/{appId}/consent/revoke`` takes it back.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.entra.context import find_app
from emulator.state import EmulatorState


def _bad(message: str, status: int = 400) -> JSONResponse:
    code = "BadRequest" if status == 400 else "NotFound"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def consent_routes(state: EmulatorState) -> list[Route]:
    async def grant(request: Request) -> Response:
        from emulator.control import json_body  # emulator.control collects these routes (cycle)

        try:
            body = await json_body(request)
        except ValueError as exc:
            return _bad(str(exc))
        client = find_app(state, request.path_params["app_id"])
        if client is None:
            return _bad("no such application", 404)
        d = state.directory
        resource = d.resource_for(str(body.get("resource", "")))
        if resource is None:
            return _bad("unknown resource")
        scopes = body.get("scopes")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            return _bad("scopes must be a non-empty list of delegated scope names")
        known = {s.lower(): s for s in resource.delegated_scopes}
        unknown = [s for s in scopes if s.lower() not in known]
        if unknown:
            return _bad(f"{resource.display_name} exposes no delegated scope {', '.join(unknown)}")
        user_id = body.get("userId")
        if user_id is not None:
            user = d.user(str(user_id))
            if user is None:
                return _bad("unknown user")
            user_id = user.id
        names = {known[s.lower()] for s in scopes}
        d.grant_delegated(client.app_id, resource.app_id, names, user_id)
        granted = sorted(d.consented_scopes(client.app_id, resource.app_id, user_id))
        return JSONResponse(
            {
                "clientId": client.app_id,
                "resourceId": resource.app_id,
                "consentType": "Principal" if user_id else "AllPrincipals",
                "principalId": user_id,
                "scopes": granted,
            },
            status_code=201,
        )

    return [Route("/apps/{app_id}/consent/grant", grant, methods=["POST"])]
