"""Who is calling, decided once per request: a bearer token wins, else the session cookie.

* **A bearer token wins.** When a request carries ``Authorization``, the cookie is not looked at: the token
  alone decides (a valid token of a kind the endpoint refuses is a 403, never a fall-back to the cookie).
  Services therefore never act with a person's session by accident, and a browser's cookie cannot upgrade a
  bad token.
* **People.** The session cookie names a session in Table Storage; no cookie, an unknown, tampered or
  expired one is :class:`~shared.core.errors.SignInRequired` (pages redirect to sign-in, the JSON API
  answers 401). Where the endpoint needs an app role, the session's roles are re-confirmed with Entra
  when older than :data:`~shared.signin.roles.ROLE_CHECK_SECONDS`.
* **Permission** is the endpoint's declared :class:`~shared.identity.access.Access`, checked after
  identification; audited endpoints receive the refusal instead.
"""

from __future__ import annotations

import azure.functions as func

from shared.app.services import Runtime
from shared.core.errors import Forbidden, SignInRequired
from shared.core.records import Record
from shared.identity.access import Access, refusal
from shared.identity.bearer import bearer_token, has_authorization
from shared.identity.principal import Principal
from shared.identity.user_tokens import ClaimsVerifier, UserAssertion, admit
from shared.signin.people import current_session, person_of
from shared.signin.sessions import Session


class Identified(Record):
    """The outcome of :func:`identify`."""

    principal: Principal | None
    session: Session | None = None
    refusal: Forbidden | None = None
    assertion: UserAssertion | None = None


def identify(request: func.HttpRequest, access: Access, *, runtime: Runtime, origin: str) -> Identified:
    """The caller of ``request`` as ``access`` admits it (module docstring).

    Raises:
        Unauthenticated: a bearer token that fails validation, or none where only bearer callers are
            accepted (401 ``unauthenticated``).
        SignInRequired: no credential, a missing, unknown or expired session, or one Entra no longer
            confirms (401; the session is deleted), on an endpoint that accepts people (not raised when
            ``access.optional``: the caller is then None; a bearer token still decides alone there).
        Forbidden: the caller may not call the endpoint (403), unless ``access.audited``; or a person's
            token from a client app outside ``API_ALLOWED_CLIENT_APPS`` (``client_app_not_allowed``).
        CredentialUnavailable, StorageUnavailable: the tenant's keys, the vault or Table Storage are
            down (503).
    """
    headers = request.headers
    if has_authorization(headers) or not access.accepts_people:
        # Without a token, bearer_token raises the 401 every bearer endpoint has always answered.
        validator = runtime.bearer_validator()
        token = bearer_token(headers)
        if "user" in access.kinds and isinstance(validator, ClaimsVerifier):
            # A person's token for this API: checked for its exchange on their behalf (user_tokens).
            allowed = runtime.settings().api_allowed_client_apps
            principal, assertion = admit(validator, token, allowed_client_apps=allowed)
            return _decided(Identified(principal, assertion=assertion), access)
        principal = validator.validate(token)
        return _decided(Identified(principal), access)
    try:
        session = current_session(
            request, sessions=runtime.sessions, origin=origin, bearer_accepted=access.accepts_bearer
        )
    except SignInRequired:
        if access.optional:
            return Identified(None)
        raise
    if access.person_role is not None:
        # The roles decide here: Entra re-confirms them at most every 5 minutes (a refused refresh
        # deletes the session and raises SignInRequired), so a role, account or sign-in taken away in
        # Entra stops working within one period instead of at the session's expiry.
        session = runtime.role_confirmation().confirmed(session)
    principal = person_of(session, client_id=runtime.settings().client_id)
    return _decided(Identified(principal, session), access)


def _decided(identified: Identified, access: Access) -> Identified:
    assert identified.principal is not None  # noqa: S101 - both callers pass one
    refused = refusal(identified.principal, access)
    if refused is None:
        return identified
    if access.audited:
        return identified._replace(refusal=refused)
    raise refused
