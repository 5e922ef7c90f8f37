"""``GET|POST /{tenant}/oauth2/v2.0/logout``: ends the SSO session and clears its cookie.

``post_logout_redirect_uri`` is honoured only when it is registered for the client named by ``client_id`` or
by the ``aud`` of a genuine ``id_token_hint`` (signature checked, expiry ignored): the app's post-logout URIs
or its redirect URIs (Entra validates against the reply URLs). A request naming no client (the v2 docs'
canonical URL) redirects when some application of the tenant registers the URI. Otherwise the generic
"You signed out" page is shown: the endpoint never redirects anywhere unregistered.
"""

from __future__ import annotations

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.directory.model import Application
from emulator.entra import session
from emulator.entra.context import attribute, find_app, resolve_tenant, unknown_tenant_message
from emulator.entra.pages import error_page, render, respond
from emulator.request_parsing import form_fields
from emulator.state import EmulatorState


def _client_from_hint(state: EmulatorState, hint: str) -> str | None:
    try:
        kid = str(jwt.get_unverified_header(hint).get("kid", ""))
    except jwt.PyJWTError:
        return None
    key = state.keys.find(kid)
    if key is None:
        return None
    try:
        claims = jwt.decode(
            hint,
            key.private_key.public_key(),
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        return None
    aud = claims.get("aud")
    return aud if isinstance(aud, str) and claims.get("tid") == state.directory.tenant_id else None


def _registered(client: Application | None, target: str) -> bool:
    return client is not None and (
        target in client.post_logout_redirect_uris or target in client.redirect_uris
    )


def _registered_anywhere(state: EmulatorState, target: str) -> bool:
    """Without ``client_id`` or ``id_token_hint`` (the v2 docs' canonical logout URL carries neither) the
    URI must still be registered, by some enabled application of the tenant: never an open redirect."""
    return any(_registered(app, target) for app in state.directory.apps.values() if app.enabled)


def routes(state: EmulatorState) -> list[Route]:
    async def logout(request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(await form_fields(request))
        segment = request.path_params["tenant"]
        if resolve_tenant(state, segment) is None:
            return error_page(90002, unknown_tenant_message(segment))
        session.end(state, request)
        client_id = params.get("client_id") or (
            _client_from_hint(state, params["id_token_hint"]) if params.get("id_token_hint") else None
        )
        attribute(request, client_id=client_id)
        target = params.get("post_logout_redirect_uri")
        client = find_app(state, client_id) if client_id else None
        if target and (
            _registered(client, target)
            if client_id or params.get("id_token_hint")
            else _registered_anywhere(state, target)
        ):
            st = params.get("state")
            response = respond(target, [("state", st)] if st is not None else [], "query")
        else:
            response = render("signedout.html", tenant_name=state.directory.display_name)
        session.clear_cookie(response)
        return response

    return [Route("/{tenant}/oauth2/v2.0/logout", logout, methods=["GET", "POST"])]
