"""``POST /{tenant}/oauth2/v2.0/token``: authorization_code (+PKCE), refresh_token, client_credentials and
password.

Order of checks, as the real service: tenant, form parameters, grant type, client (existence, disabled,
authentication), then the grant itself. Errors are Entra's JSON (``error``, ``error_description`` starting
with ``AADSTSnnn:``, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``, ``error_uri``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.clock import CLOCK
from emulator.directory.model import UTC, Application, User
from emulator.entra import conditional_access as ca
from emulator.entra import spa, stepup
from emulator.entra.clients import ClientAuth, authenticate_client, client_id_of
from emulator.entra.context import (
    EntraError,
    Tenant,
    attribute,
    fail,
    missing_parameter,
    require_tenant,
    single_tenant_refused,
)
from emulator.entra.grants import missing_consent
from emulator.entra.obo import JWT_BEARER_GRANT, on_behalf_of
from emulator.entra.scopes import ScopeError, ScopeRequest, parse
from emulator.entra.store import get_store, new_id
from emulator.entra.token_responses import app_token_response, user_token_response
from emulator.request_parsing import form_fields
from emulator.state import EmulatorState

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass
class Ctx:
    state: EmulatorState
    tenant: Tenant
    form: dict[str, str]
    auth: ClientAuth
    origin: str | None = None  # the browser's Origin header: cross-origin (spa) redemption

    @property
    def client(self) -> Application:
        return self.auth.app

    @property
    def wants_client_info(self) -> bool:
        return self.form.get("client_info") == "1"

    def require_multi_tenant_or_tenant(self) -> None:
        """Delegated grants of a single-tenant app need the tenant-specific endpoint (AADSTS50194)."""
        message = single_tenant_refused(self.client, self.tenant)
        if message is not None:
            raise fail(50194, "invalid_request", message)

    def policies(self, user: User, req: ScopeRequest, *, mfa: bool, auth_time: float, grant: str) -> None:
        ca.check_grant(
            self.state,
            client=self.client,
            user=user,
            resource_id=req.resource(self.state.directory).app.app_id,
            mfa_done=mfa,
            auth_time=auth_time,
            grant_type=grant,
            now=CLOCK.time(),
        )


def scope_error(state: EmulatorState, exc: ScopeError) -> EntraError:
    if exc.kind == "unknown_resource":
        return fail(
            500011,
            "invalid_resource",
            f"The resource principal named {exc.scope} was not found in the tenant named "
            f"{state.directory.display_name}. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant. You might have sent "
            "your authentication request to the wrong tenant.",
        )
    return fail(
        70011,
        "invalid_scope",
        f"The provided value for the input parameter 'scope' isn't valid. The scope '{exc.scope}' isn't "
        "valid.",
    )


def delegated_request(ctx: Ctx, raw: str, user: User) -> ScopeRequest:
    """Parse a delegated scope request for one resource and check consent."""
    state = ctx.state
    try:
        req = parse(state.directory, raw)
    except ScopeError as exc:
        raise scope_error(state, exc) from exc
    if len(req.resources) > 1:
        raise fail(
            28000,
            "invalid_scope",
            "Provided value for the input parameter scope is not valid because it contains more than one "
            f"resource. Scope {raw} is not valid.",
        )
    if missing_consent(state.directory, ctx.client, req, user):
        raise fail(
            65001,
            "invalid_grant",
            "The user or administrator has not consented to use the application with ID "
            f"'{ctx.client.app_id}' named '{ctx.client.display_name}'. Send an interactive authorization "
            "request for this user and resource.",
            suberror="consent_required",
        )
    return req


def active_user(state: EmulatorState, user_id: str) -> User:
    user = state.directory.user(user_id)
    if user is None or not user.account_enabled:
        raise fail(50057, "invalid_grant", "The user account is disabled.")
    return user


def expired_grant() -> EntraError:
    return fail(
        70008,
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. Send a new "
        "interactive authorization request for this user and resource.",
    )


def malformed_grant() -> EntraError:
    return fail(9002313, "invalid_grant", "Invalid request. Request is malformed or invalid.")


# --------------------------------------------------------------------------------------------- grants
async def authorization_code(ctx: Ctx) -> Response:
    form, store = ctx.form, get_store(ctx.state)
    ctx.require_multi_tenant_or_tenant()
    code = form.get("code")
    if not code:
        raise missing_parameter("code")
    redirect_uri = form.get("redirect_uri")
    if not redirect_uri:
        raise missing_parameter("redirect_uri")
    record = store.codes.get(code)
    if record is None:
        raise malformed_grant()
    if record.redeemed:
        raise fail(
            54005,
            "invalid_grant",
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
            "existing refresh token.",
        )
    if record.expires_at < CLOCK.time():
        raise expired_grant()
    if record.client_id != ctx.client.app_id:
        raise fail(
            70000,
            "invalid_grant",
            "Provided grant is invalid or malformed. The authorization code was issued to another client.",
        )
    if record.tenant_kind != ctx.tenant.kind:
        raise fail(
            700005,
            "invalid_grant",
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        )
    if redirect_uri != record.redirect_uri:
        raise fail(
            500112,
            "invalid_grant",
            f"The reply address '{redirect_uri}' does not match the reply address '{record.redirect_uri}' "
            "provided when requesting Authorization code.",
        )
    if record.code_challenge is not None:
        verifier = form.get("code_verifier", "")
        if record.code_challenge_method == "S256":
            digest = hashlib.sha256(verifier.encode()).digest()
            computed = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        else:
            computed = verifier
        if not VERIFIER.match(verifier) or not hmac.compare_digest(computed, record.code_challenge):
            raise fail(
                501481,
                "invalid_grant",
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            )
    spa_code = spa.check_code(ctx.client, record.redirect_uri, record.code_challenge, ctx.origin)
    user = active_user(ctx.state, record.user_id)
    if user.refresh_epoch != record.epoch:
        raise expired_grant()
    claims = ca.merge_claims(ca.parse_claims(record.claims), ca.parse_claims(form.get("claims")))
    req = delegated_request(ctx, form.get("scope") or record.scope, user)
    ctx.policies(user, req, mfa=record.mfa, auth_time=record.auth_time, grant="authorization_code")
    record.redeemed = True
    response = user_token_response(
        ctx.state,
        client=ctx.client,
        appidacr=ctx.auth.appidacr,
        user=user,
        req=req,
        sid=record.sid,
        nonce=record.nonce,
        client_info=ctx.wants_client_info,
        claims=claims,
        mfa=record.mfa,
        auth_time=record.auth_time,
    )
    return spa.bind_refresh(ctx.state, response) if spa_code else response


async def refresh_token(ctx: Ctx) -> Response:
    form, store = ctx.form, get_store(ctx.state)
    ctx.require_multi_tenant_or_tenant()
    token = form.get("refresh_token")
    if not token:
        raise missing_parameter("refresh_token")
    record = store.refresh_tokens.get(token)
    if record is None:
        raise malformed_grant()
    if record.client_id != ctx.client.app_id:
        raise fail(
            70000,
            "invalid_grant",
            "Provided grant is invalid or malformed. The refresh token was issued to another client.",
        )
    spa_expiry = spa.check_refresh(ctx.state, token, record.issued_at, ctx.origin)
    now = CLOCK.time()
    if record.expires_at < now:
        issued = dt.datetime.fromtimestamp(record.issued_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        idle = dt.timedelta(seconds=int(now - record.issued_at))
        raise fail(
            700082,
            "invalid_grant",
            f"The refresh token has expired due to inactivity. The token was issued on {issued} and was "
            f"inactive for {idle}.",
        )
    user = active_user(ctx.state, record.user_id)
    if user.refresh_epoch != record.epoch:
        raise ca.revoked_grant(user, record.issued_at)
    claims = ca.parse_claims(form.get("claims"))
    req = delegated_request(ctx, form.get("scope") or record.scope, user)
    ctx.policies(user, req, mfa=record.mfa, auth_time=record.auth_time, grant="refresh_token")
    ca.require_cae_claims(user, claims, record.issued_at)
    stepup.require_mfa(ctx.state, form.get("claims"), user, req, mfa_done=record.mfa, grant="refresh_token")
    response = user_token_response(
        ctx.state,
        client=ctx.client,
        appidacr=ctx.auth.appidacr,
        user=user,
        req=req,
        sid=record.sid,
        client_info=ctx.wants_client_info,
        refresh=True,
        claims=claims,
        mfa=record.mfa,
        auth_time=record.auth_time,
    )
    return spa.bind_refresh(ctx.state, response, spa_expiry) if spa_expiry is not None else response


async def client_credentials(ctx: Ctx) -> Response:
    if ctx.tenant.kind == "common":
        raise fail(
            9001023,
            "invalid_request",
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the "
            "/organizations or tenant-specific endpoint.",
        )
    if ctx.tenant.kind == "organizations":
        raise fail(
            50059,
            "invalid_request",
            "No tenant-identifying information found in either the request or implied by any provided "
            "credentials.",
        )
    if ctx.auth.appidacr == "0":
        raise fail(
            7000218,
            "invalid_client",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            status=401,
        )
    raw = ctx.form.get("scope", "").strip()
    if not raw:
        raise missing_parameter("scope")
    parts = raw.split()
    for part in parts:
        if not part.lower().endswith("/.default"):
            raise fail(
                1002012,
                "invalid_scope",
                f"The provided value for scope {part} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
    if len(parts) > 1:
        raise fail(
            70011,
            "invalid_scope",
            f"The provided value for the input parameter 'scope' isn't valid. The scope {raw} is not valid. "
            "static scope limit exceeded.",
        )
    try:
        req = parse(ctx.state.directory, raw)
    except ScopeError as exc:
        raise scope_error(ctx.state, exc) from exc
    return app_token_response(ctx.state, client=ctx.client, appidacr=ctx.auth.appidacr, rs=req.resources[0])


async def password(ctx: Ctx) -> Response:
    if ctx.tenant.kind == "common":
        raise fail(
            9001023,
            "invalid_request",
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the "
            "/organizations or tenant-specific endpoint.",
        )
    ctx.require_multi_tenant_or_tenant()
    form, state = ctx.form, ctx.state
    for name in ("username", "password", "scope"):
        if not form.get(name):
            raise missing_parameter(name)
    user = find_user(state, form["username"])
    if user is None:
        raise fail(
            50034,
            "invalid_grant",
            f"The user account {{EUII Hidden}} does not exist in the {state.directory.tenant_id} directory. "
            "To sign into this application, the account must be added to the directory.",
        )
    if not hmac.compare_digest(user.password.encode(), form["password"].encode()):
        raise fail(
            50126, "invalid_grant", "Error validating credentials due to invalid username or password."
        )
    if not user.account_enabled:
        raise fail(50057, "invalid_grant", "The user account is disabled.")
    claims = ca.parse_claims(form.get("claims"))
    req = delegated_request(ctx, form["scope"], user)
    now = CLOCK.time()
    ctx.policies(user, req, mfa=False, auth_time=now, grant="password")
    stepup.require_mfa(state, form.get("claims"), user, req, mfa_done=False, grant="password")
    return user_token_response(
        state,
        client=ctx.client,
        appidacr=ctx.auth.appidacr,
        user=user,
        req=req,
        sid=new_id("", 16),
        client_info=ctx.wants_client_info,
        claims=claims,
        auth_time=now,
    )


def find_user(state: EmulatorState, username: str) -> User | None:
    """A user by UPN; guests may also sign in with their own e-mail address."""
    username = username.strip()
    if "@" not in username:
        return None
    user = state.directory.user(username)
    if user is None:
        wanted = username.lower()
        user = next(
            (u for u in state.directory.users if u.user_type == "Guest" and (u.mail or "").lower() == wanted),
            None,
        )
    return user


GRANTS: dict[str, Callable[[Ctx], Awaitable[Response]]] = {
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
    "client_credentials": client_credentials,
    "password": password,
    JWT_BEARER_GRANT: on_behalf_of,  # the on-behalf-of grant (obo.py)
}


def routes(state: EmulatorState) -> list[Route]:
    async def token(request: Request) -> Response:
        if request.method == "OPTIONS":
            return spa.preflight(state, request)
        return spa.add_cors(state, request, await answer(request))

    async def answer(request: Request) -> Response:
        try:
            if request.method != "POST":
                raise fail(
                    900561,
                    "invalid_request",
                    f"The endpoint only accepts POST, OPTIONS requests. Received a {request.method} request.",
                )
            form = await form_fields(request)
            grant = form.get("grant_type")
            attribute(request, client_id=client_id_of(request, form), grant_type=grant)
            tenant = require_tenant(state, request)
            if "resource" in form:
                raise fail(901002, "invalid_request", "The 'resource' request parameter is not supported.")
            if not grant:
                raise missing_parameter("grant_type")
            handler = GRANTS.get(grant)
            if handler is None:
                raise fail(
                    70003, "unsupported_grant_type", f"The app requested an unsupported grant type '{grant}'."
                )
            auth = await authenticate_client(state, request, form, tenant)
            request.state.client_auth = auth.method  # the request log shows how the client proved itself
            spa.check_credentials(auth.appidacr, request.headers.get("origin"))
            return await handler(Ctx(state, tenant, form, auth, request.headers.get("origin")))
        except EntraError as rejected:
            return rejected.response

    return [Route("/{tenant}/oauth2/v2.0/token", token, methods=["GET", "POST", "OPTIONS"])]
