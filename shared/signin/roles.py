"""Re-confirming a signed-in person's app roles with Entra, so that losing a role, the account or the
sign-in in Entra ends privileged access within :data:`ROLE_CHECK_SECONDS`, not at the session's expiry.

A session holds the roles of the ID token of its sign-in. On an endpoint that needs an app role, the
edge asks :meth:`RoleConfirmation.confirmed`: while the roles were confirmed less than a period ago it
costs nothing; after that, one silent refresh with the session's refresh token (forced, so Entra itself
answers) brings a new ID token, whose ``roles`` replace the session's. A person asks Entra at most once
per period, and only while they use such endpoints.

Entra refusing the refresh (``invalid_grant``: a disabled account, revoked sessions or refresh token;
``interaction_required``: a policy needing the person) deletes the session: it can no longer prove who it
belongs to, so it must not keep granting anything. Entra unreachable is a 503 and changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from shared.core.errors import SignInRequired
from shared.signin.client import SignInClient
from shared.signin.sessions import Session, SessionStore
from shared.storage.tables import Now, utcnow

logger = logging.getLogger(__name__)

#: The longest time roles read from an ID token are trusted before Entra is asked again.
ROLE_CHECK_SECONDS = 300.0


class RoleConfirmation:
    """Keeps sessions' roles at most one period old. Thread-safe; one per process
    (:meth:`shared.app.services.Runtime.role_confirmation`)."""

    def __init__(
        self,
        *,
        sign_in: SignInClient,
        sessions: SessionStore,
        period_seconds: float = ROLE_CHECK_SECONDS,
        now: Now = utcnow,
    ) -> None:
        """``period_seconds`` and ``now`` are injectable so tests advance a clock instead of waiting."""
        self._sign_in = sign_in
        self._sessions = sessions
        self._period = period_seconds
        self._now = now

    def confirmed(self, session: Session) -> Session:
        """``session`` with roles Entra confirmed less than a period ago: itself when they are recent,
        else the session re-saved with the roles (and tokens) of a fresh ID token.

        Raises:
            SignInRequired: Entra refused the refresh, or answered for another person; the session is
                deleted (``session_expired`` or ``interaction_required``, with Entra's claims).
            CredentialUnavailable: Entra unreachable or failing (503); nothing changes.
            StorageUnavailable: the session could not be saved or deleted (503).
        """
        now = self._now().timestamp()
        if 0 <= now - session.claims.roles_checked < self._period:
            return session
        import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        claims = session.claims
        cache = msal.SerializableTokenCache()
        # An unreadable cache holds no account: refused below like a dead refresh token.
        with contextlib.suppress(ValueError):
            cache.deserialize(session.token_cache)
        try:
            fresh = self._sign_in.refreshed_claims(cache, home_account_id=f"{claims.oid}.{claims.tid}")
            if str(fresh.get("oid")) != claims.oid or str(fresh.get("tid")).lower() != claims.tid.lower():
                raise SignInRequired("Microsoft Entra ID answered for another account. Sign in again.")
        except SignInRequired as refused:
            self._sessions.delete(session.id)
            logger.info(
                "Entra refused to re-confirm the sign-in of object id %s (%s): session deleted",
                claims.oid,
                refused.code,
            )
            raise
        roles = _roles_of(fresh)
        if set(roles) != set(claims.roles):
            logger.info(
                "Roles of object id %s changed in Entra: now %s", claims.oid, ", ".join(roles) or "none"
            )
        saved = self._sessions.save(
            session, token_cache=cache.serialize(), claims=claims._replace(roles=roles, roles_checked=now)
        )
        if saved is None:  # signed out meanwhile: the new tokens must not outlive the session
            raise SignInRequired("Your session has ended. Sign in again.", code="session_expired")
        return saved


def _roles_of(claims: Any) -> tuple[str, ...]:
    roles = claims.get("roles") or []
    return tuple(sorted(str(role) for role in roles)) if isinstance(roles, list) else ()
