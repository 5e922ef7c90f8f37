"""Entra control routes, mounted under ``/_emulator`` by :mod:`emulator.control`.

* ``GET /apps``, ``GET /apps/{appId}``: registrations without secret values.
* ``PATCH /apps/{appId}`` ``{"displayName"?, "isPublicClient"?, "enabled"?, "redirectUris"?,
  "postLogoutRedirectUris"?, "signInAudience"?, "optionalClaims"?, "spaRedirectUris"?}`` (the ``spa``
  platform's redirect URIs, added to ``redirectUris`` as well).
* ``POST /apps/{appId}/secrets/rotate`` ``{"vaultSecret"?, "revokeOld"?, "expired"?, "returnValue"?,
  "displayName"?}``: a new client secret (optionally written as a new vault version).
* ``POST /apps/{appId}/consent/revoke`` ``{"resource"?, "userId"?, "applicationPermissions"?}``.
* ``POST /users/{id}/refresh-tokens/revoke``: ``revokeSignInSessions`` (refresh tokens and SSO sessions die;
  a CAE critical event). Conditional Access and CAE routes: :mod:`emulator.entra.control_access`.
* ``GET|PUT /entra/settings`` ``{"authCodeLifetime"?, "refreshTokenLifetime"?, "flowLifetime"?,
  "rejectAssertionReplay"?}``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.clock import CLOCK
from emulator.directory.model import Application, ClientSecret, iso
from emulator.entra.context import find_app
from emulator.entra.control_access import access_routes, revoke_sessions
from emulator.entra.control_consent import consent_routes
from emulator.entra.store import get_store
from emulator.state import EmulatorState

SIGN_IN_AUDIENCES = ("AzureADMyOrg", "AzureADMultipleOrgs")
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


def _bad(message: str, status: int = 400) -> JSONResponse:
    code = "BadRequest" if status == 400 else "NotFound"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    from emulator.control import json_body

    return await json_body(request)


def new_secret_value() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(37))
    return body[:3] + "8Q~" + body[3:]


def describe(state: EmulatorState, app: Application) -> dict[str, Any]:
    d = state.directory
    return {
        "appId": app.app_id,
        "id": app.object_id,
        "servicePrincipalId": app.sp_id,
        "displayName": app.display_name,
        "isPublicClient": app.is_public,
        "enabled": app.enabled,
        "isManagedIdentity": app.is_managed_identity,
        "accessTokenAcceptedVersion": app.access_token_version,
        "signInAudience": app.sign_in_audience,
        "optionalClaims": {k: list(v) for k, v in app.optional_claims.items()},
        "identifierUris": list(app.identifier_uris),
        "appRoles": [
            {
                "id": r.id,
                "value": r.value,
                "displayName": r.display_name,
                "allowedMemberTypes": list(r.allowed_member_types),
            }
            for r in app.app_roles
        ],
        "oauth2PermissionScopes": list(app.delegated_scopes),
        "passwordCredentials": [
            {
                "keyId": s.key_id,
                "displayName": s.display_name,
                "hint": s.hint,
                "startDateTime": iso(s.start),
                "endDateTime": iso(s.end),
            }
            for s in app.secrets
        ],
        "keyCredentials": [
            {
                "keyId": c.key_id,
                "displayName": c.display_name,
                "customKeyIdentifier": c.thumbprint_sha1.hex().upper(),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "startDateTime": iso(c.start),
                "endDateTime": iso(c.end),
            }
            for c in app.certificates
        ],
        "federatedIdentityCredentials": [
            {
                "id": f.id,
                "name": f.name,
                "issuer": f.issuer,
                "subject": f.subject,
                "audiences": list(f.audiences),
            }
            for f in app.federated_credentials
        ],
        "redirectUris": list(app.redirect_uris),
        "spaRedirectUris": list(app.spa_redirect_uris),  # those of redirectUris on the spa platform
        "postLogoutRedirectUris": list(app.post_logout_redirect_uris),
        "requiredResourceAccess": {
            rid: {k: list(v) for k, v in perms.items()} for rid, perms in app.required_permissions.items()
        },
        "appRoleAssignments": [
            {"resourceAppId": a.resource_app_id, "role": a.role}
            for a in d.app_role_assignments
            if a.principal_id == app.sp_id
        ],
        "oauth2PermissionGrants": [
            {
                "resourceAppId": g.resource_app_id,
                "consentType": g.consent_type,
                "principalId": g.principal_id,
                "scope": " ".join(sorted(g.scopes)),
            }
            for g in d.delegated_grants
            if g.client_app_id == app.app_id
        ],
    }


def control_routes(state: EmulatorState) -> list[Route]:
    def find(request: Request) -> Application | None:
        return find_app(state, request.path_params["app_id"])

    async def list_apps(request: Request) -> Response:
        return JSONResponse({"value": [describe(state, a) for a in state.directory.apps.values()]})

    async def app_detail(request: Request) -> Response:
        # Read the body before touching the model: nothing may be awaited between reading and mutating it.
        try:
            body = await _body(request) if request.method == "PATCH" else {}
        except ValueError as exc:
            return _bad(str(exc))
        app = find(request)
        if app is None:
            return _bad("no such application", 404)
        if request.method == "PATCH":
            try:
                for key in ("isPublicClient", "enabled"):
                    if key in body and not isinstance(body[key], bool):
                        raise ValueError(f"{key} must be a boolean")
                name = body.get("displayName", "x")
                if not isinstance(name, str) or not name:
                    raise ValueError("displayName must be a non-empty string")
                if body.get("signInAudience", app.sign_in_audience) not in SIGN_IN_AUDIENCES:
                    raise ValueError(f"signInAudience must be one of {', '.join(SIGN_IN_AUDIENCES)}")
                optional = body.get("optionalClaims", {})
                if not isinstance(optional, dict) or not all(
                    k in ("idToken", "accessToken")
                    and isinstance(v, list)
                    and all(isinstance(n, str) for n in v)
                    for k, v in optional.items()
                ):
                    raise ValueError(
                        'optionalClaims must look like {"idToken": ["email"], "accessToken": []}'
                    )
                for key in ("redirectUris", "postLogoutRedirectUris", "spaRedirectUris"):
                    if key in body and (
                        not isinstance(body[key], list)
                        or not all(isinstance(u, str) and "://" in u for u in body[key])
                    ):
                        raise ValueError(f"{key} must be a list of absolute URIs")
            except ValueError as exc:
                return _bad(str(exc))
            app.display_name = body.get("displayName", app.display_name)
            app.is_public = body.get("isPublicClient", app.is_public)
            app.enabled = body.get("enabled", app.enabled)
            app.redirect_uris = list(body.get("redirectUris", app.redirect_uris))
            if "spaRedirectUris" in body:  # the spa platform's URIs are redirect URIs too
                app.spa_redirect_uris = list(body["spaRedirectUris"])
                app.redirect_uris += [u for u in app.spa_redirect_uris if u not in app.redirect_uris]
            app.post_logout_redirect_uris = list(
                body.get("postLogoutRedirectUris", app.post_logout_redirect_uris)
            )
            app.sign_in_audience = body.get("signInAudience", app.sign_in_audience)
            if "optionalClaims" in body:
                app.optional_claims = {k: tuple(v) for k, v in body["optionalClaims"].items()}
        return JSONResponse(describe(state, app))

    async def rotate_secret(request: Request) -> Response:
        try:
            body = await _body(request)
            vault_name = body.get("vaultSecret")
            if vault_name is not None and (not isinstance(vault_name, str) or not vault_name):
                raise ValueError("vaultSecret must be a non-empty string")
        except ValueError as exc:
            return _bad(str(exc))
        app = find(request)
        if app is None:
            return _bad("no such application", 404)
        now = CLOCK.now().replace(microsecond=0)
        expired = bool(body.get("expired", False))
        secret = ClientSecret(
            key_id=str(uuid.uuid4()),
            display_name=str(body.get("displayName") or "rotated"),
            value=new_secret_value(),
            start=now - dt.timedelta(days=2 if expired else 0),
            end=now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=180),
        )
        if body.get("revokeOld"):
            app.secrets.clear()
        app.secrets.append(secret)
        result: dict[str, Any] = {
            "keyId": secret.key_id,
            "hint": secret.hint,
            "displayName": secret.display_name,
            "startDateTime": iso(secret.start),
            "endDateTime": iso(secret.end),
            "secretCount": len(app.secrets),
        }
        if vault_name:
            version = state.vault.set(vault_name, secret.value, None, tags={"app": app.display_name})
            result["vaultSecret"] = {"name": vault_name, "version": version.version}
        if body.get("returnValue"):
            result["secretText"] = secret.value
        return JSONResponse(result, status_code=201)

    async def revoke_consent(request: Request) -> Response:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _bad(str(exc))
        app = find(request)
        if app is None:
            return _bad("no such application", 404)
        d = state.directory
        resource_id = None
        if body.get("resource") is not None:
            resource = d.resource_for(str(body["resource"]))
            if resource is None:
                return _bad("unknown resource")
            resource_id = resource.app_id
        user_id = body.get("userId")
        if user_id is not None:
            user = d.user(str(user_id))
            if user is None:
                return _bad("unknown user")
            user_id = user.id

        def matches(resource: str) -> bool:
            return resource_id is None or resource == resource_id

        before = len(d.delegated_grants)
        d.delegated_grants[:] = [
            g
            for g in d.delegated_grants
            if not (
                g.client_app_id == app.app_id
                and matches(g.resource_app_id)
                and (user_id is None or (g.consent_type == "Principal" and g.principal_id == user_id))
            )
        ]
        removed_roles = 0
        if body.get("applicationPermissions"):
            kept = [
                a
                for a in d.app_role_assignments
                if not (a.principal_id == app.sp_id and matches(a.resource_app_id))
            ]
            removed_roles = len(d.app_role_assignments) - len(kept)
            d.app_role_assignments[:] = kept
        return JSONResponse(
            {"removedGrants": before - len(d.delegated_grants), "removedAppRoleAssignments": removed_roles}
        )

    async def revoke_refresh(request: Request) -> Response:
        user = state.directory.user(request.path_params["user_id"])
        if user is None:
            return _bad("no such user", 404)
        revoke_sessions(user)
        return JSONResponse({"value": True, "refreshEpoch": user.refresh_epoch})

    async def settings(request: Request) -> Response:
        changes: dict[str, Any] = {}
        if request.method == "PUT":
            try:
                body = await _body(request)
                for key, attr in (
                    ("authCodeLifetime", "auth_code_lifetime"),
                    ("refreshTokenLifetime", "refresh_token_lifetime"),
                ):
                    if key in body:
                        changes[attr] = None if body[key] is None else int(body[key])
                if "flowLifetime" in body:
                    changes["flow_lifetime"] = int(body["flowLifetime"])
                if "rejectAssertionReplay" in body:
                    if not isinstance(body["rejectAssertionReplay"], bool):
                        raise ValueError("rejectAssertionReplay must be a boolean")
                    changes["reject_assertion_replay"] = body["rejectAssertionReplay"]
                if any(isinstance(v, int) and not isinstance(v, bool) and v < 0 for v in changes.values()):
                    raise ValueError("lifetimes must not be negative")
            except (ValueError, TypeError) as exc:
                return _bad(str(exc))
        s = get_store(state).settings
        for attr, value in changes.items():
            setattr(s, attr, value)
        return JSONResponse(
            {
                "authCodeLifetime": s.auth_code_lifetime,
                "refreshTokenLifetime": s.refresh_token_lifetime,
                "flowLifetime": s.flow_lifetime,
                "rejectAssertionReplay": s.reject_assertion_replay,
            }
        )

    return [
        Route("/apps", list_apps, methods=["GET"]),
        Route("/apps/{app_id}", app_detail, methods=["GET", "PATCH"]),
        Route("/apps/{app_id}/secrets/rotate", rotate_secret, methods=["POST"]),
        Route("/apps/{app_id}/consent/revoke", revoke_consent, methods=["POST"]),
        Route("/users/{user_id}/refresh-tokens/revoke", revoke_refresh, methods=["POST"]),
        Route("/entra/settings", settings, methods=["GET", "PUT"]),
        *access_routes(state),
        *consent_routes(state),
    ]
