"""``GET|POST /{tenant}/oauth2/v2.0/authorize``: the authorization code flow (+PKCE), OIDC parameters.

Until the client and its redirect URI are trusted, errors are an HTML page (never a redirect: that would be
an open redirector). After that, errors go back to the redirect URI in the requested response mode.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.clock import CLOCK
from emulator.directory.model import Application, User
from emulator.entra import conditional_access as ca
from emulator.entra import session
from emulator.entra.context import (
    EntraError,
    attribute,
    find_app,
    resolve_tenant,
    single_tenant_refused,
    unknown_tenant_message,
)
from emulator.entra.flows import drop, finish_authorize, new_flow, proceed, render_signin, unknown_client_page
from emulator.entra.grants import missing_consent
from emulator.entra.pages import error_page, error_redirect
from emulator.entra.scopes import ScopeError, parse
from emulator.request_parsing import form_fields
from emulator.state import EmulatorState
from emulator.tenants.signin import follow_session_user

RESPONSE_MODES = ("query", "fragment", "form_post")
PROMPTS = ("login", "none", "consent", "select_account")
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
PLAIN_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def trusted_client(state: EmulatorState, params: dict[str, str], request: Request) -> tuple[Application, str]:
    """The client and redirect URI, or an error page (shared with the admin-consent endpoints)."""
    client_id = params.get("client_id", "")
    if not client_id:
        raise EntraError(
            error_page(900144, "The request body must contain the following parameter: 'client_id'.")
        )
    attribute(request, client_id=client_id)
    client = find_app(state, client_id)
    if client is None:
        raise EntraError(unknown_client_page(state, client_id))
    if not client.enabled:
        raise EntraError(
            error_page(7000112, f"Application '{client.app_id}'({client.display_name}) is disabled.")
        )
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        if len(client.redirect_uris) != 1:
            raise EntraError(error_page(900971, "No reply address provided."))
        redirect_uri = client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:
        raise EntraError(
            error_page(
                50011,
                (
                    f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
                    f"URIs configured for the application '{client.app_id}'. Make sure the redirect URI sent "
                    "in the request matches one added to your application in the Azure portal. Navigate to "
                    "https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
                ),
            )
        )
    return client, redirect_uri


def scope_redirect_error(
    state: EmulatorState, client: Application, exc: ScopeError, redirect_uri: str, mode: str, st: str | None
) -> Response:
    if exc.kind == "unknown_resource":
        return error_redirect(
            redirect_uri,
            mode,
            st,
            "invalid_resource",
            500011,
            f"The resource principal named {exc.scope} was not found in the tenant named "
            f"{state.directory.display_name}. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant. You might have sent "
            "your authentication request to the wrong tenant.",
        )
    if exc.kind == "unknown_scope" and exc.resource is not None:
        return error_redirect(
            redirect_uri,
            mode,
            st,
            "invalid_client",
            650053,
            f"The application '{client.display_name}' asked for scope '{exc.scope}' that doesn't exist on "
            f"the resource '{exc.resource.app_id}'. Contact the app vendor.",
        )
    return error_redirect(
        redirect_uri,
        mode,
        st,
        "invalid_scope",
        70011,
        f"The provided value for the input parameter 'scope' isn't valid. The scope '{exc.scope}' isn't "
        "valid.",
    )


def _hint_matches(user: User, hint: str) -> bool:
    wanted = hint.strip().lower()
    return wanted in (user.user_principal_name.lower(), (user.mail or "").lower())


def routes(state: EmulatorState) -> list[Route]:
    async def authorize(request: Request) -> Response:
        params = dict(request.query_params) if request.method == "GET" else await form_fields(request)
        tenant = resolve_tenant(state, request.path_params["tenant"])
        if tenant is None:
            return error_page(90002, unknown_tenant_message(request.path_params["tenant"]))
        try:
            client, redirect_uri = trusted_client(state, params, request)
        except EntraError as early:
            return early.response
        st = params.get("state")
        mode = params.get("response_mode") or "query"
        if mode not in RESPONSE_MODES:
            return error_redirect(
                redirect_uri,
                "query",
                st,
                "invalid_request",
                70007,
                f"The response_mode '{mode}' is not supported. Supported values are query, fragment and "
                "form_post.",
            )

        def bad(error: str, code: int, message: str) -> Response:
            return error_redirect(redirect_uri, mode, st, error, code, message)

        single_tenant = single_tenant_refused(client, tenant)
        if single_tenant is not None:
            return bad("invalid_request", 50194, single_tenant)
        try:
            ca.parse_claims(params.get("claims"))
        except EntraError:
            return bad("invalid_request", 90023, "The claims parameter is not a valid claims request.")

        response_type = params.get("response_type", "")
        kinds = set(response_type.split())
        if not kinds:
            return bad(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            )
        if kinds != {"code"}:
            if "token" in kinds:
                return bad(
                    "unsupported_response_type",
                    700051,
                    "response_type 'token' is not enabled for the application.",
                )
            if "id_token" in kinds:
                return bad(
                    "unsupported_response_type",
                    700054,
                    "response_type 'id_token' is not enabled for the application.",
                )
            return bad(
                "unsupported_response_type",
                70005,
                "The provided value for the input parameter 'response_type' is not allowed for this "
                f"request. Expected value is 'code'. Received '{response_type}'.",
            )
        if "resource" in params:
            return bad("invalid_request", 901002, "The 'resource' request parameter is not supported.")
        raw_scope = params.get("scope", "").strip()
        if not raw_scope:
            return bad(
                "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
        try:
            parse(state.directory, raw_scope)
        except ScopeError as exc:
            return scope_redirect_error(state, client, exc, redirect_uri, mode, st)
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if method is not None and method not in ("S256", "plain"):
            return bad(
                "invalid_request",
                90023,
                f"The code_challenge_method '{method}' is not supported. Supported values are S256 and "
                "plain.",
            )
        if method is not None and not challenge:
            return bad(
                "invalid_request",
                50147,
                "The code_challenge parameter is required when code_challenge_method is present.",
            )
        if challenge is not None:
            method = method or "plain"
            pattern = S256_CHALLENGE if method == "S256" else PLAIN_CHALLENGE
            if not pattern.match(challenge):
                return bad("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
        prompt = params.get("prompt")
        if prompt is not None and prompt not in PROMPTS:
            return bad("invalid_request", 90023, f"Unsupported 'prompt' value '{prompt}'.")
        hint = params.get("login_hint", "")

        flow = new_flow(
            state,
            kind="authorize",
            tenant=request.path_params["tenant"],
            tenant_kind=tenant.kind,
            client_id=client.app_id,
            redirect_uri=redirect_uri,
            response_mode=mode,
            state=st,
            scope=raw_scope,
            nonce=params.get("nonce"),
            code_challenge=challenge,
            code_challenge_method=method if challenge is not None else None,
            prompt=prompt,
            login_hint=hint or None,
            client_info=params.get("client_info") == "1",
            claims=params.get("claims") or None,
        )
        follow_session_user(state, tenant.kind, request)  # /organizations: the session user's organisation
        current = session.current(state, request)
        if current is not None and ca.session_too_old(
            state, client, current[1], current[0].created, CLOCK.time()
        ):
            current = None  # a sign-in-frequency policy: the user must sign in again
        if prompt == "none":
            drop(state, flow)
            if current is None:
                return bad(
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in. The cookies used to "
                    "represent the user's session were not sent in the request to Azure AD.",
                )
            sess, user = current
            if hint and not _hint_matches(user, hint):
                return bad(
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but the signed-in user does not match the login_hint.",
                )
            req = parse(state.directory, raw_scope)
            if missing_consent(state.directory, client, req, user):
                return bad(
                    "consent_required",
                    65001,
                    "The user or administrator has not consented to use the application with ID "
                    f"'{client.app_id}' named '{client.display_name}'. Send an interactive authorization "
                    "request for this user and resource.",
                )
            if ca.blocked(state, client, user) is not None:
                return bad(
                    "interaction_required",
                    53003,
                    "Access has been blocked by Conditional Access policies. The access policy does not "
                    "allow token issuance.",
                )
            if ca.mfa_policy(state, client, user) is not None and not sess.mfa:
                return bad(
                    "interaction_required",
                    50076,
                    "Due to a configuration change made by your administrator, or because you moved to a new "
                    "location, you must use multi-factor authentication to access "
                    f"'{req.resource(state.directory).app.app_id}'.",
                )
            return finish_authorize(state, flow, user, sess.sid)
        reuse = current is not None and prompt in (None, "consent")
        if current is not None and reuse and (not hint or _hint_matches(current[1], hint)):
            return proceed(state, flow, current[1], current[0].sid)
        prefill = hint or (current[1].user_principal_name if current and prompt == "select_account" else "")
        return render_signin(state, flow, username=prefill)

    return [Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"])]
