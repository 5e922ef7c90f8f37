"""Sign-in, sign-out and admin consent for people (HTML; see :mod:`shared.signin.web`).

* ``GET /auth/login?next=/path``: starts the auth-code flow (PKCE) and redirects to Entra ID.
* ``GET|POST /auth/callback``: the registered redirect URI; completes the flow once, creates the session.
* ``GET /auth/logout`` shows the sign-out form; ``POST /auth/logout`` (same origin + CSRF token) deletes the
  session and ends the Entra session.
* ``GET /auth/admin-consent``: for people holding this API's app role ``Reports.Run`` (the operator
  role); its form (``POST``) goes to Entra's v2 ``adminconsent`` endpoint with
  ``scope={GRAPH_ENDPOINT}/.default``; ``GET /auth/admin-consent/callback`` validates the state (bound to
  this browser by its flow cookie, which the answer clears) and the tenant and shows granted, declined
  or the error. Entra itself still requires a directory administrator. (Not under ``/admin``: the
  Functions host reserves ``/admin/*``.)
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import azure.functions as func

from shared.core import AuthFlowUnknown, SignInFailed
from shared.edge import Call, page
from shared.identity import PEOPLE, Access, AppRole
from shared.signin import callback_error, complete_sign_in, sign_in_redirect, sign_out
from shared.web import (
    CONSENT_CALLBACK_PATH,
    FLOW_COOKIE,
    FLOW_COOKIE_SECONDS,
    Page,
    Redirect,
    app_origin,
    clear_cookie,
    cookie_value,
    new_blueprint,
    require_csrf_token,
    require_same_origin,
    safe_next,
    set_cookie,
)

bp = new_blueprint()

#: People who may start admin consent: the operators (documented in docs/sign-in.md).
CONSENTING = Access(kinds=PEOPLE, person_role=AppRole.REPORTS_RUN)


@bp.function_name("auth_login")
@bp.route(route="auth/login", methods=[func.HttpMethod.GET])
@page(None)
def login(call: Call) -> Page | Redirect:
    """Start a sign-in that comes back to ``next`` (a same-origin path; anything else becomes ``/``)."""
    request = call.request
    origin = app_origin(request.http, call.runtime.settings().public_base_url)
    return sign_in_redirect(
        request, services=call.runtime, origin=origin, next_path=safe_next(request.params.get("next"))
    )


@bp.function_name("auth_callback")
@bp.route(route="auth/callback", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page(None)
def callback(call: Call) -> Page | Redirect:
    """Complete the sign-in (see :func:`shared.signin.web.complete_sign_in`); failures are error pages
    with a "try again" link that starts a new sign-in."""
    runtime = call.runtime
    origin = app_origin(call.request.http, runtime.settings().public_base_url)
    # Multi-tenant: a person of an organisation that is not served gets the 403 page, and no session.
    admit = runtime.tenants().get if runtime.settings().is_multi_tenant else None
    return complete_sign_in(
        call.request, services=runtime, settings=runtime.sign_in_settings(), origin=origin, admit=admit
    )


@bp.function_name("auth_logout")
@bp.route(route="auth/logout", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page(Access(kinds=PEOPLE, optional=True))
def logout(call: Call) -> Page | Redirect:
    """GET: the sign-out form. POST (from this app's pages only): sign out."""
    request = call.request
    if request.method != "POST":
        return Page("signout.html", {"title": "Sign out"})
    require_same_origin(request, call.origin)
    if call.principal is not None:
        require_csrf_token(request, call.verify_csrf)
    runtime = call.runtime
    return sign_out(
        request, sessions=runtime.sessions(), settings=runtime.sign_in_settings(), origin=call.origin
    )


@bp.function_name("admin_consent")
@bp.route(route="auth/admin-consent", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page(CONSENTING)
def admin_consent(call: Call) -> Page | Redirect:
    """GET: the admin-consent page. POST: go to Entra's admin-consent endpoint (the state sealed into
    this browser's flow cookie)."""
    request = call.request
    if request.method != "POST":
        return Page(
            "consent.html", {"title": "Admin consent", "active": "consent", "outcome": "", "detail": ""}
        )
    origin = call.origin
    require_same_origin(request, origin)
    require_csrf_token(request, call.verify_csrf)
    settings = call.runtime.settings()
    state = secrets.token_urlsafe(32)
    sealed = call.runtime.auth_flows().put({"state": state}, extra={"kind": "admin-consent"})
    query = urlencode(
        {
            "client_id": settings.client_id,
            "scope": settings.graph_scope,
            "redirect_uri": origin + CONSENT_CALLBACK_PATH,
            "state": state,
        }
    )
    cookie = set_cookie(FLOW_COOKIE, sealed, origin=origin, max_age=FLOW_COOKIE_SECONDS)
    return Redirect(
        f"{call.services.tenant.authority}/v2.0/adminconsent?{query}", status=303, cookies=(cookie,)
    )


@bp.function_name("admin_consent_callback")
@bp.route(route="auth/admin-consent/callback", methods=[func.HttpMethod.GET])
@page(CONSENTING)
def admin_consent_callback(call: Call) -> Page | Redirect:
    """Entra's answer: ``admin_consent=True&tenant=…&state=…&scope=…`` or ``error=…&state=…``."""
    request = call.request
    origin = call.origin
    taken = call.runtime.auth_flows().take(
        request.params.get("state"), cookie_value(request.http, FLOW_COOKIE, origin)
    )
    if (taken.extra or {}).get("kind") != "admin-consent":
        raise AuthFlowUnknown("This response does not belong to an admin consent started here")
    context = {"title": "Admin consent", "active": "consent", "detail": ""}
    cookies = (clear_cookie(FLOW_COOKIE, origin=origin),)
    error = callback_error(request.params)  # a malformed error is refused unrepeated (sign_in_failed)
    if error is not None:
        declined = error in ("consent_required", "access_denied", "permission_denied")
        detail = "you declined, or your account cannot consent for the organisation" if declined else error
        return Page("consent.html", {**context, "outcome": "denied", "detail": detail}, cookies=cookies)
    tenant = (request.params.get("tenant") or "").lower()
    if (
        request.params.get("admin_consent", "").lower() != "true"
        or tenant != call.services.tenant.tenant_id.lower()
    ):
        raise SignInFailed("The consent response names another organisation or is incomplete")
    return Page("consent.html", {**context, "outcome": "granted"}, cookies=cookies)
