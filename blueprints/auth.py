"""Sign-in, sign-out and admin consent for people (HTML; see :mod:`shared.signin.web`).

* ``GET /auth/login?next=/path``: starts the auth-code flow (PKCE) and redirects to Entra ID.
* ``GET|POST /auth/callback``: the registered redirect URI; completes the flow once, creates the session.
* ``GET /auth/logout`` shows the sign-out form; ``POST /auth/logout`` (same origin + CSRF token) deletes the
  session and ends the Entra session.
* ``GET /auth/admin-consent``: for people holding this API's app role ``Reports.Run`` (the operator
  role); its form (``POST``) goes to Entra's v2 ``adminconsent`` endpoint with
  ``scope={GRAPH_ENDPOINT}/.default``; ``GET /auth/admin-consent/callback`` validates the state (one-time,
  bound to this browser) and the tenant and shows granted, declined or the error. Entra itself still
  requires a directory administrator. (Not under ``/admin``: the Functions host reserves ``/admin/*``.)
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import azure.functions as func

from shared.app import services as runtime
from shared.core.errors import AuthFlowUnknown, SignInFailed, SignInRequired
from shared.identity.bearer import PEOPLE
from shared.identity.principal import Principal, identify
from shared.signin.web import (
    CONSENT_CALLBACK_PATH,
    FLOW_COOKIE,
    FLOW_COOKIE_SECONDS,
    app_origin,
    clear_cookie,
    complete_sign_in,
    cookie_value,
    safe_next,
    set_cookie,
    sign_in_redirect,
    sign_out,
)
from shared.web.api import new_blueprint
from shared.web.pages import (
    Page,
    PageRequest,
    Redirect,
    page_endpoint,
    require_csrf_token,
    require_same_origin,
)

#: The app role that lets a person start admin consent (documented in docs/sign-in.md).
ADMIN_CONSENT_ROLE = "Reports.Run"

bp = new_blueprint()


@bp.function_name("auth_login")
@bp.route(route="auth/login", methods=[func.HttpMethod.GET])
@page_endpoint
def login(request: PageRequest) -> Page | Redirect:
    """Start a sign-in that comes back to ``next`` (a same-origin path; anything else becomes ``/``)."""
    return sign_in_redirect(request, next_path=safe_next(request.params.get("next")))


@bp.function_name("auth_callback")
@bp.route(route="auth/callback", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page_endpoint
def callback(request: PageRequest) -> Page | Redirect:
    """Complete the sign-in (see :func:`shared.signin.web.complete_sign_in`); failures are error pages
    with a "try again" link that starts a new sign-in."""
    return complete_sign_in(request)


@bp.function_name("auth_logout")
@bp.route(route="auth/logout", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page_endpoint
def logout(request: PageRequest) -> Page | Redirect:
    """GET: the sign-out form. POST (from this app's pages only): sign out."""
    principal = _person_or_none(request)
    if request.method != "POST":
        return Page("signout.html", {"principal": principal, "title": "Sign out"})
    require_same_origin(request, app_origin(request.http))
    if principal is not None:
        require_csrf_token(request, principal)
    return sign_out(request)


@bp.function_name("admin_consent")
@bp.route(route="auth/admin-consent", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page_endpoint
def admin_consent(request: PageRequest) -> Page | Redirect:
    """GET: the admin-consent page. POST: go to Entra's admin-consent endpoint (state stored, bound to
    this browser)."""
    principal = identify(request.http, kinds=PEOPLE, person_role=ADMIN_CONSENT_ROLE)
    if request.method != "POST":
        return Page(
            "consent.html",
            {
                "principal": principal,
                "title": "Admin consent",
                "active": "consent",
                "outcome": "",
                "detail": "",
            },
        )
    origin = app_origin(request.http)
    require_same_origin(request, origin)
    require_csrf_token(request, principal)
    services = runtime.current()
    settings = services.settings()
    state = secrets.token_urlsafe(32)
    binding = services.auth_flows().put({"state": state}, extra={"kind": "admin-consent"})
    query = urlencode(
        {
            "client_id": settings.client_id,
            "scope": settings.graph_scope,
            "redirect_uri": origin + CONSENT_CALLBACK_PATH,
            "state": state,
        }
    )
    cookie = set_cookie(FLOW_COOKIE, binding, origin=origin, max_age=FLOW_COOKIE_SECONDS)
    return Redirect(f"{settings.authority}/v2.0/adminconsent?{query}", status=303, cookies=(cookie,))


@bp.function_name("admin_consent_callback")
@bp.route(route="auth/admin-consent/callback", methods=[func.HttpMethod.GET])
@page_endpoint
def admin_consent_callback(request: PageRequest) -> Page | Redirect:
    """Entra's answer: ``admin_consent=True&tenant=…&state=…&scope=…`` or ``error=…&state=…``."""
    principal = identify(request.http, kinds=PEOPLE, person_role=ADMIN_CONSENT_ROLE)
    services = runtime.current()
    origin = app_origin(request.http)
    taken = services.auth_flows().take(request.params.get("state"), cookie_value(request.http, FLOW_COOKIE))
    if (taken.extra or {}).get("kind") != "admin-consent":
        raise AuthFlowUnknown("This response does not belong to an admin consent started here")
    context = {"principal": principal, "title": "Admin consent", "active": "consent", "detail": ""}
    cookies = (clear_cookie(FLOW_COOKIE, origin=origin),)
    error = request.params.get("error")
    if error:
        declined = error in ("consent_required", "access_denied", "permission_denied")
        detail = "you declined, or your account cannot consent for the organisation" if declined else error
        return Page("consent.html", {**context, "outcome": "denied", "detail": detail}, cookies=cookies)
    tenant = (request.params.get("tenant") or "").lower()
    if (
        request.params.get("admin_consent", "").lower() != "true"
        or tenant != services.settings().tenant_id.lower()
    ):
        raise SignInFailed("The consent response names another organisation or is incomplete")
    return Page("consent.html", {**context, "outcome": "granted"}, cookies=cookies)


def _person_or_none(request: PageRequest) -> Principal | None:
    try:
        return identify(request.http, kinds=PEOPLE)
    except SignInRequired:
        return None
