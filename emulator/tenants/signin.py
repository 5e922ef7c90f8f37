"""Sign-in across organisations.

* Under ``/organizations`` (and ``/common``) the user's organisation is found from the sign-in name, and
  the rest of the flow (consent, MFA, the code, the token request) is served for it: ``tid``, ``iss`` and
  the consent all belong to that organisation (v2-protocols: "the user's home tenant";
  access-tokens.md: ``iss`` = ``https://login.microsoftonline.com/{tid}/v2.0``).
* Under a tenant-specific authority, a user of another organisation is refused after their password:
  AADSTS50020 ``access_denied`` to the redirect URI (azure-docs#114009: "User from another directory on a
  tenant-specific URL").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from emulator.directory.model import User
from emulator.tenants.registry import activate, active, slot_of_user, slot_of_username

if TYPE_CHECKING:
    from emulator.entra.context import Tenant
    from emulator.entra.store import Flow
    from emulator.state import EmulatorState

MULTI = ("organizations", "common")


def locate_user(state: EmulatorState, flow: Flow, username: str) -> tuple[User | None, bool]:
    """The user a sign-in name names, and whether they belong to another organisation than a
    tenant-specific flow's. Under ``/organizations``/``/common`` their organisation becomes the active one."""
    from emulator.entra.token_endpoint import find_user  # lazily: token_endpoint imports the state

    user = find_user(state, username)
    if user is not None:
        return user, False
    slot = slot_of_username(state, username)
    if slot is None:
        return None, False
    if flow.tenant_kind in MULTI:
        activate(None if slot is state.home else slot)
        return find_user(state, username), False
    return slot.directory.user(username.strip()), True


def follow_flow_user(state: EmulatorState, flow: Flow) -> None:
    """Serve a later step of a ``/organizations`` flow (consent, MFA posts) for the signed-in user's
    organisation."""
    if flow.tenant_kind in MULTI and flow.user_id:
        slot = slot_of_user(state, flow.user_id)
        activate(None if slot is None or slot is state.home else slot)


def follow_grant_user(state: EmulatorState, tenant: Tenant, form: dict[str, str]) -> None:
    """Redeem a code or refresh token, or check a password, under ``/organizations`` for the organisation
    of the user it belongs to (the token endpoint is the same URL for all of them)."""
    if tenant.kind not in MULTI or active() is not None:
        return
    from emulator.entra.store import get_store  # lazily: the Entra store imports the state

    store = get_store(state)
    grant = form.get("grant_type")
    user_id: str | None = None
    if grant == "authorization_code":
        code = store.codes.get(form.get("code", ""))
        user_id = code.user_id if code else None
    elif grant == "refresh_token":
        refresh = store.refresh_tokens.get(form.get("refresh_token", ""))
        user_id = refresh.user_id if refresh else None
    elif grant == "password" and form.get("username"):
        slot = slot_of_username(state, form["username"])
        activate(None if slot is None or slot is state.home else slot)
        return
    if user_id:
        slot = slot_of_user(state, user_id)
        activate(None if slot is None or slot is state.home else slot)


def foreign_user_refusal(state: EmulatorState, flow: Flow, user: User) -> Response:
    """AADSTS50020 to the client: the account exists, in another organisation."""
    from emulator.entra.flows import drop, redirect_error  # lazily: flows imports the state

    drop(state, flow)
    home = slot_of_user(state, user.id)
    idp = f"https://sts.windows.net/{home.tenant_id if home else ''}/"
    client = state.directory.app(flow.client_id)
    name = client.display_name if client else flow.client_id
    return redirect_error(
        flow,
        "access_denied",
        50020,
        f"User account '{{EUII Hidden}}' from identity provider '{idp}' does not exist in tenant "
        f"'{state.directory.display_name}' and cannot access the application '{flow.client_id}'({name}) in "
        "that tenant. The account needs to be added as an external user in the tenant first. Sign out and "
        "sign in again with a different Microsoft Entra user account.",
    )


def follow_session_user(state: EmulatorState, tenant_kind: str, request: Request) -> None:
    """Single sign-on under ``/organizations``: the browser session's user decides the organisation (the
    cookie's signature is still checked by :func:`emulator.entra.session.current`; this only peeks at the
    session it names). Tenant-specific requests keep their organisation: a session of another one is not
    recognised there."""
    if tenant_kind not in MULTI or active() is not None:
        return
    from emulator.entra.session import COOKIE  # lazily: the Entra modules import the state
    from emulator.entra.store import get_store

    sid = request.cookies.get(COOKIE, "").partition(".")[0]
    session = get_store(state).sessions.get(sid) if sid else None
    if session is not None:
        slot = slot_of_user(state, session.user_id)
        activate(None if slot is None or slot is state.home else slot)


def common_refused(redirect_uri: str, state: str | None) -> Response:
    """``/common/v2.0/adminconsent``: the v2 endpoint takes a tenant id, a domain or ``organizations``
    (v2-admin-consent: personal accounts cannot consent). Observed answer (MicrosoftDocs/azure-docs#45151):
    ``error=invalid_request`` "The provided request must include a 'response_type' input parameter." (the
    AADSTS900144 code is **[INFERRED]**)."""
    from emulator.entra.pages import error_redirect  # lazily: the Entra modules import the state

    return error_redirect(
        redirect_uri,
        "query",
        state,
        "invalid_request",
        900144,
        "The provided request must include a 'response_type' input parameter.",
    )
