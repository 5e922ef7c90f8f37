"""The ``spa`` redirect platform at the token endpoint: cross-origin redemption, PKCE, CORS, 24 h refresh
tokens.

* Client credentials (secret, certificate or federated assertion) are refused with an ``Origin`` header in
  every grant: secrets are never used from within a browser (AADSTS9002326).
* A code sent to a redirect URI registered on the ``spa`` platform must be redeemed by the browser, that is
  cross-origin: without an ``Origin`` header it is refused (AADSTS9002327); without PKCE it is refused
  (AADSTS9002325). A code or refresh token of any other platform redeemed cross-origin is refused
  (AADSTS9002326).
* Refresh tokens issued from a ``spa`` redemption expire 24 hours after that redemption and every refresh
  token obtained with one carries the same expiry over (non-sliding; AADSTS700084 after it); redeeming them
  also needs the ``Origin`` header.
* CORS: the token endpoint answers preflights and adds ``Access-Control-Allow-Origin`` (the request's
  origin, never ``*``) only for an ``Origin`` that is the origin of a ``spa`` redirect URI registered in
  the tenant; any other origin gets no CORS headers, so a browser cannot read the answer **[INFERRED:
  stricter than documented]**.

Sources: ``emulator/docs/spa-and-obo.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from emulator.clock import CLOCK
from emulator.directory.model import UTC, Application
from emulator.entra.context import EntraError, fail
from emulator.entra.store import get_store
from emulator.state import EmulatorState

#: Fixed lifetime of refresh tokens sent to a ``spa`` redirect URI (refresh-tokens.md).
SPA_REFRESH_LIFETIME = 24 * 3600
_KEY = "entra.spa"
_INSTALLED = "entra.spa.installed"


def _bound(state: EmulatorState) -> dict[str, float]:
    """Refresh token → its fixed expiry, for refresh tokens bound to the ``spa`` platform."""
    if not state.stores.get(_INSTALLED):
        state.stores[_INSTALLED] = True
        state.stores[_KEY] = {}

        def reset() -> None:
            state.stores[_KEY] = {}

        state.reset_hooks.append(reset)
    table: dict[str, float] = state.stores[_KEY]
    return table


def origin_of(uri: str) -> str:
    """``scheme://host[:port]`` of a URI, lower-cased, as browsers send it in ``Origin``."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}".lower()


def spa_origins(state: EmulatorState) -> set[str]:
    return {origin_of(u) for app in state.directory.apps.values() for u in app.spa_redirect_uris}


def cors_allowed(state: EmulatorState, origin: str | None) -> bool:
    return origin is not None and origin.lower() in spa_origins(state)


def add_cors(state: EmulatorState, request: Request, response: Response) -> Response:
    """Let a browser on a registered SPA origin read this answer (success or error)."""
    origin = request.headers.get("origin")
    if cors_allowed(state, origin):
        response.headers["Access-Control-Allow-Origin"] = str(origin)
        response.headers["Vary"] = "Origin"
    return response


def preflight(state: EmulatorState, request: Request) -> Response:
    """``OPTIONS`` on the token endpoint: CORS headers for registered SPA origins only."""
    response = Response(status_code=204)
    origin = request.headers.get("origin")
    if cors_allowed(state, origin):
        response.headers["Access-Control-Allow-Origin"] = str(origin)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        asked = request.headers.get("access-control-request-headers")
        if asked:
            response.headers["Access-Control-Allow-Headers"] = asked
        response.headers["Access-Control-Max-Age"] = "86400"
        response.headers["Vary"] = "Origin"
    return response


def _cross_origin_refused() -> EntraError:
    return fail(
        9002326,
        "invalid_request",
        "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type.",
    )


def _spa_needs_origin() -> EntraError:
    return fail(
        9002327,
        "invalid_request",
        "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin "
        "requests.",
    )


def check_credentials(appidacr: str, origin: str | None) -> None:
    """Client credentials (a secret or an assertion) never come from a browser: refused in every grant when
    the request carries ``Origin`` (AADSTS9002326 **[INFERRED code]**)."""
    if origin is not None and appidacr != "0":
        raise _cross_origin_refused()


def check_code(
    client: Application, redirect_uri: str, code_challenge: str | None, origin: str | None
) -> bool:
    """Platform rules for redeeming a code; returns whether the code belongs to the ``spa`` platform."""
    spa = redirect_uri in client.spa_redirect_uris
    if not spa:
        if origin is not None:
            raise _cross_origin_refused()
        return False
    if origin is None:
        raise _spa_needs_origin()
    if code_challenge is None:
        raise fail(
            9002325,
            "invalid_request",
            "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
        )
    return True


def check_refresh(state: EmulatorState, token: str, issued_at: float, origin: str | None) -> float | None:
    """Platform rules for redeeming a refresh token; returns its fixed expiry when it is ``spa``-bound."""
    expires_at = _bound(state).get(token)
    if expires_at is None:
        if origin is not None:
            raise _cross_origin_refused()
        return None
    if origin is None:
        raise _spa_needs_origin()
    if expires_at <= CLOCK.time():
        issued = dt.datetime.fromtimestamp(issued_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        raise fail(
            700084,
            "invalid_grant",
            "The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited "
            f"lifetime of 1.00:00:00, which cannot be extended. It is now expired and a new sign in request "
            f"must be sent by the SPA to the sign in page. The token was issued on {issued}.",
        )
    return expires_at


def bind_refresh(state: EmulatorState, response: Response, expires_at: float | None = None) -> Response:
    """Bind the refresh token of a ``spa`` answer to the platform: it expires at ``expires_at`` (a refreshed
    one keeps its predecessor's) or 24 hours from now (a code redemption)."""
    body = json.loads(bytes(response.body))
    token = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        return response
    expiry = expires_at if expires_at is not None else CLOCK.time() + SPA_REFRESH_LIFETIME
    _bound(state)[token] = expiry
    record = get_store(state).refresh_tokens.get(token)
    if record is not None:
        record.expires_at = min(record.expires_at, expiry)
    body["refresh_token_expires_in"] = max(0, int(expiry - CLOCK.time()))
    response.body = response.render(body)
    response.headers["content-length"] = str(len(response.body))
    return response
