"""Token responses: access token (v1 or v2 by resource), id token, refresh token, client_info, scope."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse

from emulator.directory.model import Application, User
from emulator.entra import aio
from emulator.entra.conditional_access import ClaimsRequest
from emulator.entra.grants import issue_refresh_token
from emulator.entra.scopes import ResourceScopes, ScopeRequest
from emulator.state import EmulatorState

TOKEN_HEADERS = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def token_json(body: dict[str, Any]) -> JSONResponse:
    headers = dict(TOKEN_HEADERS)
    headers["x-ms-request-id"] = str(uuid.uuid4())
    headers["x-ms-ests-server"] = "local-tenant"
    return JSONResponse(body, headers=headers)


def delegated_scopes(state: EmulatorState, client: Application, rs: ResourceScopes, user: User) -> list[str]:
    """``scp`` of a delegated token: everything consented for this client, resource and user (Entra issues the
    union of consented scopes, not only those asked for); ``offline_access`` never appears in ``scp``."""
    have = state.directory.consented_scopes(client.app_id, rs.app.app_id, user.id)
    have.discard("offline_access")
    return sorted(have & set(rs.app.delegated_scopes))


def user_token_response(
    state: EmulatorState,
    *,
    client: Application,
    appidacr: str,
    user: User,
    req: ScopeRequest,
    sid: str,
    nonce: str | None = None,
    client_info: bool = False,
    refresh: bool = False,
    claims: ClaimsRequest | None = None,
    mfa: bool = False,
    auth_time: float = 0.0,
) -> JSONResponse:
    """The response of a delegated grant (authorization code, refresh token, password).

    ``claims``: the claims request (capabilities, a CAE challenge's ``nbf``); ``mfa``/``auth_time``: how and
    when the user signed in, carried into ``amr`` and the new refresh token."""
    claims = claims or ClaimsRequest()
    rs = req.resource(state.directory)
    scp = delegated_scopes(state, client, rs, user)
    roles = state.directory.roles_of(user.id, rs.app.app_id)
    extra: dict[str, Any] = {"amr": ["pwd", "mfa"]} if mfa and rs.app.access_token_version != 2 else {}
    extra["aio"] = aio.encode(mfa=mfa, auth_time=auth_time)  # the sign-in, for on-behalf-of (aio.py)
    minted = state.tokens.access_token(
        resource=rs.app,
        audience=rs.audience,
        client=client,
        user=user,
        scopes=scp,
        roles=roles,
        appidacr=appidacr,
        capabilities=claims.capabilities,
        not_before=claims.nbf,
        extra=extra,
    )
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join(rs.render(s) for s in scp),
        "expires_in": minted.expires_in,
        "ext_expires_in": minted.expires_in,
        "access_token": minted.token,
    }
    if refresh or "offline_access" in req.oidc:
        body["refresh_token"] = issue_refresh_token(
            state, client.app_id, user, req.raw, sid, mfa=mfa, auth_time=auth_time
        )
    if "openid" in req.oidc:
        body["id_token"] = state.tokens.id_token(
            client_id=client.app_id,
            user=user,
            nonce=nonce,
            roles=state.directory.roles_of(user.id, client.app_id),
            scopes=req.oidc,
            optional=client.optional_claims.get("idToken", ()),
            extra={"sid": sid},
        )
    if client_info:
        body["client_info"] = state.tokens.client_info(user)
    return token_json(body)


def app_token_response(
    state: EmulatorState, *, client: Application, appidacr: str, rs: ResourceScopes
) -> JSONResponse:
    """The client-credentials response: roles are the client's app role assignments on the resource;
    no ``roles`` claim at all when none is granted (as the real service does)."""
    roles = state.directory.roles_of(client.sp_id, rs.app.app_id)
    minted = state.tokens.access_token(
        resource=rs.app, audience=rs.audience, client=client, roles=roles, appidacr=appidacr
    )
    return token_json(
        {
            "token_type": "Bearer",
            "expires_in": minted.expires_in,
            "ext_expires_in": minted.expires_in,
            "access_token": minted.token,
        }
    )
