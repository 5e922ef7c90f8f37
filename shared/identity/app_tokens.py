"""The app's own tokens in every tenant it serves: one :class:`~shared.identity.tokens.TokenProvider` per
tenant over ONE credential and ONE MSAL token cache.

MSAL Python fixes the authority per ``ConfidentialClientApplication`` (no per-request tenant, MSAL Python
#368), so each tenant gets its own app, built lazily by its provider; every app shares one
``TokenCache`` (entries kept apart by ``realm``, the tenant id) and one discovery cache, so a tenant's
first token costs one discovery at most and a warm request in any tenant costs no request to Entra.
Single-flight, held failures and refresh-ahead are the provider's, hence per tenant: one tenant's outage
(its service principal deleted, Entra throttling it) never holds another's requests.

The credential is read once for all tenants (:class:`SharedCredential`): a Key Vault secret is read once
per process, and in secretless mode one managed-identity assertion (cached by azure-identity) serves every
tenant's token request. A rejection still re-reads it (rotation), through whichever tenant saw it first.

:meth:`AppTokens.forget` drops one tenant's tokens (its realm only: MSAL's ``remove_tokens_for_client()``
would drop every tenant's) and its provider, for suspension, offboarding and revoked consent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shared.core.settings_parts import EntraApp
from shared.identity.credentials import ClientCredential, CredentialSource
from shared.identity.msal_app import SharedMsalState, msal_app_factory
from shared.identity.tokens import TokenProvider


class SharedCredential:
    """The process's client credential, read from ``source`` once for every tenant. Thread-safe."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._current: ClientCredential | None = None
        self.reads = 0

    def current(self) -> ClientCredential:
        """The credential read last (read now if never)."""
        with self._lock:
            if self._current is None:
                self.reads += 1
                self._current = self._source.load()
            return self._current

    def reread(self) -> ClientCredential:
        """Read the credential again (a tenant's token request saw it rejected: perhaps rotated)."""
        with self._lock:
            self.reads += 1
            self._current = self._source.load()
            return self._current

    def for_one_provider(self) -> CredentialSource:
        """A :class:`CredentialSource` for one tenant's provider: its first load is the shared credential,
        each later load (the provider re-reads only after a rejection) a real read that all share."""
        return _ProviderView(self)


class _ProviderView:
    def __init__(self, shared: SharedCredential) -> None:
        self._shared = shared
        self._loaded = False

    def load(self) -> ClientCredential:
        if not self._loaded:
            self._loaded = True
            return self._shared.current()
        return self._shared.reread()


class AppTokens:
    """Per-tenant app-token providers sharing one credential and one token cache (module docstring)."""

    def __init__(
        self,
        *,
        registration: EntraApp,
        authority_host: str,
        credential: SharedCredential,
        http_client: Any | None = None,
        provider: Callable[[CredentialSource, Any], TokenProvider] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``provider`` builds a tenant's provider from its credential view and app factory (tests);
        ``clock`` is what each provider's renewals and held failures wait on (the process's clock)."""
        self._registration = registration
        self._host = authority_host
        self._credential = credential
        self._http_client = http_client
        self._msal = SharedMsalState()
        self._lock = threading.Lock()
        self._providers: dict[str, TokenProvider] = {}
        self._build = provider or (
            lambda source, factory: TokenProvider(credential_source=source, app_factory=factory, clock=clock)
        )

    @property
    def credential(self) -> SharedCredential:
        return self._credential

    def provider(self, tenant_id: str) -> TokenProvider:
        """The provider of ``tenant_id`` (built on first use; no request is sent until a token is asked)."""
        key = tenant_id.lower()
        found = self._providers.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._providers.get(key)
            if found is None:
                registration = self._registration._replace(authority=f"{self._host}/{key}")
                factory = msal_app_factory(registration, http_client=self._http_client, shared=self._msal)
                found = self._providers[key] = self._build(self._credential.for_one_provider(), factory)
            return found

    def forget(self, tenant_id: str) -> int:
        """Drop ``tenant_id``'s cached tokens (its realm only) and its provider; returns the number of
        cached tokens removed. The next token for that tenant is a new request to Entra."""
        key = tenant_id.lower()
        with self._lock:
            self._providers.pop(key, None)
        return self._msal.remove_realm(client_id=self._registration.client_id, realm=key)

    def token_requests(self) -> int:
        """Token requests sent to Entra by every tenant's provider (benchmarks, tests)."""
        with self._lock:
            providers = list(self._providers.values())
        return sum(provider.token_requests for provider in providers)

    def __len__(self) -> int:
        return len(self._providers)
