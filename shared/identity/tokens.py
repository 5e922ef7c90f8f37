"""App-only access tokens: one MSAL confidential client per process, single-flight, refresh-ahead, rotation.

:class:`TokenProvider` is the only place that talks to Entra ID for the app's own tokens.

* **One MSAL app per process.** Each new ``ConfidentialClientApplication`` repeats OpenID discovery and starts
  with an empty cache, so it is built once and reused (rebuilt only after a credential rotation).
* **Single-flight without queueing.** Warm callers read a per-scope memo without locking. Cold callers of a
  scope share ONE token request: the first sends it, the others wait for its outcome (token or error), so N
  concurrent callers wait one attempt, never N attempts in series. No lock is held while Entra is asked.
* **Failures are held.** A failed token request, credential read or authority lookup is answered from
  memory for a hold period (Entra's own ``Retry-After`` for a 429/5xx when it sends one), so an outage costs
  Entra one request per period however many callers arrive. Every such failure is a 503
  ``credential_unavailable`` with ``Retry-After``; MSAL's exceptions never escape this module.
* **Refresh ahead.** A token is renewed in the background (one thread per scope) once half its lifetime
  has passed, and served until shortly before its real expiry, so an Entra outage at renewal time costs
  callers nothing while the current token is still valid.
* **Rotation without restart.** When Entra rejects the credential itself (AADSTS7000215 wrong secret,
  7000222 expired secret, 700027 unknown/bad certificate), the credential is re-read once, the MSAL app is
  rebuilt with it (sharing the token cache), and the request is retried, so a rotated secret costs callers
  no failed request. A credential that was read is kept even if the rebuild then fails.

Tokens and secrets are never logged. MSAL is imported on first use only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.core.cooldown import Cooldown, HeldFailure
from shared.core.error_translation import from_msal_result, is_credential_rejected, msal_error_codes
from shared.core.errors import (
    CredentialUnavailable,
    GraphFunctionsError,
)
from shared.core.records import Record
from shared.core.threads import start_daemon
from shared.identity.credentials import ClientCredential, CredentialSource
from shared.identity.flight import Flight
from shared.identity.msal_app import (
    REQUEST_FAILURE_HOLD_SECONDS,
    AppFactory,
    ConfidentialClient,
    msal_app_factory,
)

__all__ = ["AppFactory", "ConfidentialClient", "TokenProvider", "msal_app_factory"]

logger = logging.getLogger(__name__)
#: How a waiter's 503 names the request it waited for.
_FLIGHT_NAME = "the app's token request"

#: A token is renewed (in the background) once this fraction of its lifetime has passed (as MSAL's
#: ``refresh_in``, half the lifetime).
RENEW_AFTER_FRACTION = 0.5
#: A token is served until this long before its real expiry (at most a tenth of its lifetime), so it is
#: still valid, allowing for clock skew, when the resource receives it.
EXPIRY_MARGIN_SECONDS = 60.0
#: Minimum spacing of credential re-reads triggered by rejections, and how long an unresolved rejection
#: is answered from memory.
REREAD_INTERVAL_SECONDS = 30.0
#: A credential loaded this recently is what the store holds now: re-reading it at once cannot help.
JUST_LOADED_SECONDS = 2.0
#: How long a failed credential read (vault unreachable, misconfigured) is answered from memory.
LOAD_FAILURE_HOLD_SECONDS = 5.0
#: A caller waiting for another caller's token request gives up after this long (the request itself is
#: bounded by the HTTP timeout; this only guards against a hung dependency).
FLIGHT_WAIT_SECONDS = 120.0


Spawn = Callable[[Callable[[], None]], None]


class _Memo(Record):
    token: str
    renew_at: float
    usable_until: float


def _memo(token: str, expires_in: int, requested_at: float) -> _Memo:
    margin = min(EXPIRY_MARGIN_SECONDS, expires_in / 10)
    return _Memo(token, requested_at + expires_in * RENEW_AFTER_FRACTION, requested_at + expires_in - margin)


def _renewal_thread(target: Callable[[], None]) -> None:
    start_daemon(target, name="app-token-renewal")


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
        spawn: Spawn = _renewal_thread,
    ) -> None:
        """``spawn`` runs a background renewal (default: a daemon thread; tests run it inline)."""
        self._source = credential_source
        self._factory = app_factory
        self._clock = clock
        self._reread_interval = reread_interval
        self._spawn = spawn
        self._state_lock = threading.Lock()  # memo and flights bookkeeping; never held while calling out
        self._app_lock = threading.Lock()  # credential read and MSAL app (re)build
        self._app: ConfidentialClient | None = None
        self._credential: ClientCredential | None = None
        self._last_load: float | None = None
        self._reread = Cooldown(reread_interval, clock=clock)  # only re-reads that a rejection caused
        self._held = HeldFailure(clock=clock)
        self._memo: dict[str, _Memo] = {}
        self._flights: dict[str, Flight] = {}
        self.vault_reads = 0
        self.token_requests = 0

    def get_token(self, scope: str) -> str:
        """An access token for ``scope`` (e.g. ``https://graph.microsoft.com/.default``) that is valid for
        at least a tenth of its lifetime (at most 60 s) more.

        Raises:
            CredentialUnavailable: Entra, the vault or the managed identity is unavailable, or Entra keeps
                rejecting the stored credential (carries ``retry_after``).
            ConfigurationError: tenant, client id, scope or vault entry are wrong.
        """
        now = self._clock()
        memo = self._memo.get(scope)
        if memo is not None and now < memo.usable_until:
            if now >= memo.renew_at:
                self._renew_in_background(scope)
            return memo.token
        with self._state_lock:
            memo = self._memo.get(scope)
            if memo is not None and self._clock() < memo.usable_until:
                return memo.token
            flight = self._flights.get(scope)
            if flight is not None:
                leader = False
            else:
                self._held.raise_if_held()
                flight = self._flights[scope] = Flight(_FLIGHT_NAME)
                leader = True
        if not leader:
            return flight.wait(FLIGHT_WAIT_SECONDS)
        return self._fly(scope, flight, renew=False)

    def invalidate(self, scope: str, token: str | None = None) -> None:
        """Forget the cached token for ``scope`` (a resource said it is invalid, e.g. revoked).

        With ``token``, only if that is still the current one, so a token another thread just renewed
        survives. MSAL's cached app tokens are removed too; the next :meth:`get_token` fetches a new one.
        """
        with self._state_lock:
            memo = self._memo.get(scope)
            if token is not None and memo is not None and memo.token != token:
                return
            self._memo.pop(scope, None)
        app = self._app
        if app is not None:
            app.remove_tokens_for_client()
        logger.info("Dropped the cached app token for %s", scope)

    @property
    def credential_kind(self) -> str | None:
        """Kind of the credential in use (``secret``/``certificate``/``assertion``), None before first use."""
        credential = self._credential
        return credential.kind if credential else None

    # -- internals ----------------------------------------------------------------------------------------

    def _renew_in_background(self, scope: str) -> None:
        with self._state_lock:
            if scope in self._flights or self._held.remaining() > 0:
                return  # already renewing, or Entra failed moments ago: the current token stays in use
            flight = self._flights[scope] = Flight(_FLIGHT_NAME)

        def renew() -> None:
            try:
                self._fly(scope, flight, renew=True)
            except GraphFunctionsError as error:
                logger.warning(
                    "Renewing the app token for %s failed (%s); the current token stays in use",
                    scope,
                    error.code,
                )
            except Exception:
                logger.exception("Renewing the app token for %s failed unexpectedly", scope)

        self._spawn(renew)

    def _fly(self, scope: str, flight: Flight, *, renew: bool) -> str:
        """Get a token for ``scope`` as the leader of ``flight``, and hand the outcome to its waiters."""
        requested_at = self._clock()
        try:
            token, expires_in = self._acquire(scope, renew=renew)
        except BaseException as exc:
            error = exc if isinstance(exc, GraphFunctionsError) else GraphFunctionsError("App token failed")
            with self._state_lock:
                self._flights.pop(scope, None)
            flight.finish(error=error)
            raise
        with self._state_lock:
            self._memo[scope] = _memo(token, expires_in, requested_at)
            self._flights.pop(scope, None)
        flight.finish(token=token)
        return token

    def _acquire(self, scope: str, *, renew: bool) -> tuple[str, int]:
        app = self._current_app()
        if renew:
            # MSAL would otherwise answer from its cache until 5 minutes before expiry.
            app.remove_tokens_for_client()
        result = self._request(app, scope)
        if "access_token" not in result and is_credential_rejected(result):
            result = self._rotate_and_retry(scope, result, app)
        if "access_token" not in result:
            error = from_msal_result(result)
            logger.warning(
                "Token request for %s failed: %s (AADSTS %s)",
                scope,
                result.get("error"),
                sorted(msal_error_codes(result)),
            )
            rejected = is_credential_rejected(result)
            self._held.hold(error, self._reread_interval if rejected else REQUEST_FAILURE_HOLD_SECONDS)
            raise error
        return str(result["access_token"]), int(result.get("expires_in") or 0)

    def credential(self) -> ClientCredential:
        """The app's current client credential (loaded once, shared with this provider's app-only tokens;
        re-read after a rotation), for the people's sign-in client (:mod:`shared.signin.client`).

        Raises:
            CredentialUnavailable, ConfigurationError: the credential cannot be read (held for a while).
        """
        credential = self._credential
        if credential is not None:
            return credential
        with self._app_lock:
            if self._credential is None:
                self._held.raise_if_held()
                self._credential = self._load()
            return self._credential

    def _current_app(self) -> ConfidentialClient:
        with self._app_lock:
            if self._app is not None:
                return self._app
            self._held.raise_if_held()  # the read or build failed while this thread waited for the lock
            return self._rebuild(self._credential or self._load())

    def _rotate_and_retry(
        self, scope: str, rejected: dict[str, Any], used: ConfidentialClient
    ) -> dict[str, Any]:
        codes = sorted(msal_error_codes(rejected))
        with self._app_lock:
            if self._app is not None and self._app is not used:
                app = self._app  # another thread rotated while this request was in flight: use its app
            else:
                # Two guards spare the vault a storm without costing a rotation any failed request: no
                # re-read right after a load (the store cannot have changed), and at most one
                # rejection-caused re-read per interval. The interval counts only such re-reads, not the
                # first load, so a rotation soon after start-up is still picked up at once.
                now = self._clock()
                just_loaded = self._last_load is not None and now - self._last_load < JUST_LOADED_SECONDS
                if just_loaded or not self._reread.ready():
                    logger.warning(
                        "Entra ID rejected the app credential (AADSTS %s); re-read too recent to repeat",
                        codes,
                    )
                    return rejected
                previous = self._credential
                self._reread.start()
                logger.warning("Entra ID rejected the app credential (AADSTS %s); re-reading it", codes)
                credential = self._load()
                if previous is not None and credential.fingerprint == previous.fingerprint:
                    logger.error(
                        "The credential store still holds the rejected credential (%s)", credential.describe()
                    )
                    return rejected
                app = self._rebuild(credential)
        result = self._request(app, scope)
        if "access_token" in result:
            logger.info(
                "Rotated credential accepted: %s", self._credential.describe() if self._credential else ""
            )
        return result

    def _load(self) -> ClientCredential:
        self.vault_reads += 1
        self._last_load = self._clock()
        try:
            return self._source.load()
        except GraphFunctionsError as error:
            self._held.hold(error, LOAD_FAILURE_HOLD_SECONDS)
            raise

    def _rebuild(self, credential: ClientCredential) -> ConfidentialClient:
        # The credential just read is kept even if the build fails: the next attempt rebuilds with it
        # instead of waiting out the re-read guard with the old, rejected one.
        self._credential, self._app = credential, None
        try:
            app = self._factory(credential)
        except GraphFunctionsError as error:  # authority unreachable or rejected: spare Entra a stampede
            self._held.hold(error, LOAD_FAILURE_HOLD_SECONDS)
            raise
        self._app = app
        return app

    def _request(self, app: ConfidentialClient, scope: str) -> dict[str, Any]:
        try:
            result = app.acquire_token_for_client([scope])
        except CredentialUnavailable as error:
            self.token_requests += 1
            logger.warning("Token request for %s failed: %s", scope, error.message)
            self._held.hold(error, float(error.retry_after or REQUEST_FAILURE_HOLD_SECONDS))
            raise
        except OSError as exc:  # fakes and non-adapted clients: requests' exceptions derive from OSError
            self.token_requests += 1
            unreachable = CredentialUnavailable(
                f"Microsoft Entra ID is unreachable ({type(exc).__name__}); retry later",
                retry_after=int(REQUEST_FAILURE_HOLD_SECONDS),
            )
            self._held.hold(unreachable, REQUEST_FAILURE_HOLD_SECONDS)
            raise unreachable from exc
        if result.get("token_source") != "cache":
            self.token_requests += 1
        return result
