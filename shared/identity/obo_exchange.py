"""One on-behalf-of exchange with MSAL Python, and what Entra's answer means
(:mod:`shared.identity.on_behalf_of` caches and shares them).

The grant (learn.microsoft.com identity-platform ``v2-oauth2-on-behalf-of-flow``): ``POST
{authority}/oauth2/v2.0/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``,
``requested_token_use=on_behalf_of``, ``assertion=<the person's token for this API>``, the app's own client
credential and the downstream scopes; MSAL's ``acquire_token_on_behalf_of`` sends exactly that. The app
declares ``CP1`` (``client_capabilities``): Graph may then issue CAE tokens and answer a revoked one with
an ``insufficient_claims`` challenge, which the exchange answers with ``claims_challenge``.

Each exchange builds its own ``ConfidentialClientApplication`` around an empty token cache: MSAL's OBO
never reads its cache (AzureAD/microsoft-authentication-library-for-python#265), so the cache that counts
is ours; every such app shares one ``http_cache`` (OpenID discovery once per process; MSAL's 60 s memory of
an HTTP 400, keyed by the request body, spares Entra a repeated refused assertion) and one HTTP client. No
refresh token is requested (``exclude_scopes``): a new incoming token is the way to a new Graph token.

Entra's answers (multi-tenant-and-obo reference, B.3), keyed on ``error_codes``, ``suberror`` and ``claims``
rather than on ``error`` (sources disagree on ``interaction_required`` vs ``invalid_grant``):

* AADSTS53003: :data:`BLOCKED` (Conditional Access blocks outright; the local tenant, like Entra's ROPC
  answers, sends ``message_only`` and claims with it, but no step-up satisfies a block);
* ``claims`` present, ``interaction_required``, or AADSTS50076 / 50079 (MFA), 50158 / 50074 / 70043 (a
  policy needing the person), a CAE revocation (50173 with claims): :data:`CLAIMS` (the client steps up);
* AADSTS65001 or ``suberror: consent_required``: :data:`CONSENT`;
* AADSTS500131 / 50013 / 500133 (assertion for another audience, bad signature, expired): :data:`ASSERTION`;
* any other ``invalid_grant`` (a revoked or expired sign-in session): :data:`REVOKED`;
* a 429, a 5xx, a timeout, a dropped connection, malformed JSON, a rejected client credential or a
  misconfiguration: :class:`~shared.core.errors.CredentialUnavailable` (503, ``Retry-After``: Entra's own,
  bounded, else 5 s).

MSAL is imported on first use; tokens are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from shared.core.error_translation import first_line, msal_error_codes
from shared.core.errors import CredentialUnavailable, GraphFunctionsError
from shared.core.records import Record
from shared.identity.credentials import ClientCredential
from shared.identity.msal_app import (
    ObservedHttpClient,
    SharedHttpCache,
    last_retry_after,
    last_status_text,
)

logger = logging.getLogger(__name__)

RefusalKind = Literal["claims", "blocked", "consent", "assertion", "revoked"]
CLAIMS: RefusalKind = "claims"
BLOCKED: RefusalKind = "blocked"
CONSENT: RefusalKind = "consent"
ASSERTION: RefusalKind = "assertion"
REVOKED: RefusalKind = "revoked"

_STEP_UP_CODES = frozenset({50076, 50079, 50074, 50158, 70043})
_BLOCKED_CODES = frozenset({53003})
_CONSENT_CODES = frozenset({65001})
_ASSERTION_CODES = frozenset({500131, 50013, 500133})
_INTERACTION_SUBERRORS = frozenset({"basic_action", "additional_action", "message_only"})


class Exchanged(Record, hidden=("token",)):
    """A Graph (or other resource) token obtained for the person: ``expires_in`` seconds of life."""

    token: str
    expires_in: int


class ExchangeRefusedError(GraphFunctionsError):
    """Entra refused to issue the person's token for a reason about the person or the grant, not an
    outage. Never answered as is: the caller's route turns it into its own challenge or refusal
    (:func:`shared.identity.on_behalf_of.refusal_for`).

    Attributes:
        kind: :data:`CLAIMS`, :data:`BLOCKED`, :data:`CONSENT`, :data:`ASSERTION` or :data:`REVOKED`.
        claims: the claims challenge Entra sent (JSON text), if any.
        codes: the AADSTS codes (for the log).
    """

    status = 403
    default_code = "delegation_refused"

    def __init__(
        self,
        message: str,
        *,
        kind: RefusalKind,
        claims: str | None = None,
        codes: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.claims = claims
        self.codes = codes


def classify(result: Mapping[str, Any]) -> GraphFunctionsError:
    """The error an MSAL OBO error result stands for (module docstring). Returns, does not raise."""
    error = str(result.get("error") or "")
    suberror = str(result.get("suberror") or "")
    codes = msal_error_codes(result)
    raw_claims = result.get("claims")
    claims = raw_claims if isinstance(raw_claims, str) and raw_claims.strip() else None
    summary = first_line(str(result.get("error_description") or error))
    if codes & _CONSENT_CODES or suberror == "consent_required" or error == "consent_required":
        return ExchangeRefusedError(f"No consent ({summary})", kind=CONSENT, codes=codes)
    if codes & _ASSERTION_CODES:
        return ExchangeRefusedError(f"Assertion refused ({summary})", kind=ASSERTION, codes=codes)
    if codes & _BLOCKED_CODES:  # a block: no step-up satisfies it, whatever claims come with it
        return ExchangeRefusedError(f"Blocked ({summary})", kind=BLOCKED, codes=codes)
    if (
        claims is not None
        or error == "interaction_required"
        or codes & _STEP_UP_CODES
        or suberror in _INTERACTION_SUBERRORS
    ):
        return ExchangeRefusedError(
            f"Interaction needed ({summary})", kind=CLAIMS, claims=claims, codes=codes
        )
    if error == "invalid_grant":
        return ExchangeRefusedError(f"Grant refused ({summary})", kind=REVOKED, codes=codes)
    return CredentialUnavailable(f"Microsoft Entra ID could not exchange a person's token ({summary})")


class MsalExchange:
    """Runs OBO exchanges at one tenant's authority with the app's credential. Thread-safe."""

    def __init__(
        self,
        *,
        client_id: str,
        authority: str,
        microsoft_cloud: bool,
        credential: Callable[[], ClientCredential],
        http_client: Any | None = None,
        http_cache: SharedHttpCache | None = None,
    ) -> None:
        """``credential`` returns the app's current client credential (shared with its app-only tokens);
        ``http_client`` is the requests-like client MSAL uses (the app's transport)."""
        self._client_id = client_id
        self._authority = authority
        self._microsoft_cloud = microsoft_cloud
        self._credential = credential
        self._observed = ObservedHttpClient(http_client) if http_client is not None else None
        self._http_cache = http_cache if http_cache is not None else SharedHttpCache()

    @property
    def authority(self) -> str:
        return self._authority

    def __call__(self, assertion: str, scopes: Sequence[str], claims: str | None = None) -> Exchanged:
        """Exchange ``assertion`` for a token for ``scopes`` (one POST, unless MSAL's throttle memory
        answers), with ``claims`` (a claims challenge) when given.

        Raises:
            ExchangeRefusedError: Entra refused the person's grant (module docstring).
            CredentialUnavailable: Entra unreachable, failing, throttling, or refusing the app (503).
        """
        import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        credential = self._credential()
        app = self._run(
            msal.ConfidentialClientApplication,
            self._client_id,
            client_credential=credential.msal_credential,
            authority=self._authority,
            instance_discovery=None if self._microsoft_cloud else False,
            client_capabilities=["CP1"],
            exclude_scopes=["offline_access"],
            token_cache=msal.TokenCache(),
            http_client=self._observed,
            http_cache=self._http_cache,
        )
        result = self._run(app.acquire_token_on_behalf_of, assertion, list(scopes), claims_challenge=claims)
        if not isinstance(result, dict):
            raise CredentialUnavailable("Microsoft Entra ID answered an exchange with malformed JSON")
        if "access_token" in result:
            return Exchanged(token=str(result["access_token"]), expires_in=int(result.get("expires_in") or 0))
        failure = classify(result)
        logger.info(
            "On-behalf-of exchange refused: %s %s (AADSTS %s)",
            result.get("error"),
            result.get("suberror") or "-",
            sorted(msal_error_codes(result)),
        )
        if isinstance(failure, CredentialUnavailable):
            failure.retry_after = self._retry_after()
        raise failure

    def _run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an MSAL call: network failures, a 5xx, a 429 and malformed answers become 503
        ``credential_unavailable`` with Entra's ``Retry-After`` (bounded)."""
        from msal.exceptions import MsalError  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        if self._observed is not None:
            self._observed.reset()
        try:
            result = function(*args, **kwargs)
        except GraphFunctionsError:
            raise
        except OSError as exc:  # requests' exceptions (connection, timeout) derive from OSError
            raise CredentialUnavailable(
                f"Microsoft Entra ID is unreachable ({type(exc).__name__})", retry_after=self._retry_after()
            ) from exc
        except (MsalError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise CredentialUnavailable(
                f"Microsoft Entra ID failed an exchange ({self._status_text()}, {type(exc).__name__})",
                retry_after=self._retry_after(),
            ) from exc
        last = self._observed.last() if self._observed is not None else None
        if last is not None and (last[0] == 429 or last[0] >= 500):
            raise CredentialUnavailable(
                f"Microsoft Entra ID is failing or throttling exchanges (HTTP {last[0]})",
                retry_after=self._retry_after(),
            )
        return result

    def _status_text(self) -> str:
        return last_status_text(self._observed)

    def _retry_after(self) -> int:
        return last_retry_after(self._observed)
