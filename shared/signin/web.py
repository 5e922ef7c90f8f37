"""The steps of a person's sign-in that the pages run: start (:func:`sign_in_redirect`), the callback
(:func:`complete_sign_in`) and sign-out (:func:`sign_out`). The browser's side (origin, cookies, ``next``)
is :mod:`shared.web.cookies`.

The redirect URI is ``{origin}/auth/callback``; it must be registered on the app registration. Every step
receives the services it uses (:class:`SignInServices`) and the origin the edge resolved; none looks
anything up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.core.errors import AuthFlowUnknown, GraphFunctionsError, SignInRequired
from shared.core.settings_parts import SignInSettings
from shared.signin.client import SignInClient
from shared.signin.flows import FlowStore
from shared.signin.sessions import SessionClaims, SessionStore
from shared.web.cookies import (
    CALLBACK_PATH,
    FLOW_COOKIE,
    FLOW_COOKIE_SECONDS,
    SESSION_COOKIE,
    clear_cookie,
    cookie_value,
    safe_next,
    session_id_of,
    set_cookie,
)
from shared.web.pages import PageRequest, Redirect

logger = logging.getLogger(__name__)


class SignInServices(Protocol):
    """The process's sign-in services, built on first use (:class:`shared.app.services.Runtime`)."""

    def sign_in(self) -> SignInClient: ...

    def auth_flows(self) -> FlowStore: ...

    def sessions(self) -> SessionStore: ...


def sign_in_redirect(
    request: PageRequest,
    error: SignInRequired | None = None,
    *,
    services: SignInServices,
    origin: str,
    next_path: str | None = None,
    prompt: str | None = None,
) -> Redirect:
    """Start a sign-in that returns to ``next_path`` (default: the page asked for): MSAL's flow is sealed
    into the browser's flow cookie (nothing is stored: :mod:`shared.signin.flows`) and the browser goes
    to Entra's authorize endpoint.

    ``error`` (a :class:`SignInRequired` from silent acquisition or a claims challenge) brings its claims
    and the scopes that needed the person.
    """
    target = safe_next(next_path if next_path is not None else request.path_and_query)
    # One resource per flow: Entra redeems a code for one resource only (AADSTS28000), so a sign-in for a
    # scope another resource needs (SharePoint, incremental consent) asks for that scope alone; the Graph
    # tokens come from the same refresh token afterwards.
    scopes = (
        list(error.scopes) if error is not None and error.scopes else list(services.sign_in().graph_scopes)
    )
    flow = services.sign_in().begin(
        redirect_uri=origin + CALLBACK_PATH,
        scopes=scopes,
        claims=error.claims if error is not None else None,
        prompt=prompt,
    )
    sealed = services.auth_flows().put(flow, extra={"kind": "sign-in", "next": target})
    cookie = set_cookie(FLOW_COOKIE, sealed, origin=origin, max_age=FLOW_COOKIE_SECONDS)
    return Redirect(str(flow["auth_uri"]), status=302, cookies=(cookie,))


def complete_sign_in(
    request: PageRequest,
    *,
    services: SignInServices,
    settings: SignInSettings,
    origin: str,
    admit: Callable[[str], object] | None = None,
) -> Redirect:
    """The callback: open the flow from this browser's flow cookie, redeem the code (once: Entra redeems
    a code once), replace any previous session of this browser with a new one (a new id at every
    sign-in), clear the flow cookie and go to the flow's ``next``.

    Raises:
        AuthFlowUnknown, AuthFlowMismatch: the state is malformed or expired, or this browser holds no
            flow for it (another browser's state, or a replay after the cookie was cleared) (400, HTML
            error page).
        SignInFailed: Entra's error, or the code redemption failed (a replayed code) (400).
        TenantRefused: ``admit`` (multi-tenant: the tenant directory) refused the person's tenant
            (403 ``tenant_not_onboarded`` ...): no session is created.
    """
    response = _callback_parameters(request)
    taken = services.auth_flows().take(response.get("state"), cookie_value(request.http, FLOW_COOKIE, origin))
    extra: Mapping[str, Any] = taken.extra or {}
    if extra.get("kind") != "sign-in":
        raise AuthFlowUnknown("This sign-in response does not belong to a sign-in started here")
    signed_in = services.sign_in().finish(taken.flow, response)
    claims = signed_in.claims
    if admit is not None:
        admit(str(claims["tid"]))
    roles = claims.get("roles") or []
    session = services.sessions().create(
        SessionClaims(
            oid=str(claims["oid"]),
            tid=str(claims["tid"]),
            name=_text(claims.get("name")),
            preferred_username=_text(claims.get("preferred_username")),
            roles=tuple(str(role) for role in roles) if isinstance(roles, list) else (),
        ),
        signed_in.token_cache,
    )
    previous = session_id_of(request.http, origin)
    if previous:
        try:
            services.sessions().delete(previous)
        except GraphFunctionsError:  # the old row expires on its own; the new sign-in must not fail
            logger.warning("The previous session of a browser could not be deleted at sign-in")
    cookies = (
        set_cookie(
            SESSION_COOKIE,
            session.id,
            origin=origin,
            max_age=settings.session_max_age_hours * 3600,
        ),
        clear_cookie(FLOW_COOKIE, origin=origin),
    )
    return Redirect(safe_next(str(extra.get("next") or "/")), status=303, cookies=cookies)


def sign_out(
    request: PageRequest, *, sessions: SessionStore, settings: SignInSettings, origin: str
) -> Redirect:
    """Delete the session, clear the cookie and end the Entra session (``end_session_endpoint`` with the
    registered post-logout URI ``{origin}/``)."""
    sessions.delete(session_id_of(request.http, origin))
    query = urlencode({"post_logout_redirect_uri": origin + "/", "client_id": settings.client_id})
    location = f"{settings.sign_in_authority}/oauth2/v2.0/logout?{query}"
    return Redirect(location, status=303, cookies=(clear_cookie(SESSION_COOKIE, origin=origin),))


def _callback_parameters(request: PageRequest) -> dict[str, str]:
    """The authorization response: the query (``response_mode=query``) or the form (``form_post``)."""
    source: Mapping[str, str] = request.form if request.method == "POST" else request.params
    return {key: str(value) for key, value in source.items()}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
