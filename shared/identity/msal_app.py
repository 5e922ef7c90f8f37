"""The MSAL side of the app's own token: one adapter that turns every MSAL behaviour into a result or a
typed error, and the factory of MSAL confidential-client apps (used by :mod:`shared.identity.tokens`).

MSAL raises ``MsalServiceError`` for a 5xx from the token endpoint without exposing the response, returns an
Entra 429 as an ordinary error result, and lets ``requests``' and ``json``'s exceptions through. The adapter
watches the token POST through the ``http_client`` it hands MSAL, so that every one of those becomes a
:class:`CredentialUnavailable` carrying Entra's own ``Retry-After`` when it sent one. MSAL is imported on
first use only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from shared.core.errors import ConfigurationError, CredentialUnavailable
from shared.core.settings_parts import EntraApp
from shared.identity.credentials import ClientCredential

if TYPE_CHECKING:
    import msal

#: Seconds a failed token request is held when Entra gives no Retry-After (MSAL's own throttling default).
REQUEST_FAILURE_HOLD_SECONDS = 5.0
#: Upper bound on a hold taken from Entra's Retry-After.
MAX_HOLD_SECONDS = 300.0
#: Hold after the authority's metadata could not be read.
METADATA_FAILURE_HOLD_SECONDS = 5


class ConfidentialClient(Protocol):
    """The part of ``msal.ConfidentialClientApplication`` the provider uses (fakes implement it in tests).

    ``acquire_token_for_client`` returns MSAL's result dict, or raises :class:`CredentialUnavailable`
    (the production adapter converts every MSAL and network exception) or ``OSError``.
    """

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]: ...

    def remove_tokens_for_client(self) -> None: ...


AppFactory = Callable[[ClientCredential], ConfidentialClient]


class _ObservedHttpClient:
    """MSAL ``http_client`` wrapper remembering, per thread, the status and ``Retry-After`` of the last
    POST (the token request): MSAL raises on a 5xx without exposing the response."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._local = threading.local()

    def reset(self) -> None:
        self._local.last = None

    def last(self) -> tuple[int, str | None] | None:
        return getattr(self._local, "last", None)

    def post(self, url: str, *args: Any, **kwargs: Any) -> Any:
        response = self._inner.post(url, *args, **kwargs)
        headers = getattr(response, "headers", None) or {}
        self._local.last = (int(response.status_code), headers.get("Retry-After"))
        return response

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return self._inner.get(url, *args, **kwargs)

    def close(self) -> None:
        self._inner.close()


def last_status_text(observed: _ObservedHttpClient | None) -> str:
    """``HTTP {status}`` of this thread's last token request through ``observed``, else ``no response``."""
    last = observed.last() if observed is not None else None
    return f"HTTP {last[0]}" if last is not None else "no response"


def last_retry_after(observed: _ObservedHttpClient | None) -> int:
    """Entra's Retry-After for this thread's last token request through ``observed`` (within 1 s and
    :data:`MAX_HOLD_SECONDS`), else the default hold :data:`REQUEST_FAILURE_HOLD_SECONDS`."""
    last = observed.last() if observed is not None else None
    try:
        seconds = float(last[1]) if last is not None and last[1] is not None else None
    except ValueError:
        seconds = None
    if seconds is None:
        return int(REQUEST_FAILURE_HOLD_SECONDS)
    return int(min(MAX_HOLD_SECONDS, max(1.0, seconds)))


#: The same watcher for other MSAL confidential clients of the app (people's sign-in,
#: :mod:`shared.signin.client`).
ObservedHttpClient = _ObservedHttpClient


class _MsalClient:
    """:class:`ConfidentialClient` over a real MSAL app: every MSAL, JSON and network exception, and an
    Entra 429 (which MSAL returns as a result), becomes :class:`CredentialUnavailable`."""

    def __init__(self, app: msal.ConfidentialClientApplication, observed: _ObservedHttpClient | None) -> None:
        self._app = app
        self._observed = observed

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        from msal.exceptions import MsalError  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        if self._observed is not None:
            self._observed.reset()
        try:
            result = self._app.acquire_token_for_client(scopes)
        except OSError as exc:  # requests' exceptions (connection, timeout) derive from OSError
            raise CredentialUnavailable(
                f"Microsoft Entra ID is unreachable ({type(exc).__name__})", retry_after=self._retry_after()
            ) from exc
        except (MsalError, ValueError, TypeError, KeyError, AttributeError) as exc:  # 5xx, malformed body
            raise CredentialUnavailable(
                f"Microsoft Entra ID failed the token request ({self._status_text()}, {type(exc).__name__})",
                retry_after=self._retry_after(),
            ) from exc
        last = self._observed.last() if self._observed is not None else None
        if last is not None and (last[0] == 429 or last[0] >= 500):
            raise CredentialUnavailable(
                f"Microsoft Entra ID is throttling the app's token requests ({self._status_text()})",
                retry_after=self._retry_after(),
            )
        if not isinstance(result, dict):
            raise CredentialUnavailable("Microsoft Entra ID answered the token request with malformed JSON")
        return result

    def remove_tokens_for_client(self) -> None:
        """Remove this app's app-only tokens of ITS realm (tenant) only.

        MSAL's own ``remove_tokens_for_client()`` queries without a realm, so on a token cache that several
        tenants' apps share it would drop every tenant's tokens (shared/reference/multi-tenant-and-obo.md
        A.6, measured); the targeted search removes only this authority's.
        """
        remove_realm_tokens(
            self._app.token_cache, client_id=self._app.client_id, realm=self._app.authority.tenant
        )

    def _status_text(self) -> str:
        return last_status_text(self._observed)

    def _retry_after(self) -> int:
        return last_retry_after(self._observed)


def remove_realm_tokens(cache: msal.TokenCache, *, client_id: str, realm: str) -> int:
    """Remove the app-only access tokens of ``client_id`` in ``realm`` (a tenant id) from ``cache``;
    returns how many. Other tenants' entries (and people's) stay."""
    query = {"client_id": client_id, "realm": realm, "home_account_id": None}
    found = list(cache.search(cache.CredentialType.ACCESS_TOKEN, query=query))
    for entry in found:
        cache.remove_at(entry)
    return len(found)


class SharedMsalState:
    """One MSAL token cache and one discovery cache (``http_cache``) that the apps of every tenant share
    (multi-tenant: one ``ConfidentialClientApplication`` per tenant authority, since MSAL Python has no
    per-request authority; entries are kept apart by realm)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: msal.TokenCache | None = None
        self.http_cache = SharedHttpCache()

    def token_cache(self) -> msal.TokenCache:
        import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        with self._lock:
            if self._cache is None:
                self._cache = msal.TokenCache()
            return self._cache

    def remove_realm(self, *, client_id: str, realm: str) -> int:
        """Remove the app-only tokens of one tenant (offboarding, suspension); returns how many."""
        with self._lock:
            cache = self._cache
        return remove_realm_tokens(cache, client_id=client_id, realm=realm) if cache is not None else 0


def msal_app_factory(
    registration: EntraApp, *, http_client: Any | None = None, shared: SharedMsalState | None = None
) -> AppFactory:
    """The production :data:`AppFactory`: MSAL apps for ``registration.authority`` that share one token cache.

    Sharing the cache across rebuilds keeps tokens that are still valid (for other scopes) after a rotation.
    ``instance_discovery`` is turned off only for non-Microsoft authority hosts (the local tenant): for
    those, MSAL would otherwise ask login.microsoftonline.com to validate a host it cannot know.

    The returned factory raises ConfigurationError when the authority is rejected (tenant unknown, bad URL)
    and CredentialUnavailable when it is unreachable, failing or answering malformed metadata.

    ``shared``: the token and discovery caches every tenant's factory uses (multi-tenant); without it the
    factory keeps a cache of its own.
    """
    lock = threading.Lock()
    caches: list[msal.TokenCache] = []
    observed = _ObservedHttpClient(http_client) if http_client is not None else None

    def build(credential: ClientCredential) -> ConfidentialClient:
        import msal  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)
        from msal.exceptions import MsalError  # noqa: PLC0415 - msal is heavy: imported on first use (cold start)

        with lock:
            if not caches:
                caches.append(shared.token_cache() if shared is not None else msal.TokenCache())
            cache = caches[0]
        extra: dict[str, Any] = {"http_cache": shared.http_cache} if shared is not None else {}
        try:
            app = msal.ConfidentialClientApplication(
                registration.client_id,
                client_credential=credential.msal_credential,
                authority=registration.authority,
                instance_discovery=None if registration.authority_is_microsoft_cloud else False,
                token_cache=cache,
                http_client=observed,
                **extra,
            )
        except OSError as exc:  # requests' exceptions derive from OSError
            raise CredentialUnavailable(
                f"Microsoft Entra ID metadata at {registration.authority} is unreachable "
                f"({type(exc).__name__})",
                retry_after=METADATA_FAILURE_HOLD_SECONDS,
            ) from exc
        except (MsalError, json.JSONDecodeError, KeyError, TypeError) as exc:  # 5xx or malformed metadata
            raise CredentialUnavailable(
                f"Microsoft Entra ID metadata at {registration.authority} failed ({type(exc).__name__})",
                retry_after=METADATA_FAILURE_HOLD_SECONDS,
            ) from exc
        except ValueError as exc:
            raise ConfigurationError(
                f"MSAL rejected the authority {registration.authority}: {exc}. Check ENTRA_AUTHORITY_HOST "
                "and ENTRA_TENANT_ID."
            ) from exc
        return _MsalClient(app, observed)

    return build


class SharedHttpCache(MutableMapping[str, Any]):
    """The dict MSAL's ``http_cache`` of every per-request app (people's sign-in) writes to, with each
    operation locked (the apps' own locks are per app, and they share this mapping)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
