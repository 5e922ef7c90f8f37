"""The sign-in, MFA and consent form posts: ``POST /{tenant}/login``, ``mfa`` and ``consent``.

Both require the hidden ``flow`` field naming a live flow in the matching stage (CSRF protection: the id
is random and only ever rendered into the page); a browser ``Origin`` other than this origin is refused.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.clock import CLOCK
from emulator.entra import session
from emulator.entra.context import attribute, host
from emulator.entra.flows import (
    accept,
    decline,
    drop,
    proceed,
    redirect_error,
    render_signin,
    stale_flow_page,
)
from emulator.entra.pages import error_page
from emulator.entra.store import Flow, get_store
from emulator.request_parsing import form_fields
from emulator.state import EmulatorState
from emulator.tenants.signin import follow_flow_user, foreign_user_refusal, locate_user


def _own_origins(state: EmulatorState) -> set[str]:
    """Where the sign-in pages are served: the authority host and its ``localhost`` alias (named by the
    server certificate and by instance discovery). A page loaded from either posts back to that origin."""
    return {host(state), f"https://localhost:{state.config.port_of('login')}"}


def _flow(state: EmulatorState, request: Request, form: dict[str, str], stage: str) -> Flow | Response:
    origin = request.headers.get("origin")
    # "null" is what browsers send from privacy-restricted contexts; the flow id remains the CSRF token.
    if origin is not None and origin != "null" and origin.rstrip("/") not in _own_origins(state):
        return error_page(
            90023, "The request was not sent by this sign-in page (cross-site form post).", status=403
        )
    flow = get_store(state).flows.get(form.get("flow", ""))
    if flow is None or flow.expires_at < CLOCK.time() or flow.stage != stage:
        return stale_flow_page()
    attribute(request, client_id=flow.client_id)
    follow_flow_user(state, flow)
    return flow


def routes(state: EmulatorState) -> list[Route]:
    async def login(request: Request) -> Response:
        form = await form_fields(request)
        flow = _flow(state, request, form, "signin")
        if isinstance(flow, Response):
            return flow
        username = form.get("username", "").strip()
        password = form.get("password", "")
        if not username:
            return render_signin(
                state, flow, error="Enter a valid email address, phone number, or Skype name."
            )
        user, elsewhere = locate_user(state, flow, username)
        if user is None:
            return render_signin(
                state,
                flow,
                username=username,
                error=(
                    "AADSTS50034: This username may be incorrect. The user account does not exist in the "
                    f"'{state.directory.display_name}' directory. To sign into this application, the account "
                    "must be added to the directory."
                ),
            )
        if not hmac.compare_digest(user.password.encode(), password.encode()):
            return render_signin(
                state,
                flow,
                username=username,
                error=(
                    "AADSTS50126: Your account or password is incorrect. Error validating credentials due "
                    "to invalid username or password."
                ),
            )
        if not user.account_enabled:
            return render_signin(
                state,
                flow,
                username=username,
                error=(
                    "AADSTS50057: The user account is disabled. Your account has been locked. Contact your "
                    "support person to unlock it, then try again."
                ),
            )
        if elsewhere:
            return foreign_user_refusal(state, flow, user)
        sess, cookie = session.start(state, user)
        response = proceed(state, flow, user, sess.sid)
        session.set_cookie(response, cookie)
        return response

    async def consent(request: Request) -> Response:
        form = await form_fields(request)
        flow = _flow(state, request, form, "consent")
        if isinstance(flow, Response):
            return flow
        user = state.directory.user(flow.user_id or "")
        drop(state, flow)  # one answer per consent page
        if user is None or not user.account_enabled:
            return stale_flow_page()
        if form.get("action") != "accept" or flow.admin_required:
            return decline(flow)
        return accept(state, flow, user, organization=form.get("consent_org") == "true")

    async def mfa(request: Request) -> Response:
        form = await form_fields(request)
        flow = _flow(state, request, form, "mfa")
        if isinstance(flow, Response):
            return flow
        user = state.directory.user(flow.user_id or "")
        current = get_store(state).sessions.get(flow.sid or "")
        if user is None or not user.account_enabled or current is None:
            drop(state, flow)
            return stale_flow_page()
        if form.get("action") != "approve":
            drop(state, flow)
            return redirect_error(
                flow, "access_denied", 500121, "Authentication failed during strong authentication request."
            )
        current.mfa = True  # the second factor now covers the whole SSO session
        flow.stage = "signin"
        return proceed(state, flow, user, current.sid)

    return [
        Route("/{tenant}/login", login, methods=["POST"]),
        Route("/{tenant}/consent", consent, methods=["POST"]),
        Route("/{tenant}/mfa", mfa, methods=["POST"]),
    ]
