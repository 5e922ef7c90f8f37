"""The on-behalf-of grant: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` +
``requested_token_use=on_behalf_of``.

A confidential middle tier (client secret, certificate or federated assertion, as for client credentials)
presents the access token a person's client sent it (``assertion``) and asks for delegated ``scope`` of
another resource; it gets a token for the same person with the delegated scopes consented for the middle
tier (never application roles), plus a refresh token and id token when MSAL's ``offline_access openid
profile`` are asked.

Order of checks (each a documented AADSTS error): parameters; tenant (not ``/common``: 9001023); a
confidential client (7000218); the assertion (malformed 50027, signature or issuer or an app-only token
50013, lifetime 500133, audience other than the middle tier 500131); the person (disabled 50057, sessions
revoked after the assertion was issued 50173); the scope (70011 / 28000 / 65001 ``consent_required``);
Conditional Access for the middle tier and person, evaluated against the sign-in behind the assertion
(50076 / 50079 / 53003 with ``claims``); a CAE event after the assertion for a ``cp1`` middle tier (50173
with an ``nbf`` claims challenge). Sources: ``emulator/docs/spa-and-obo.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import jwt
from starlette.responses import Response

from emulator.clock import CLOCK
from emulator.directory.model import UTC, User
from emulator.entra import aio
from emulator.entra import conditional_access as ca
from emulator.entra.context import EntraError, fail, missing_parameter
from emulator.entra.token_responses import user_token_response
from emulator.state import EmulatorState
from emulator.token_service import TokenRejected

if TYPE_CHECKING:
    from emulator.entra.token_endpoint import Ctx

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%m/%d/%Y %H:%M:%S")


def _invalid_assertion(reason: str) -> EntraError:
    return fail(50013, "invalid_grant", f"Assertion failed signature validation. [Reason - {reason}]")


def verify_assertion(
    state: EmulatorState, client_id: str, uris: tuple[str, ...], assertion: str
) -> dict[str, Any]:
    """The claims of a user assertion the middle tier ``client_id`` may exchange; raises :class:`EntraError`.

    Graph's own tokens (a ``nonce`` in the header) fail signature validation for everyone but Graph, so
    they are refused with 50013 before their audience is looked at, as observed."""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise fail(50027, "invalid_request", "JWT token is invalid or malformed.") from exc
    if isinstance(header.get("nonce"), str):
        raise _invalid_assertion("The provided signature value did not match the expected signature value.")
    tokens = state.tokens
    try:
        claims = tokens.validate(
            assertion, [str(unverified.get("aud", ""))], issuers=[tokens.issuer_v1, tokens.issuer_v2]
        )
    except TokenRejected as exc:
        if exc.reason in ("expired", "not_yet_valid"):
            exp = unverified.get("exp")
            expiry = _stamp(float(exp)) if isinstance(exp, int | float) else "unknown"
            raise fail(
                500133,
                "invalid_grant",
                "Assertion is not within its valid time range. Ensure that the access token is not expired "
                "before using it for user assertion, or request a new token. Current time: "
                f"{_stamp(CLOCK.time())}, expiry time of assertion {expiry}.",
            ) from exc
        if exc.reason == "wrong_issuer":
            raise _invalid_assertion("The token issuer is not valid for this tenant.") from exc
        raise _invalid_assertion(
            "The key was not found."
            if exc.reason == "unknown_key"
            else "The provided signature value did not match the expected signature value."
        ) from exc
    aud = str(claims.get("aud", ""))
    # Exact match: an App ID URI differing only in case is refused too (issue reports of 500131).
    if aud != client_id and aud not in uris:
        expected = next(iter(uris), client_id)
        raise fail(
            500131,
            "invalid_grant",
            f"Assertion audience does not match the Client app presenting the assertion. The audience in the "
            f"assertion was '{aud}' and the expected audience is '{expected}' or one of the Application Uris "
            f"of this application with App ID '{client_id}'. The downstream client must request a token for "
            "the expected audience (the application that made the OBO request) and this application should "
            "use that token as the assertion.",
        )
    if "scp" not in claims or claims.get("idtyp") == "app":
        raise fail(
            50013,
            "invalid_grant",
            "Assertion is not a user token: the on-behalf-of flow only works for user principals; an "
            "application must use the client credentials flow.",
        )
    return claims


def assertion_user(state: EmulatorState, claims: dict[str, Any]) -> User:
    """The person behind a verified assertion; raises when disabled or signed out everywhere since."""
    user = state.directory.user(str(claims.get("oid", "")))
    if user is None or not user.account_enabled:
        raise fail(50057, "invalid_grant", "The user account is disabled.")
    issued_at = float(claims.get("iat", 0))
    if user.sessions_revoked_at > issued_at:
        raise ca.revoked_grant(user, issued_at)
    return user


async def on_behalf_of(ctx: Ctx) -> Response:
    """Exchange a person's access token for a delegated token to another resource."""
    # Deferred (import cycle): token_endpoint imports this module to dispatch the grant to it.
    from emulator.entra.token_endpoint import delegated_request

    form, state = ctx.form, ctx.state
    if ctx.tenant.kind == "common":
        raise fail(
            9001023,
            "invalid_request",
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the "
            "/organizations or tenant-specific endpoint.",
        )
    for name in ("requested_token_use", "assertion", "scope"):
        if not form.get(name):
            raise missing_parameter(name)
    if form["requested_token_use"] != "on_behalf_of":
        raise fail(
            90023,
            "invalid_request",
            f"The 'requested_token_use' value '{form['requested_token_use']}' is not supported. Expected "
            "'on_behalf_of'.",
        )
    if ctx.auth.appidacr == "0":
        raise fail(
            7000218,
            "invalid_client",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            status=401,
        )
    ctx.require_multi_tenant_or_tenant()
    claims = verify_assertion(state, ctx.client.app_id, ctx.client.identifier_uris, form["assertion"])
    user = assertion_user(state, claims)
    requested = ca.parse_claims(form.get("claims"))
    req = delegated_request(ctx, form["scope"], user)
    sign_in = aio.decode(claims.get("aio"))
    issued_at = float(claims.get("iat", 0))
    auth_time = sign_in.auth_time or issued_at
    ctx.policies(user, req, mfa=sign_in.mfa, auth_time=auth_time, grant="on_behalf_of")
    ca.require_cae_claims(user, requested, issued_at)
    return user_token_response(
        state,
        client=ctx.client,
        appidacr=ctx.auth.appidacr,
        user=user,
        req=req,
        sid=str(claims.get("sid") or claims.get("uti") or ""),
        client_info=ctx.wants_client_info,
        claims=requested,
        mfa=sign_in.mfa,
        auth_time=auth_time,
    )
