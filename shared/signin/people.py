"""A person signed in to the pages: their session, as found from the session cookie, and the
:class:`~shared.identity.principal.Principal` it names; their forms' CSRF token.

Roles come from the ID token's ``roles`` (held in the session's claims): the sign-in's, re-confirmed with
Entra at most every 5 minutes where an endpoint needs a role (:mod:`shared.signin.roles`).
"""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from shared.core.errors import SignInRequired
from shared.identity.key_ring import SessionKeyRing
from shared.identity.principal import Principal
from shared.signin.sessions import Session, SessionStore
from shared.web.cookies import session_id_of

#: The purpose under which the session key ring signs CSRF tokens.
CSRF_PURPOSE = "csrf"
#: The longest CSRF token verified (the HMAC is 43 characters; anything longer is refused unread).
_MAX_CSRF = 512


def current_session(
    request: func.HttpRequest, *, sessions: Callable[[], SessionStore], origin: str, bearer_accepted: bool
) -> Session:
    """The live session named by the request's cookie, its last-seen time refreshed (coarsened: usually
    no write at all). ``sessions`` gives the store, asked for only when there is a cookie (the store needs
    Table Storage and the session key; a request without a cookie needs neither).

    Raises:
        SignInRequired: no cookie (``unauthenticated`` where a bearer token would also do, else
            ``sign_in_required``), or an unknown, expired or signed-out session (``session_expired``).
        StorageUnavailable, CredentialUnavailable: Table Storage or the session key is unavailable (503).
    """
    session_id = session_id_of(request, origin)
    if session_id is None:
        if bearer_accepted:
            raise SignInRequired("Sign in to this app, or send a bearer token", code="unauthenticated")
        raise SignInRequired("Sign in to this app to continue", code="sign_in_required")
    store = sessions()
    session = store.load(session_id)
    if session is None:
        raise SignInRequired("Your session has ended. Sign in again.", code="session_expired")
    saved = store.save(session)
    if saved is None:  # signed out (or expired) by another request meanwhile
        raise SignInRequired("Your session has ended. Sign in again.", code="session_expired")
    return saved


def person_of(session: Session, *, client_id: str) -> Principal:
    """The person ``session`` belongs to, with the roles the session holds (``client_id``: this app)."""
    claims = session.claims
    return Principal(
        kind="person",
        app_id=client_id,
        object_id=claims.oid,
        tenant_id=claims.tid,
        roles=frozenset(claims.roles),
        user_principal_name=claims.preferred_username,
        display_name=claims.name,
    )


def csrf_token(keys: SessionKeyRing, session: Session) -> str:
    """The CSRF token of ``session``'s forms: an HMAC of the session id under a key derived from the
    session key ring (any cached key version verifies it)."""
    return keys.sign(CSRF_PURPOSE, session.id.encode())


def verify_csrf(keys: SessionKeyRing, session: Session, token: str) -> bool:
    """Whether ``token`` is ``session``'s CSRF token (constant-time)."""
    if not token or len(token) > _MAX_CSRF:
        return False
    return keys.verify(CSRF_PURPOSE, session.id.encode(), token)
