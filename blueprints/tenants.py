"""Several organisations (``ENTRA_TENANCY=multi``; every route answers 404 in a single-tenant deployment).

* ``GET /onboard``: what onboarding is; its form (``POST /onboard``, same origin) sends an administrator of
  another organisation to sign in through ``/organizations``.
* ``GET /onboard/callback``: the registered redirect URI of both the sign-in and the admin consent that
  follows it (:mod:`shared.tenants.onboarding`); every outcome (onboarded, declined, not an administrator,
  partial grant) ends on a page that says so.
* ``GET /tenants``: the organisations and their status, for operators of the home tenant holding the app
  role ``Tenants.Manage``; ``POST /tenants`` (same origin + CSRF token) suspends, resumes or offboards one.
"""

from __future__ import annotations

import azure.functions as func

from shared.core import NotFound
from shared.edge import Call, page
from shared.identity import PEOPLE, Access, AppRole
from shared.tenants import start_page
from shared.web import Page, Redirect, app_origin, new_blueprint, require_csrf_token, require_same_origin

bp = new_blueprint()

OPERATORS = Access(kinds=PEOPLE, person_role=AppRole.TENANTS_MANAGE)


def _require_multi(call: Call) -> str:
    """This app's origin, when the deployment serves several organisations (else 404)."""
    settings = call.runtime.settings()
    if not settings.is_multi_tenant:
        raise NotFound("This deployment serves one organisation: there is nothing to onboard or manage")
    return app_origin(call.request.http, settings.public_base_url)


@bp.function_name("onboard")
@bp.route(route="onboard", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page(None, same_origin_first=True)
def onboard(call: Call) -> Page | Redirect:
    """GET: the onboarding page. POST (this app's own form): sign the administrator in."""
    origin = _require_multi(call)
    if call.request.method != "POST":
        return start_page()
    return call.runtime.onboarding().start(origin, call.request.form.get("mailbox_group", ""))


@bp.function_name("onboard_callback")
@bp.route(route="onboard/callback", methods=[func.HttpMethod.GET])
@page(None)
def onboard_callback(call: Call) -> Page | Redirect:
    """Entra's answers: the sign-in's code, then the admin consent's outcome."""
    origin = _require_multi(call)
    return call.runtime.onboarding().callback(call.request, origin)


@bp.function_name("tenants_page")
@bp.route(route="tenants", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
@page(OPERATORS, same_origin_first=True)
def tenants(call: Call) -> Page | Redirect:
    """GET: the organisations. POST: suspend, resume or offboard one."""
    _require_multi(call)
    admin = call.runtime.tenant_admin()
    admin.require_operator(call.caller)
    if call.request.method != "POST":
        return admin.page()
    require_same_origin(call.request, call.origin)
    require_csrf_token(call.request, call.verify_csrf)
    return admin.apply(call.request.form, call.caller)
