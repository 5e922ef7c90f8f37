"""The interactive state machine shared by /authorize and the admin-consent endpoints.

sign-in page → (session) → consent page when needed → redirect to the client with a code, an
admin-consent result or an error. Pages post back to ``/{tenant}/login`` and ``/{tenant}/consent``
(:mod:`emulator.entra.signin`) with the flow id, which is the forms' CSRF token.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from emulator.clock import CLOCK
from emulator.directory.model import Application, User
from emulator.entra import conditional_access as ca
from emulator.entra import stepup
from emulator.entra.grants import (
    UNCONFIGURED,
    AdminGrant,
    admin_consent_all,
    admin_consent_plan,
    apply_admin_consent,
    grant_user_consent,
    issue_code,
    missing_consent,
    wanted_consent,
)
from emulator.entra.pages import Params, error_page, error_redirect, render, respond
from emulator.entra.scopes import ScopeError, ScopeRequest, admin_only, parse
from emulator.entra.store import Flow, get_store, new_id
from emulator.state import EmulatorState


def new_flow(state: EmulatorState, /, **fields: Any) -> Flow:
    store = get_store(state)
    store.maybe_sweep()
    flow = Flow(id=new_id("", 24), expires_at=CLOCK.time() + store.settings.flow_lifetime, **fields)
    store.flows[flow.id] = flow
    return flow


def drop(state: EmulatorState, flow: Flow) -> None:
    get_store(state).flows.pop(flow.id, None)


def stale_flow_page() -> Response:
    return error_page(
        50089,
        "Authentication failed due to flow token expired. Start the sign-in again from the application.",
    )


def unknown_client_page(state: EmulatorState, client_id: str) -> Response:
    return error_page(
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{state.directory.display_name}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have sent your "
        "authentication request to the wrong tenant.",
    )


def redirect_error(
    flow: Flow,
    error: str,
    code: int,
    message: str,
    *,
    subcode: str | None = None,
    first: Params | None = None,
) -> Response:
    return error_redirect(
        flow.redirect_uri, flow.response_mode, flow.state, error, code, message, subcode=subcode, first=first
    )


def render_signin(
    state: EmulatorState, flow: Flow, *, username: str = "", error: str = "", status: int = 200
) -> Response:
    client = state.directory.app(flow.client_id)
    return render(
        "signin.html",
        status=status,
        action=f"/{flow.tenant}/login",
        flow_id=flow.id,
        app_name=client.display_name if client else flow.client_id,
        username=username,
        error=error,
        tenant_name=state.directory.display_name,
    )


def _permission_rows(
    state: EmulatorState, scopes: dict[str, set[str]], roles: dict[str, set[str]] | None = None
) -> list[dict[str, str]]:
    rows = []
    for kind, table in (("Delegated", scopes), ("Application", roles or {})):
        for resource_id, names in table.items():
            resource = state.directory.app(resource_id)
            for name in sorted(n for n in names if n != UNCONFIGURED):
                label = resource.display_name if resource else resource_id
                rows.append({"resource_id": resource_id, "resource": label, "scope": name, "kind": kind})
    return rows


def _consent_page(
    state: EmulatorState,
    flow: Flow,
    client: Application,
    user: User,
    rows: list[dict[str, str]],
    *,
    admin_consent: bool,
) -> Response:
    flow.stage = "consent"
    return render(
        "consent.html",
        action=f"/{flow.tenant}/consent",
        flow_id=flow.id,
        app_name=client.display_name,
        user_name=user.user_principal_name,
        permissions=rows,
        user_display=user.display_name,
        admin_required=flow.admin_required,
        admin_consent=admin_consent,
        can_consent_org=user.is_admin and not admin_consent,
        tenant_name=state.directory.display_name,
    )


def parse_flow_scope(state: EmulatorState, flow: Flow) -> ScopeRequest | None:
    try:
        return parse(state.directory, flow.scope)
    except ScopeError:
        return None


def admin_plans(state: EmulatorState, flow: Flow, client: Application) -> list[AdminGrant]:
    if flow.kind == "adminconsent_v1":
        return admin_consent_all(state.directory, client)
    req = parse_flow_scope(state, flow)
    return admin_consent_plan(client, req) if req else []


def _conditional_access(
    state: EmulatorState, flow: Flow, client: Application, user: User, sid: str
) -> Response | None:
    """A blocking policy ends the flow (AADSTS53003 to the client, ``access_denied`` **[INFERRED]**); an MFA
    policy asks for the second factor once per session (the MFA page); None lets the flow go on."""
    if ca.blocked(state, client, user) is not None:
        drop(state, flow)
        return redirect_error(
            flow,
            "access_denied",
            53003,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token "
            "issuance.",
        )
    current = get_store(state).sessions.get(sid)
    # A claims challenge naming an MFA policy (step-up for an on-behalf-of exchange) asks for MFA too.
    stepped_up = stepup.demands_mfa(state, flow.claims, user)
    mfa_needed = ca.mfa_policy(state, client, user) is not None or stepped_up
    if mfa_needed and (current is None or not current.mfa):
        flow.stage = "mfa"
        return render(
            "mfa.html",
            action=f"/{flow.tenant}/mfa",
            flow_id=flow.id,
            app_name=client.display_name,
            user_name=user.user_principal_name,
            tenant_name=state.directory.display_name,
        )
    return None


def proceed(state: EmulatorState, flow: Flow, user: User, sid: str) -> Response:
    """The user is known (fresh sign-in or SSO session): consent if needed, then answer the client."""
    client = state.directory.app(flow.client_id)
    if client is None:
        drop(state, flow)
        return unknown_client_page(state, flow.client_id)
    flow.user_id, flow.sid = user.id, sid
    gate = _conditional_access(state, flow, client, user, sid)
    if gate is not None:
        return gate
    if flow.kind == "authorize":
        req = parse_flow_scope(state, flow)
        if req is None:
            drop(state, flow)
            return redirect_error(
                flow,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' isn't valid.",
            )
        missing = missing_consent(state.directory, client, req, user)
        if any(UNCONFIGURED in names for names in missing.values()):
            drop(state, flow)
            return redirect_error(
                flow,
                "invalid_request",
                650057,
                "Invalid resource. The client has requested access to a resource which isn't listed in the "
                "requested permissions in the client's application registration. Client app ID: "
                f"{client.app_id}({client.display_name}).",
            )
        if not missing and flow.prompt != "consent":
            return finish_authorize(state, flow, user, sid)
        shown = missing if missing else wanted_consent(state.directory, client, req)
        flow.admin_required = admin_only(shown) and not user.is_admin
        return _consent_page(state, flow, client, user, _permission_rows(state, shown), admin_consent=False)
    if not user.is_admin:
        drop(state, flow)
        message = (
            "Administrator consent is required. The signed-in user is not an administrator of the tenant "
            "and cannot grant consent on behalf of the organization."
        )
        return redirect_error(
            flow, "consent_required" if flow.kind == "adminconsent" else "access_denied", 90094, message
        )
    plans = admin_plans(state, flow, client)
    scopes = {p.resource.app.app_id: set(p.scopes) for p in plans}
    roles = {p.resource.app.app_id: set(p.roles) for p in plans}
    rows = _permission_rows(state, scopes, roles)
    return _consent_page(state, flow, client, user, rows, admin_consent=True)


def finish_authorize(state: EmulatorState, flow: Flow, user: User, sid: str) -> Response:
    code = issue_code(state, flow, user, sid)
    drop(state, flow)
    params: Params = [("code", code)]
    if flow.client_info:
        params.append(("client_info", state.tokens.client_info(user)))
    params += [("state", flow.state), ("session_state", sid)]
    return respond(flow.redirect_uri, params, flow.response_mode)


def decline(flow: Flow) -> Response:
    if flow.kind == "authorize":
        return redirect_error(
            flow, "access_denied", 65004, "User declined to consent to access the app.", subcode="cancel"
        )
    if flow.kind == "adminconsent":
        return redirect_error(
            flow,
            "consent_required",
            65004,
            "The resource owner or authorization server denied the request.",
            first=[("admin_consent", "True")],
        )
    return respond(
        flow.redirect_uri,
        [
            ("error", "permission_denied"),
            ("error_description", "The admin canceled the request"),
            ("state", flow.state),
        ],
        flow.response_mode,
    )


def accept(state: EmulatorState, flow: Flow, user: User, *, organization: bool) -> Response:
    client = state.directory.app(flow.client_id)
    if client is None:
        return unknown_client_page(state, flow.client_id)
    if flow.kind == "authorize":
        req = parse_flow_scope(state, flow)
        if req is None:
            return redirect_error(
                flow,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' isn't valid.",
            )
        grant_user_consent(
            state.directory,
            client,
            wanted_consent(state.directory, client, req),
            user,
            organization=organization and user.is_admin,
        )
        return finish_authorize(state, flow, user, flow.sid or new_id("", 16))
    plans = admin_plans(state, flow, client)
    granted = apply_admin_consent(state.directory, client, plans)
    tid = state.directory.tenant_id
    if flow.kind == "adminconsent":
        # The documented success shape: admin_consent, tenant, state, then the granted permissions.
        params: Params = [
            ("admin_consent", "True"),
            ("tenant", tid),
            ("state", flow.state),
            ("scope", " ".join(granted)),
        ]
    else:
        params = [("tenant", tid), ("state", flow.state), ("admin_consent", "True")]
    return respond(flow.redirect_uri, params, flow.response_mode)
