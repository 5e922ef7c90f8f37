"""People's sign-in with MSAL: the authorization-code flow with PKCE, silent acquisition from a session's
token cache, incremental scopes and claims challenges.

:class:`SignInClient` is the only place that talks to Entra ID for people. It uses MSAL directly
(``initiate_auth_code_flow`` / ``acquire_token_by_auth_code_flow`` / ``acquire_token_silent_with_error``):

* **Authority** is the tenant, ``{ENTRA_AUTHORITY_HOST}/{ENTRA_TENANT_ID}``, never ``/common``: the app is a
  single-tenant registration; with ``ENTRA_TENANCY=multi`` it is ``/organizations`` (work accounts of any
  organisation; the onboarded ones are admitted by the caller, :mod:`shared.signin.web`).
  ``client_capabilities=["CP1"]``: Graph may answer with CAE claims challenges.
* **Credential**: the app's own, from the same source as its app-only tokens
  (:meth:`TokenProvider.credential`), read once per process.
* **No per-request discovery.** Each call builds a ``ConfidentialClientApplication`` around the session's own
  ``SerializableTokenCache`` (an app has one cache), and every such app shares one ``http_cache`` and one HTTP
  client, so OpenID discovery happens once per process and a warm session costs no request to Entra at all
  (AzureAD/microsoft-authentication-library-for-python#549).
* **Scopes**: sign-in asks for ``User.Read`` and ``User.ReadBasic.All`` on Graph (MSAL adds ``openid
  profile offline_access``). Other resources (SharePoint) are acquired later from the refresh token.

Every MSAL outcome becomes a result or a typed error: Entra unreachable or failing → 503
``credential_unavailable``; a refresh that needs the person (revoked or expired refresh token, MFA, CA, CAE)
→ :class:`SignInRequired`; a failed code redemption → :class:`SignInFailed`. Tokens are never logged.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.core.error_translation import first_line
from shared.core.errors import (
    ConfigurationError,
    CredentialUnavailable,
    GraphFunctionsError,
    SignInFailed,
    SignInRequired,
)
from shared.core.records import Record
from shared.core.settings_parts import SignInSettings
from shared.identity.credentials import ClientCredential
from shared.identity.msal_app import (
    MAX_HOLD_SECONDS,
    REQUEST_FAILURE_HOLD_SECONDS,
    ObservedHttpClient,
    SharedHttpCache,
)

if TYPE_CHECKING:
    import msal

logger = logging.getLogger(__name__)

#: Delegated Graph permissions the pages need, requested at sign-in.
SIGN_IN_PERMISSIONS = ("User.Read", "User.ReadBasic.All")
#: MSAL's own OIDC scopes; never passed in (MSAL refuses them) and never looked up in the cache.
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access"})
#: Entra error codes meaning "the person must come back" on a silent request (MFA, CA, sign-in frequency,
#: revoked or expired refresh token, CAE).
_INTERACTION_ERRORS = frozenset(
    {"interaction_required", "invalid_grant", "consent_required", "login_required"}
)
#: MSAL/Entra ``suberror`` values meaning "the person can fix this by signing in" (MFA, consent, CA), as
#: opposed to a dead refresh token (``bad_token``, none), which is a plain expired session.
_INTERACTION_SUBERRORS = frozenset({"basic_action", "additional_action", "message_only", "consent_required"})
#: The ``error`` values of an authorization response accepted (and the only text of one logged or shown).
ENTRA_ERROR_PATTERN = "[a-z_]{1,64}"
_AADSTS_PATTERN = "AADSTS([0-9]{1,9})(?![0-9])"
#: Sign-in errors the person caused (declined consent or sign-in).
_DENIED_ERRORS = frozenset({"access_denied", "consent_required"})


class SignedIn(Record):
    """A completed sign-in: the ID token's claims and the new token cache (serialized text)."""

    claims: Mapping[str, Any]
    token_cache: str


class SignInClient:
    """MSAL's auth-code flow and silent acquisition for people (see module docstring). Thread-safe; one
    per process (``shared.app.services.current().sign_in()``)."""

    def __init__(
        self,
        settings: SignInSettings,
        *,
        credential: Callable[[], ClientCredential],
        http_client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``credential`` returns the app's current client credential; ``http_client`` is the requests-like
        client MSAL uses (the app's pooled transport with the project's CA bundle). ``clock`` times the
        hold that mirrors MSAL's throttle cache, which runs on real time: leave it real in a running app."""
        self._settings = settings
        self._clock = clock
        self._credential = credential
        # Watches each token POST (per thread): MSAL hides a 5xx's response and returns a 429 as a result.
        self._observed = ObservedHttpClient(http_client) if http_client is not None else None
        self._http_client: Any = self._observed
        self._http_cache = SharedHttpCache()
        self._held_until = 0.0  # monotonic end of Entra's last Retry-After (MSAL's own throttling)

    @property
    def graph_scopes(self) -> tuple[str, ...]:
        """The sign-in's Graph permissions, qualified with ``GRAPH_ENDPOINT`` (national clouds, local
        tenant)."""
        return tuple(f"{self._settings.graph_endpoint}/{name}" for name in SIGN_IN_PERMISSIONS)

    def sharepoint_scopes(self) -> tuple[str, ...]:
        """The SharePoint delegated scope for ``SHAREPOINT_SITE_URL``: ``{site origin}/AllSites.Read``.

        Raises:
            ConfigurationError: ``SHAREPOINT_SITE_URL`` is not set.
        """
        site = self._settings.sharepoint_site_url
        if not site:
            raise ConfigurationError(
                "SHAREPOINT_SITE_URL is not set: the SharePoint page needs the site's URL"
            )
        parts = urlsplit(site)
        return (f"{parts.scheme}://{parts.netloc}/AllSites.Read",)

    # --- The authorization-code flow ----------------------------------------------------------------

    def begin(
        self,
        *,
        redirect_uri: str,
        scopes: Sequence[str] = (),
        claims: str | None = None,
        login_hint: str | None = None,
        prompt: str | None = None,
    ) -> dict[str, Any]:
        """Start a flow (PKCE S256, state, nonce): MSAL's flow dict, whose ``auth_uri`` the browser goes to.
        Store the whole dict server-side (it holds the PKCE verifier); nothing is sent to Entra yet.

        ``scopes`` default to the sign-in's Graph permissions; ``claims`` is a claims challenge to satisfy.
        """
        app = self._app(None)
        try:
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                list(scopes or self.graph_scopes),
                redirect_uri=redirect_uri,
                login_hint=login_hint,
                prompt=prompt,
                claims_challenge=claims,
                response_mode="query",
            )
        except ValueError as exc:
            raise SignInFailed(f"The sign-in could not be started: {exc}") from exc
        return flow

    def finish(self, flow: Mapping[str, Any], auth_response: Mapping[str, str]) -> SignedIn:
        """Redeem the callback's code for this flow: one token request to Entra.

        Raises:
            SignInFailed: the callback carries an Entra error (``sign_in_denied`` when the person declined),
                its state does not match the flow, or Entra refused the code (replayed, PKCE mismatch).
            CredentialUnavailable: Entra unreachable or failing (503).
        """
        import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        cache = msal.SerializableTokenCache()
        app = self._app(cache)
        error = callback_error(auth_response)
        if error is not None:
            # Anyone can craft a callback URL: only the checked error code and a numeric AADSTS code
            # reach the log, and the page shows the error code alone (never error_description).
            logger.info(
                "Sign-in callback carried the Entra error %s (AADSTS%s)",
                error,
                aadsts_code(auth_response.get("error_description")) or "-",
            )
            if error in _DENIED_ERRORS:
                raise SignInFailed(_describe_entra_error(error), code="sign_in_denied")
            raise SignInFailed(_describe_entra_error(error), code="sign_in_failed")
        try:
            result = self._call(app.acquire_token_by_auth_code_flow, dict(flow), dict(auth_response))
        except ValueError as exc:  # MSAL: state mismatch, or a response without code
            raise SignInFailed("The sign-in response does not belong to this sign-in") from exc
        except RuntimeError as exc:  # MSAL's IdTokenError: nonce, issuer, audience or time check failed
            logger.warning("The ID token of a sign-in failed MSAL's checks: %s", type(exc).__name__)
            raise SignInFailed("The sign-in response could not be verified. Try again.") from exc
        if "error" in result:
            description = first_line(str(result.get("error_description") or result["error"]))
            logger.info("Code redemption failed: %s %s", result.get("error"), description)
            raise SignInFailed(
                "Microsoft Entra ID did not complete the sign-in (the sign-in link may have been used "
                "already). Try again."
            )
        claims = result.get("id_token_claims")
        if not isinstance(claims, dict) or not claims.get("oid"):
            raise SignInFailed("Microsoft Entra ID returned no usable ID token")
        tid = str(claims.get("tid", "")).lower()
        if self._settings.tenancy == "single" and tid != self._settings.tenant_id.lower():
            raise SignInFailed("The account belongs to another organisation")
        if not tid:  # multi-tenant: the caller holds the tenant against the onboarded organisations
            raise SignInFailed("Microsoft Entra ID returned an ID token without a tenant")
        return SignedIn(claims=claims, token_cache=cache.serialize())

    # --- Silent acquisition from a session's cache ------------------------------------------------------

    def acquire_silent(
        self,
        cache: msal.SerializableTokenCache,
        *,
        home_account_id: str,
        scopes: Sequence[str],
        claims: str | None = None,
    ) -> str:
        """An access token for ``scopes`` from ``cache`` (refreshed with the refresh token when needed: then
        ``cache.has_state_changed`` is True and the caller persists it). ``claims`` (a claims challenge)
        bypasses cached access tokens, as MSAL does.

        Raises:
            SignInRequired: no account or refresh token in the cache (``session_expired``), or Entra needs the
                person (``interaction_required``, with the claims Entra sent).
            CredentialUnavailable: Entra unreachable or failing (503).
        """
        result = self._silent(cache, home_account_id=home_account_id, scopes=scopes, claims=claims)
        return str(result["access_token"])

    def refreshed_claims(
        self, cache: msal.SerializableTokenCache, *, home_account_id: str
    ) -> Mapping[str, Any]:
        """The claims of a new ID token for the person of ``cache``: one refresh with the refresh token
        (forced: cached tokens are not looked at), so Entra says who the person is now, with the roles
        assigned now. ``cache`` then holds the new tokens (``has_state_changed``: persist it).

        Raises:
            SignInRequired: Entra refused the refresh (disabled account, revoked sessions or refresh
                token, a policy needing the person) or the cache holds no sign-in.
            CredentialUnavailable: Entra unreachable or failing, or no ID token came back (503).
        """
        result = self._silent(
            cache, home_account_id=home_account_id, scopes=self.graph_scopes, force_refresh=True
        )
        claims = result.get("id_token_claims")
        if not isinstance(claims, dict):
            raise CredentialUnavailable("Microsoft Entra ID refreshed a sign-in without an ID token")
        return claims

    def _silent(
        self,
        cache: msal.SerializableTokenCache,
        *,
        home_account_id: str,
        scopes: Sequence[str],
        claims: str | None = None,
        force_refresh: bool = False,
    ) -> Mapping[str, Any]:
        """MSAL's silent result holding an access token (see :meth:`acquire_silent` for what it raises)."""
        app = self._app(cache)
        account = next(
            (a for a in app.get_accounts() if a.get("home_account_id") == home_account_id),
            None,
        )
        if account is None:
            raise SignInRequired("Your session holds no sign-in any more. Sign in again.")
        result = self._call(
            app.acquire_token_silent_with_error,
            list(scopes),
            account,
            claims_challenge=claims,
            force_refresh=force_refresh,
        )
        if result is None:
            raise SignInRequired("Your sign-in has expired. Sign in again.")
        if "access_token" in result:
            return dict(result)
        error = str(result.get("error") or "")
        description = first_line(str(result.get("error_description") or error))
        if error in _INTERACTION_ERRORS:
            challenge = result.get("claims")
            interaction = (
                error in ("interaction_required", "consent_required")
                or result.get("suberror") in _INTERACTION_SUBERRORS
                or bool(challenge)
            )
            logger.info("Silent token request needs the person again: %s %s", error, description)
            raise SignInRequired(
                "Microsoft Entra ID needs you to sign in again"
                + (" (your organisation asks for an extra check)" if interaction else ""),
                code="interaction_required" if interaction else "session_expired",
                claims=challenge if isinstance(challenge, str) and challenge else claims,
                scopes=tuple(scopes),
            )
        raise CredentialUnavailable(
            f"Microsoft Entra ID could not refresh a sign-in ({description})", retry_after=self._retry_after()
        )

    # --- MSAL apps --------------------------------------------------------------------------------------

    def _app(self, cache: msal.TokenCache | None) -> msal.ConfidentialClientApplication:
        import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        credential = self._credential()
        try:
            return self._call(
                msal.ConfidentialClientApplication,
                self._settings.client_id,
                client_credential=credential.msal_credential,
                authority=self._settings.sign_in_authority,
                instance_discovery=None if self._settings.authority_is_microsoft_cloud else False,
                client_capabilities=["CP1"],
                token_cache=cache,
                http_client=self._http_client,
                http_cache=self._http_cache,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"MSAL rejected the authority {self._settings.authority}: {exc}. Check ENTRA_AUTHORITY_HOST "
                "and ENTRA_TENANT_ID."
            ) from exc

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an MSAL call. Network failures, a 5xx and a 429 from Entra become 503
        ``credential_unavailable`` with Entra's own ``Retry-After`` when it sent one (bounded)."""
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
        except (MsalError, KeyError, TypeError, AttributeError) as exc:  # 5xx, malformed body
            raise CredentialUnavailable(
                f"Microsoft Entra ID failed a sign-in request ({type(exc).__name__})",
                retry_after=self._retry_after(),
            ) from exc
        last = self._observed.last() if self._observed is not None else None
        if last is not None and (last[0] == 429 or last[0] >= 500):
            raise CredentialUnavailable(
                f"Microsoft Entra ID is failing or throttling sign-in requests (HTTP {last[0]})",
                retry_after=self._retry_after(),
            )
        return result

    def _retry_after(self) -> int:
        """Entra's Retry-After for this thread's last token request (bounded). MSAL itself then answers
        the same client's token requests from its throttle cache for that long without sending them, so
        those answers get the time left of that hold."""
        last = self._observed.last() if self._observed is not None else None
        try:
            seconds = float(last[1]) if last is not None and last[1] is not None else None
        except ValueError:
            seconds = None
        now = self._clock()
        if seconds is not None:
            seconds = min(MAX_HOLD_SECONDS, max(1.0, seconds))
            self._held_until = max(self._held_until, now + seconds)
            return int(seconds)
        if last is None and self._held_until > now:
            return max(1, math.ceil(self._held_until - now))
        return int(REQUEST_FAILURE_HOLD_SECONDS)


def callback_error(response: Mapping[str, str]) -> str | None:
    """The ``error`` of an authorization (or admin-consent) response; None when it has none.

    OAuth error codes are short ASCII words (RFC 6749 section 4.1.2.1; Entra's are lower case joined by
    ``_``), so anything but :data:`ENTRA_ERROR_PATTERN` is not Entra's: refused without being repeated.

    Raises:
        SignInFailed: ``error`` is present but malformed (``sign_in_failed``; its text is neither logged
            nor shown).
    """
    if "error" not in response:
        return None
    error = str(response.get("error") or "")
    if not re.fullmatch(ENTRA_ERROR_PATTERN, error):
        logger.warning("A sign-in callback carried a malformed error (%d characters), ignored", len(error))
        raise SignInFailed("Microsoft Entra ID could not sign you in. Try again.", code="sign_in_failed")
    return error


def aadsts_code(description: str | None) -> str | None:
    """The number of the ``AADSTS`` code an ``error_description`` starts with (digits only: safe to log)."""
    found = re.match(_AADSTS_PATTERN, description or "")
    return found.group(1) if found else None


def _describe_entra_error(error: str) -> str:
    if error == "access_denied":
        return "The sign-in was cancelled or declined. You can try again."
    if error == "consent_required":
        return "This app needs consent that has not been given. Ask an administrator to grant admin consent."
    if error == "interaction_required":
        return "Your organisation requires an extra step that could not be completed. Try again."
    return f"Microsoft Entra ID could not sign you in ({error})."
