"""App-only access tokens: one MSAL confidential client per process, single-flight, rotation-aware.

:class:`TokenProvider` is the only place that talks to Entra ID for the app's own tokens.

* **One MSAL app per process.** Each new ``ConfidentialClientApplication`` repeats OpenID discovery and starts
  with an empty cache, so it is built once and reused; MSAL's in-memory cache is the cache of record
  (``acquire_token_for_client`` looks there first).
* **Single-flight.** Warm callers read a tiny per-scope memo (token + refresh deadline) without locking. Cold
  or expiring callers take one lock, so N concurrent cold callers cause one credential read and one token
  request; the others find the memo filled when they get the lock.
* **Rotation without restart.** When Entra rejects the credential itself (AADSTS7000215 wrong secret,
  7000222 expired secret, 700027 unknown/bad certificate), the credential is re-read once, the MSAL app is
  rebuilt with it (sharing the token cache), and the request is retried, so a rotated secret costs callers
  no failed request. A rejection that a re-read cannot fix is remembered briefly, to protect vault and Entra.

Tokens and secrets are never logged. MSAL is imported on first use only.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from shared.credentials import ClientCredential, CredentialSource
from shared.errors import (
    ConfigurationError,
    CredentialUnavailable,
    GraphFunctionsError,
    from_msal_result,
    is_credential_rejected,
    msal_error_codes,
)
from shared.settings import Settings

if TYPE_CHECKING:
    import msal

logger = logging.getLogger(__name__)

#: MSAL treats cached tokens with less than 5 minutes left as expired; the memo expires at the same point.
REFRESH_MARGIN_SECONDS = 300
#: Minimum spacing of credential re-reads triggered by rejections, and how long an unresolved rejection
#: is answered from memory.
REREAD_INTERVAL_SECONDS = 30.0
#: A credential loaded this recently is what the store holds now: re-reading it at once cannot help.
JUST_LOADED_SECONDS = 2.0
#: How long a failed credential read (vault unreachable, misconfigured) is answered from memory.
LOAD_FAILURE_HOLD_SECONDS = 5.0


class ConfidentialClient(Protocol):
    """The part of ``msal.ConfidentialClientApplication`` the provider uses (fakes implement it in tests)."""

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]: ...

    def remove_tokens_for_client(self) -> None: ...


AppFactory = Callable[[ClientCredential], ConfidentialClient]


class _Memo(NamedTuple):
    token: str
    refresh_at: float


def msal_app_factory(settings: Settings, *, http_client: Any | None = None) -> AppFactory:
    """The production :data:`AppFactory`: MSAL apps for ``settings.authority`` that share one token cache.

    Sharing the cache across rebuilds keeps tokens that are still valid (for other scopes) after a rotation.
    ``instance_discovery`` is turned off only for non-Microsoft authority hosts (the local tenant): for
    those, MSAL would otherwise ask login.microsoftonline.com to validate a host it cannot know.

    The returned factory raises ConfigurationError when the authority is rejected (tenant unknown, bad URL)
    and CredentialUnavailable when it is unreachable.
    """
    lock = threading.Lock()
    caches: list[msal.TokenCache] = []

    def build(credential: ClientCredential) -> ConfidentialClient:
        import msal

        with lock:
            if not caches:
                caches.append(msal.TokenCache())
            cache = caches[0]
        try:
            app: ConfidentialClient = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=credential.msal_credential,
                authority=settings.authority,
                instance_discovery=None if settings.authority_is_microsoft_cloud else False,
                token_cache=cache,
                http_client=http_client,
            )
        except OSError as exc:  # requests' exceptions derive from OSError
            raise CredentialUnavailable(
                f"Microsoft Entra ID metadata at {settings.authority} is unreachable ({type(exc).__name__})"
            ) from exc
        except ValueError as exc:
            raise ConfigurationError(
                f"MSAL rejected the authority {settings.authority}: {exc}. Check ENTRA_AUTHORITY_HOST and "
                "ENTRA_TENANT_ID."
            ) from exc
        return app

    return build


class TokenProvider:
    """Issues app-only access tokens (client credentials grant) for any resource scope.

    Thread-safe; build one per process. ``vault_reads`` and ``token_requests`` count credential loads and
    token requests sent to Entra (cache hits excluded), for tests and benchmarks.
    """

    def __init__(
        self,
        *,
        credential_source: CredentialSource,
        app_factory: AppFactory,
        clock: Callable[[], float] = time.monotonic,
        reread_interval: float = REREAD_INTERVAL_SECONDS,
    ) -> None:
        self._source = credential_source
        self._factory = app_factory
        self._clock = clock
        self._reread_interval = reread_interval
        self._lock = threading.Lock()
        self._app: ConfidentialClient | None = None
        self._credential: ClientCredential | None = None
        self._last_load: float | None = None
        self._last_reread: float | None = None  # only re-reads that a rejection caused
        self._memo: dict[str, _Memo] = {}
        self._held_error: GraphFunctionsError | None = None
        self._held_until = 0.0
        self.vault_reads = 0
        self.token_requests = 0

    def get_token(self, scope: str) -> str:
        """An access token for ``scope`` (e.g. ``https://graph.microsoft.com/.default``), valid >= 5 minutes.

        Raises:
            CredentialUnavailable: Entra, the vault or the managed identity is unavailable, or Entra keeps
                rejecting the stored credential (carries ``retry_after``).
            ConfigurationError: tenant, client id, scope or vault entry are wrong.
        """
        memo = self._memo.get(scope)
        if memo is not None and self._clock() < memo.refresh_at:
            return memo.token
        with self._lock:
            now = self._clock()
            memo = self._memo.get(scope)
            if memo is not None and now < memo.refresh_at:
                return memo.token
            token, expires_in = self._acquire_locked(scope)
            self._memo[scope] = _Memo(token, now + max(0, expires_in - REFRESH_MARGIN_SECONDS))
            return token

    def invalidate(self, scope: str, token: str | None = None) -> None:
        """Forget the cached token for ``scope`` (a resource said it is invalid, e.g. revoked).

        With ``token``, only if that is still the current one, so a token another thread just renewed
        survives. MSAL's cached app tokens are removed too; the next :meth:`get_token` fetches a new one.
        """
        with self._lock:
            memo = self._memo.get(scope)
            if token is not None and memo is not None and memo.token != token:
                return
            self._memo.pop(scope, None)
            if self._app is not None:
                self._app.remove_tokens_for_client()
            logger.info("Dropped the cached app token for %s", scope)

    @property
    def credential_kind(self) -> str | None:
        """Kind of the credential in use (``secret``/``certificate``/``assertion``), None before first use."""
        credential = self._credential
        return credential.kind if credential else None

    # -- internals, all called with self._lock held -------------------------------------------------------

    def _acquire_locked(self, scope: str) -> tuple[str, int]:
        self._raise_if_held()
        app = self._app or self._rebuild(self._load())
        result = self._request(app, scope)
        if "access_token" not in result and is_credential_rejected(result):
            result = self._rotate_and_retry(scope, result)
        if "access_token" not in result:
            error = from_msal_result(result)
            logger.warning(
                "Token request for %s failed: %s (AADSTS %s)",
                scope,
                result.get("error"),
                sorted(msal_error_codes(result)),
            )
            if is_credential_rejected(result):
                self._hold(error, self._reread_interval)
            raise error
        return str(result["access_token"]), int(result.get("expires_in") or 0)

    def _rotate_and_retry(self, scope: str, rejected: dict[str, Any]) -> dict[str, Any]:
        codes = sorted(msal_error_codes(rejected))
        now = self._clock()
        # Two guards spare the vault a storm without costing a rotation any failed request: no re-read
        # right after a load (the store cannot have changed), and at most one rejection-caused re-read
        # per interval. The interval counts only such re-reads, not the first load, so a rotation soon
        # after start-up is still picked up at once.
        just_loaded = self._last_load is not None and now - self._last_load < JUST_LOADED_SECONDS
        reread_recently = self._last_reread is not None and now - self._last_reread < self._reread_interval
        if just_loaded or reread_recently:
            logger.warning(
                "Entra ID rejected the app credential (AADSTS %s); re-read too recent to repeat", codes
            )
            return rejected
        previous = self._credential
        self._last_reread = now
        logger.warning("Entra ID rejected the app credential (AADSTS %s); re-reading it", codes)
        credential = self._load()
        if previous is not None and credential.fingerprint == previous.fingerprint:
            logger.error(
                "The credential store still holds the rejected credential (%s)", credential.describe()
            )
            return rejected
        result = self._request(self._rebuild(credential), scope)
        if "access_token" in result:
            logger.info("Rotated credential accepted: %s", credential.describe())
        return result

    def _load(self) -> ClientCredential:
        self.vault_reads += 1
        self._last_load = self._clock()
        try:
            return self._source.load()
        except GraphFunctionsError as error:
            self._hold(error, LOAD_FAILURE_HOLD_SECONDS)
            raise

    def _rebuild(self, credential: ClientCredential) -> ConfidentialClient:
        try:
            app = self._factory(credential)
        except GraphFunctionsError as error:  # authority unreachable or rejected: spare Entra a stampede
            self._hold(error, LOAD_FAILURE_HOLD_SECONDS)
            raise
        self._app, self._credential = app, credential
        return app

    def _request(self, app: ConfidentialClient, scope: str) -> dict[str, Any]:
        try:
            result = app.acquire_token_for_client([scope])
        except OSError as exc:  # requests' exceptions derive from OSError
            self.token_requests += 1
            raise CredentialUnavailable(
                f"Microsoft Entra ID is unreachable ({type(exc).__name__}); retry later", retry_after=5
            ) from exc
        if result.get("token_source") != "cache":
            self.token_requests += 1
        return result

    def _hold(self, error: GraphFunctionsError, seconds: float) -> None:
        self._held_error, self._held_until = error, self._clock() + seconds

    def _raise_if_held(self) -> None:
        remaining = self._held_until - self._clock()
        if self._held_error is None or remaining <= 0:
            return
        error = copy.copy(self._held_error)
        if error.retry_after is not None:
            error.retry_after = max(1, math.ceil(remaining))
        raise error
