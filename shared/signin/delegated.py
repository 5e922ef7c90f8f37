"""A signed-in person's delegated tokens, as a :class:`~shared.graph.client.TokenSource`, from their session.

:class:`DelegatedTokens` opens the session's MSAL token cache once per request and answers
``get_token(scope)`` from it: a cached access token costs nothing; an expired one is refreshed with the
refresh token (one request to Entra) and the new cache is written back to the session at once, with the
store's optimistic concurrency (two requests refreshing together both keep working, and the stored cache
holds the newest tokens). A scope for another resource (SharePoint) is obtained the same way: the refresh
token is multi-resource, so no second sign-in is needed unless the tenant requires consent.

Scopes: :class:`~shared.graph.client.GraphClient` asks for ``{GRAPH_ENDPOINT}/.default``; for a person that
means the delegated permissions granted at sign-in (``User.Read``, ``User.ReadBasic.All``), which is what is
looked up. Other scopes are passed to MSAL as they are.

Claims challenges: the Graph client answers Graph's ``insufficient_claims`` challenge (CAE) itself, once,
through :meth:`DelegatedTokens.require_claims` (a :class:`~shared.graph.client.ChallengeableTokenSource`):
the next ``get_token`` bypasses the cache and refreshes with the claims; when Entra then needs the person
(revoked refresh token, MFA), :class:`SignInRequired` carries the claims to the next sign-in. No call site
repeats that retry.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from shared.core.errors import SignInRequired

if TYPE_CHECKING:
    import msal

    from shared.signin.client import SignInClient
    from shared.signin.sessions import Session, SessionStore

logger = logging.getLogger(__name__)


class DelegatedTokens:
    """Delegated tokens of one session for the length of one request. Thread-safe."""

    def __init__(self, *, sign_in: SignInClient, sessions: SessionStore, session: Session) -> None:
        self._sign_in = sign_in
        self._sessions = sessions
        self._session = session
        self._lock = threading.Lock()
        self._cache: msal.SerializableTokenCache | None = None
        self._claims: str | None = None

    @property
    def session(self) -> Session:
        return self._session

    def get_token(self, scope: str) -> str:
        """An access token for ``scope`` (see module docstring).

        Raises:
            SignInRequired: the session's sign-in cannot be used silently any more (401 / sign-in again);
                when its refresh token is dead (``session_expired``, no claims challenge) the session is
                deleted too.
            CredentialUnavailable: Entra unreachable or failing (503).
            StorageUnavailable: the refreshed cache could not be saved (503).
        """
        scopes = self._msal_scopes(scope)
        with self._lock:
            cache = self._open_cache()
            claims, self._claims = self._claims, None
            try:
                token = self._sign_in.acquire_silent(
                    cache, home_account_id=self._home_account_id(), scopes=scopes, claims=claims
                )
            except SignInRequired as refused:
                if refused.code == "session_expired" and not refused.claims:
                    # The refresh token is dead (revoked, disabled account, expired): the session can
                    # never act for the person again, so it must not go on naming them either. With a
                    # claims challenge (CAE) the session stays: the page's next sign-in must carry them.
                    self._sessions.delete(self._session.id)
                    logger.info("A session's sign-in was refused by Entra: session deleted")
                raise
            if cache.has_state_changed:
                self._persist(cache)
            return token

    def invalidate(self, scope: str, token: str | None = None) -> None:
        """Drop the cached access token for ``scope`` (Graph rejected it): the next request refreshes."""
        with self._lock:
            cache = self._open_cache()
            for item in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                if token is None or item.get("secret") == token:
                    cache.remove_at(item)

    def require_claims(self, claims: str, scope: str) -> None:
        """A resource sent a claims challenge: drop its cached token; the next ``get_token`` asks Entra
        with ``claims`` (MSAL bypasses its cache for a claims challenge)."""
        self.invalidate(scope)
        with self._lock:
            self._claims = claims

    def _msal_scopes(self, scope: str) -> tuple[str, ...]:
        graph_default = f"{self._graph_origin()}/.default"
        if scope == graph_default:
            return self._sign_in.graph_scopes
        return (scope,)

    def _graph_origin(self) -> str:
        return self._sign_in.graph_scopes[0].rsplit("/", 1)[0]

    def _home_account_id(self) -> str:
        claims = self._session.claims
        return f"{claims.oid}.{claims.tid}"

    def _open_cache(self) -> msal.SerializableTokenCache:
        if self._cache is None:
            import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

            cache = msal.SerializableTokenCache()
            try:
                cache.deserialize(self._session.token_cache)
            except ValueError:  # an unreadable cache is a lost sign-in, not a server error
                logger.warning("A session's token cache could not be read; the person signs in again")
                raise SignInRequired("Your session can no longer be used. Sign in again.") from None
            self._cache = cache
        return self._cache

    def _persist(self, cache: msal.SerializableTokenCache) -> None:
        saved = self._sessions.save(self._session, token_cache=cache.serialize())
        cache.has_state_changed = False
        if saved is None:  # signed out meanwhile: the new tokens must not outlive the session
            raise SignInRequired("Your session has ended. Sign in again.", code="session_expired")
        self._session = saved
