"""Admin consent: ``GET /{tenant}/v2.0/adminconsent`` (v2, ``scope`` required) and
``GET /{tenant}/adminconsent``
(v1: every permission the app registration requires).

Only an administrator (``user.is_admin``) may consent. Accepting creates app role assignments for the
application permissions and ``AllPrincipals`` delegated grants, then redirects
``?admin_consent=True&tenant=…&scope=…&state=…`` (v2) or ``?tenant=…&state=…&admin_consent=True`` (v1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.entra import session
from emulator.entra.authorize import scope_redirect_error, trusted_client
from emulator.entra.context import EntraError, resolve_tenant, unknown_tenant_message
from emulator.entra.flows import new_flow, proceed, render_signin
from emulator.entra.grants import admin_consent_plan
from emulator.entra.pages import error_page, error_redirect
from emulator.entra.scopes import ScopeError, parse
from emulator.state import EmulatorState
from emulator.tenants.signin import common_refused, follow_session_user


def routes(state: EmulatorState) -> list[Route]:
    async def start(request: Request, v1: bool) -> Response:
        params = dict(request.query_params)
        segment = request.path_params["tenant"]
        tenant = resolve_tenant(state, segment)
        if tenant is None:
            return error_page(90002, unknown_tenant_message(segment))
        if not params.get("redirect_uri"):
            return error_page(900971, "No reply address provided.")
        try:
            client, redirect_uri = trusted_client(state, params, request)
        except EntraError as early:
            return early.response
        st = params.get("state")
        if not v1 and tenant.kind == "common":
            return common_refused(redirect_uri, st)  # v2 admin consent: a tenant or organizations only
        raw_scope = ""
        if not v1:
            raw_scope = params.get("scope", "").strip()
            if not raw_scope:
                return error_redirect(
                    redirect_uri,
                    "query",
                    st,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                )
            try:
                req = parse(state.directory, raw_scope)
            except ScopeError as exc:
                return scope_redirect_error(state, client, exc, redirect_uri, "query", st)
            for plan in admin_consent_plan(client, req):
                if not plan.scopes and not plan.roles:
                    listed = ", ".join(client.required_permissions) or "(none)"
                    return error_redirect(
                        redirect_uri,
                        "query",
                        st,
                        "invalid_request",
                        650057,
                        "Invalid resource. The client has requested access to a resource which isn't listed "
                        "in the requested permissions in the client's application registration. Client app "
                        f"ID: {client.app_id}({client.display_name}). Resource value from request: "
                        f"{plan.resource.identifier or plan.resource.app.app_id}. Resource app ID: "
                        f"{plan.resource.app.app_id}. List of valid resources from app registration: "
                        f"{listed}.",
                    )
        elif not client.required_permissions:
            return error_redirect(
                redirect_uri,
                "query",
                st,
                "invalid_request",
                650057,
                "Invalid resource. The application registration requires no permissions.",
            )
        flow = new_flow(
            state,
            kind="adminconsent_v1" if v1 else "adminconsent",
            tenant=segment,
            tenant_kind=tenant.kind,
            client_id=client.app_id,
            redirect_uri=redirect_uri,
            response_mode="query",
            state=st,
            scope=raw_scope,
            login_hint=params.get("login_hint") or None,
        )
        follow_session_user(state, tenant.kind, request)  # /organizations: the session user's organisation
        current = session.current(state, request)
        if current is not None and params.get("prompt") != "login":
            return proceed(state, flow, current[1], current[0].sid)
        return render_signin(state, flow, username=params.get("login_hint", ""))

    async def v2(request: Request) -> Response:
        return await start(request, v1=False)

    async def v1(request: Request) -> Response:
        return await start(request, v1=True)

    return [
        Route("/{tenant}/v2.0/adminconsent", v2, methods=["GET"]),
        Route("/{tenant}/adminconsent", v1, methods=["GET"]),
    ]
