"""On-behalf-of with a cache that works: one downstream token per person and scope set, reused until
shortly before it expires, shared by concurrent first calls, with Entra's failures held briefly.

MSAL Python's ``acquire_token_on_behalf_of`` never reads its cache (AzureAD/microsoft-authentication-
library-for-python#265), so Microsoft's own snippets make one token request per call. :class:`OnBehalfOf`
(one per tenant, process-wide) keeps the cache itself:

* **Key**: ``(tid, oid, scopes)`` of the validated incoming token (:class:`~shared.identity.user_tokens.
  UserAssertion`): the tenant-scoped object id names the person (``sub`` is pairwise, and a guest's
  ``client_info`` names their home tenant); the scope set is sorted. A repeated incoming token, or a new one
  of the same person, costs **no** token request while the cached token has more than a tenth of its
  lifetime (at most 60 s) left. Entries are bounded (:data:`MAX_ENTRIES`, oldest expiry evicted first).
* **Single-flight**: concurrent first calls for one key share one exchange (the first caller's assertion);
  the others wait for its outcome, token or error, without a lock held while Entra is asked.
* **Failures held**: an outage (503 ``credential_unavailable``: Entra unreachable, 5xx, 429) is answered
  from memory for Entra's ``Retry-After`` (else 5 s) to every caller of the tenant, so an outage costs Entra
  one request per period; warm callers keep their cached tokens meanwhile. A refusal about the person
  (claims, consent) is not held here: MSAL's own memory of an HTTP 400 answers the same assertion for 60 s,
  and a new assertion (after a step-up) must reach Entra at once.
* **Claims**: after Graph's CAE challenge the cached token is dropped and the exchange repeated with the
  claims (:meth:`OboTokens.require_claims`); what Entra then refuses goes back to the caller as a claims
  challenge or a stable refusal (:func:`refusal_for`).

:class:`OboTokens` is the per-request :class:`~shared.graph.token_source.ChallengeableTokenSource` the Graph
client and SharePoint use for a person's bearer caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from shared.core.challenges import (
    ConditionalAccessBlocked,
    ConsentRequired,
    InsufficientClaims,
    StepUpRequired,
)
from shared.core.cooldown import HeldFailure
from shared.core.errors import CredentialUnavailable, GraphFunctionsError, Unauthenticated
from shared.core.records import Record
from shared.identity.flight import Flight
from shared.identity.msal_app import REQUEST_FAILURE_HOLD_SECONDS
from shared.identity.obo_exchange import (
    ASSERTION,
    BLOCKED,
    CLAIMS,
    CONSENT,
    Exchanged,
    ExchangeRefusedError,
)
from shared.identity.user_tokens import UserAssertion

logger = logging.getLogger(__name__)
#: How a waiter's 503 names the request it waited for.
_FLIGHT_NAME = "an exchange on a person's behalf"

#: A cached token is used until this long before its expiry (at most a tenth of its lifetime).
EXPIRY_MARGIN_SECONDS = 60.0
#: Cached tokens kept at most (people x scope sets); past it the soonest to expire go first.
MAX_ENTRIES = 10_000
#: A caller waiting for another caller's exchange gives up after this long (the exchange itself is bounded
#: by the HTTP timeout; this only guards against a hung dependency).
FLIGHT_WAIT_SECONDS = 60.0

Key = tuple[str, str, tuple[str, ...]]


class Exchange(Protocol):
    """One OBO exchange (:class:`~shared.identity.obo_exchange.MsalExchange`; fakes in tests)."""

    @property
    def authority(self) -> str: ...

    def __call__(self, assertion: str, scopes: Sequence[str], claims: str | None = None) -> Exchanged: ...


class _Memo(Record, hidden=("token",)):
    token: str
    usable_until: float


class OnBehalfOf:
    """The cache, single-flight and failure hold of one tenant's OBO exchanges (module docstring).
    Thread-safe; one per tenant. ``token_requests`` counts exchanges sent (for tests and benchmarks)."""

    def __init__(
        self,
        exchange: Exchange,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._exchange = exchange
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()  # memo and flight bookkeeping; never held while Entra is asked
        self._memo: dict[Key, _Memo] = {}
        self._flights: dict[Key, Flight] = {}
        self._held = HeldFailure(clock=clock)
        self.token_requests = 0

    @property
    def authority(self) -> str:
        return self._exchange.authority

    def token(self, assertion: UserAssertion, scopes: Sequence[str], *, claims: str | None = None) -> str:
        """A token for ``scopes`` acting as ``assertion``'s person.

        ``claims`` (a resource's claims challenge) bypasses and replaces the cached token.

        Raises:
            ExchangeRefusedError: Entra refused the person's grant (map it with :func:`refusal_for`).
            CredentialUnavailable: Entra unavailable (503, ``Retry-After``; held for the tenant meanwhile).
        """
        key = _key(assertion, scopes)
        if claims is not None:
            self.drop(assertion, scopes)
            self._held.raise_if_held()
            return self._exchange_now(key, assertion, claims, None)
        memo = self._memo.get(key)
        if memo is not None and self._clock() < memo.usable_until:
            return memo.token
        with self._lock:
            memo = self._memo.get(key)
            if memo is not None and self._clock() < memo.usable_until:
                return memo.token
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                self._held.raise_if_held()
                flight = self._flights[key] = Flight(_FLIGHT_NAME)
        if not leader:
            return flight.wait(FLIGHT_WAIT_SECONDS)
        return self._exchange_now(key, assertion, None, flight)

    def drop(self, assertion: UserAssertion, scopes: Sequence[str], token: str | None = None) -> None:
        """Forget the cached token for the person and ``scopes`` (a resource refused it); with ``token``,
        only if that is still the cached one."""
        key = _key(assertion, scopes)
        with self._lock:
            memo = self._memo.get(key)
            if memo is not None and (token is None or memo.token == token):
                del self._memo[key]

    def cached(self) -> int:
        """How many tokens are cached now."""
        return len(self._memo)

    def _exchange_now(
        self, key: Key, assertion: UserAssertion, claims: str | None, flight: Flight | None
    ) -> str:
        requested_at = self._clock()
        try:
            self.token_requests += 1
            result = self._exchange(assertion.token, key[2], claims)
        except GraphFunctionsError as error:
            if isinstance(error, CredentialUnavailable):
                self._held.hold(error, float(error.retry_after or REQUEST_FAILURE_HOLD_SECONDS))
            self._finish(key, flight, error=error)
            raise
        except BaseException:
            self._finish(key, flight, error=CredentialUnavailable("An exchange failed unexpectedly"))
            raise
        margin = min(EXPIRY_MARGIN_SECONDS, result.expires_in / 10)
        memo = _Memo(token=result.token, usable_until=requested_at + result.expires_in - margin)
        with self._lock:
            self._memo[key] = memo
            if len(self._memo) > self._max_entries:
                self._evict()
        self._finish(key, flight, token=result.token)
        return result.token

    def _finish(
        self,
        key: Key,
        flight: Flight | None,
        *,
        token: str | None = None,
        error: GraphFunctionsError | None = None,
    ) -> None:
        if flight is None:
            return
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.finish(token=token, error=error)

    def _evict(self) -> None:
        """Drop expired entries, then the soonest to expire, down to 90 % of the bound (lock held)."""
        now = self._clock()
        for key in [key for key, memo in self._memo.items() if memo.usable_until <= now]:
            del self._memo[key]
        excess = len(self._memo) - int(self._max_entries * 0.9)
        if excess > 0:
            for key in sorted(self._memo, key=lambda k: self._memo[k].usable_until)[:excess]:
                del self._memo[key]


def _key(assertion: UserAssertion, scopes: Sequence[str]) -> Key:
    return (assertion.tenant_id, assertion.object_id, tuple(sorted(set(scopes))))


def authorize_endpoint(authority: str) -> str:
    """The tenant's v2 authorization endpoint, named in challenges."""
    return f"{authority}/oauth2/v2.0/authorize"


def refusal_for(
    refused: ExchangeRefusedError,
    assertion: UserAssertion,
    *,
    authority: str,
    client_id: str,
    scopes: Sequence[str],
) -> GraphFunctionsError:
    """What the caller of ``assertion`` is answered when Entra refused its person's exchange
    (:mod:`shared.core.challenges`):

    * claims needed: 401 ``insufficient_claims`` with the claims when the client declared ``cp1``, else
      403 ``step_up_required``;
    * blocked by Conditional Access: 403 ``conditional_access_blocked``;
    * no consent: 403 ``consent_required`` with the consent URI and the scopes;
    * the assertion or the person's sign-in refused: 401 ``invalid_token`` (``token_revoked``), so the
      client signs the person in again.
    """
    if refused.kind == CLAIMS:
        if refused.claims and assertion.client_capable:
            return InsufficientClaims(
                "Your organisation requires an extra sign-in step for this request. Acquire a new token "
                "with the claims of this challenge and call again.",
                claims=refused.claims,
                authorization_uri=authorize_endpoint(authority),
            )
        return StepUpRequired(
            "Your organisation requires an extra sign-in step (multi-factor authentication or a Conditional "
            "Access policy) that the calling application cannot be asked for: it does not declare the "
            "client capability cp1. Sign in again in an application that does.",
        )
    if refused.kind == BLOCKED:
        return ConditionalAccessBlocked(
            "A Conditional Access policy of your organisation blocks this access (AADSTS53003)."
        )
    if refused.kind == CONSENT:
        consent_uri = (
            f"{authorize_endpoint(authority)}?client_id={client_id}&response_type=code"
            f"&scope={'%20'.join(scopes)}&prompt=consent"
        )
        return ConsentRequired(
            "Nobody has consented to this app acting for you with "
            f"{', '.join(scopes)}. Consent at the consentUri of the WWW-Authenticate header, or ask an "
            "administrator to grant admin consent for the organisation.",
            consent_uri=consent_uri,
            scopes=scopes,
        )
    message = (
        "Microsoft Entra ID refused this token for an exchange (wrong audience or expired)"
        if refused.kind == ASSERTION
        else "Your sign-in is no longer valid (revoked or expired). Sign in again."
    )
    return Unauthenticated(message, code="token_revoked")


class OboTokens:
    """Tokens for one request of a person's bearer caller, as a Graph/SharePoint token source.

    ``{GRAPH_ENDPOINT}/.default`` (what the Graph client asks for) means the route's delegated
    ``permissions`` on Graph; any other scope (SharePoint's) is exchanged as it is. Errors come out as the
    caller's answer (:func:`refusal_for`).
    """

    def __init__(
        self,
        obo: OnBehalfOf,
        assertion: UserAssertion,
        *,
        graph_endpoint: str,
        permissions: Sequence[str],
        client_id: str,
    ) -> None:
        self._obo = obo
        self._assertion = assertion
        self._graph_default = f"{graph_endpoint}/.default"
        self._graph_scopes = tuple(f"{graph_endpoint}/{name}" for name in permissions)
        self._client_id = client_id
        self._claims: dict[tuple[str, ...], str] = {}

    def get_token(self, scope: str) -> str:
        """A token for ``scope`` (see the class docstring).

        Raises:
            InsufficientClaims, StepUpRequired, ConditionalAccessBlocked, ConsentRequired, Unauthenticated:
                Entra refused the exchange (:func:`refusal_for`).
            CredentialUnavailable: Entra unavailable (503).
        """
        scopes = self._scopes(scope)
        claims = self._claims.pop(scopes, None)
        try:
            return self._obo.token(self._assertion, scopes, claims=claims)
        except ExchangeRefusedError as refused:
            raise self.refusal(refused, scopes) from refused

    def invalidate(self, scope: str, token: str | None = None) -> None:
        self._obo.drop(self._assertion, self._scopes(scope), token)

    def require_claims(self, claims: str, scope: str) -> None:
        """Graph answered with a claims challenge: the next :meth:`get_token` exchanges with ``claims``."""
        scopes = self._scopes(scope)
        self._obo.drop(self._assertion, scopes)
        self._claims[scopes] = claims

    def refusal(
        self, refused: ExchangeRefusedError, scopes: Sequence[str] | None = None
    ) -> GraphFunctionsError:
        """The caller's answer to ``refused`` (:func:`refusal_for`)."""
        named = tuple(scopes) if scopes is not None else self._graph_scopes
        return refusal_for(
            refused, self._assertion, authority=self._obo.authority, client_id=self._client_id, scopes=named
        )

    def _scopes(self, scope: str) -> tuple[str, ...]:
        return self._graph_scopes if scope == self._graph_default else (scope,)
