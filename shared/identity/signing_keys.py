"""The tenant's token signing keys: OpenID metadata and JWKS, fetched through the app's transport and
cached for :class:`shared.identity.bearer.CallerAuthenticator`.

Keys are served from the cache while one thread refreshes them in the background; an unknown ``kid`` waits
for a rate-limited refetch (keys roll over rarely, attackers mint kids); without any cached keys a failed
fetch is held briefly (503 meanwhile); metadata and JWKS bodies are capped in size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.core.cooldown import Cooldown, HeldFailure
from shared.core.errors import CredentialUnavailable
from shared.core.http import Transport, TransportError
from shared.core.threads import start_daemon

logger = logging.getLogger(__name__)

#: The only signature algorithm Entra ID uses for these tokens, and the only one accepted.
ALGORITHM = "RS256"
#: An unknown ``kid`` refetches the JWKS at most this often (keys roll over rarely; attackers mint kids).
MIN_REFRESH_SECONDS = 300.0
#: Keys are refreshed at least this often, so retired keys stop being trusted.
MAX_KEY_AGE_SECONDS = 12 * 3600.0
#: Without any cached keys, a failed fetch is retried after this long (requests meanwhile get 503).
FAILED_FETCH_RETRY_SECONDS = 5.0
#: Largest OpenID metadata or JWKS body accepted (Entra's JWKS is a few kB; a hostile one could be huge).
MAX_DOCUMENT_BYTES = 256 * 1024
#: The v1 token issuer host of each Microsoft cloud, by authority host: ``https://{host}/{tenant}/``.
#: Public and US Government clouds issue v1 tokens as sts.windows.net, the China cloud (21Vianet) as
#: sts.chinacloudapi.cn (learn.microsoft.com/en-us/answers/questions/1190472,
#: github.com/MicrosoftDocs/azure-docs/issues/123050).
GLOBAL_V1_ISSUER_HOST = "sts.windows.net"
V1_ISSUER_HOSTS: Mapping[str, str] = {
    "login.microsoftonline.com": "sts.windows.net",
    "login.microsoft.com": "sts.windows.net",
    "login.windows.net": "sts.windows.net",
    "login.microsoftonline.us": "sts.windows.net",
    "login.chinacloudapi.cn": "sts.chinacloudapi.cn",
    "login.partner.microsoftonline.cn": "sts.chinacloudapi.cn",
}


class SigningKeys:
    """The tenant's OpenID metadata and JWKS, cached per process.

    * A request never waits for a refresh it does not need: keys older than :data:`MAX_KEY_AGE_SECONDS`
      keep being served while ONE background thread refetches them (at most once per
      ``min_refresh_seconds`` while the tenant is unreachable).
    * An unknown ``kid`` waits for a refetch (the tenant may have rolled its keys over), at most one per
      ``min_refresh_seconds`` however many kids callers invent; concurrent fetchers share one fetch.
    * Without any keys, a failed fetch is answered from memory for :data:`FAILED_FETCH_RETRY_SECONDS`.
    * Metadata and JWKS bodies larger than :data:`MAX_DOCUMENT_BYTES` are refused.
    """

    def __init__(
        self,
        *,
        metadata_url: str,
        transport: Transport,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        max_age_seconds: float = MAX_KEY_AGE_SECONDS,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """``spawn`` runs a background refresh (default: a daemon thread; tests run it inline)."""
        self._metadata_url = metadata_url
        self._transport = transport
        self._timeout = timeout
        self._clock = clock
        self._max_age = max_age_seconds
        self._spawn = spawn or _refresh_thread
        self._fetch_lock = threading.Lock()  # held by fetchers only, never by requests with a known kid
        self._keys: dict[str, Any] = {}  # replaced whole, never mutated: readers need no lock
        self._key_issuers: dict[str, str] = {}  # kid -> the key's own `issuer` where the JWKS names one
        self._issuers: tuple[str, ...] = ()
        self._fetched_at: float | None = None  # last successful fetch
        self._generation = 0  # successful fetches so far
        self._kid_refetch = Cooldown(min_refresh_seconds, clock=clock)  # refetches caused by unknown kids
        self._stale_refresh = Cooldown(min_refresh_seconds, clock=clock)  # background refreshes
        self._first_fetch_failure = HeldFailure(clock=clock)
        self.fetches = 0

    def issuers(self) -> tuple[str, ...]:
        """The issuers tokens of this tenant carry: the v2 ``issuer`` of its OpenID configuration and the
        v1 issuer of its cloud (fetched if needed)."""
        if not self._issuers:
            self._fetch_now(self._generation)
        return self._issuers

    def issuer(self) -> str:
        """The ``issuer`` of the tenant's v2 OpenID configuration (fetched if needed)."""
        return self.issuers()[0]

    def key_issuer(self, kid: str) -> str | None:
        """The ``issuer`` the JWKS publishes on key ``kid`` (multi-tenant key sets do: a template, or one
        fixed issuer the key may sign for), None when it names none. Read after :meth:`key`."""
        return self._key_issuers.get(kid)

    def key(self, kid: str) -> Any | None:
        """The public key for ``kid``, or None if the tenant does not publish it (even after a refresh).

        Raises:
            CredentialUnavailable: no keys could be fetched yet.
        """
        keys, generation = self._keys, self._generation
        found = keys.get(kid)
        if found is not None:
            if not self._fresh():
                self._refresh_in_background()
            return found
        if not keys:
            self._first_fetch_failure.raise_if_held()
            self._fetch_now(generation)
            return self._keys.get(kid)
        # Known keys but an unknown kid: the tenant may have rolled its keys over. Callers must not drive
        # refetches, so at most one per interval; the initial or scheduled fetch does not count, or a
        # rollover just after start would lock callers out.
        if not self._kid_refetch.try_start():
            return None
        try:
            self._fetch_now(generation)
        except CredentialUnavailable:
            logger.warning("Refreshing the tenant's signing keys failed; using the %d cached", len(keys))
        return self._keys.get(kid)

    def _fresh(self) -> bool:
        fetched_at = self._fetched_at
        return fetched_at is not None and self._clock() - fetched_at < self._max_age

    def _fetch_now(self, seen_generation: int) -> None:
        """Fetch unless another thread completed a fetch since the caller looked (``seen_generation``)."""
        with self._fetch_lock:
            if self._generation != seen_generation and self._keys:
                return
            if not self._keys:
                self._first_fetch_failure.raise_if_held()
            try:
                self._refresh()
            except CredentialUnavailable as error:
                if not self._keys:
                    self._first_fetch_failure.hold(error, FAILED_FETCH_RETRY_SECONDS)
                raise

    def _refresh_in_background(self) -> None:
        if not self._stale_refresh.try_start():
            return  # one refresh per interval: an outage costs the tenant one attempt per interval

        def run() -> None:
            with self._fetch_lock:
                if self._fresh():
                    return
                try:
                    self._refresh()
                except CredentialUnavailable:
                    logger.warning(
                        "Refreshing the tenant's signing keys failed; using the %d cached", len(self._keys)
                    )

        self._spawn(run)

    def _refresh(self) -> None:
        import jwt  # noqa: PLC0415 - jwt is heavy: imported on first use (cold start)

        self.fetches += 1
        metadata = self._get_json(self._metadata_url)
        issuer, jwks_uri = metadata.get("issuer"), metadata.get("jwks_uri")
        if (
            not isinstance(issuer, str)
            or not isinstance(jwks_uri, str)
            or not jwks_uri.startswith("https://")
        ):
            raise CredentialUnavailable("The tenant's OpenID configuration lacks issuer or an https jwks_uri")
        jwks = self._get_json(jwks_uri)
        keys: dict[str, Any] = {}
        key_issuers: dict[str, str] = {}
        entries = jwks.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or entry.get("alg", ALGORITHM) != ALGORITHM:
                continue
            try:
                keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM).key
                if isinstance(entry.get("issuer"), str):
                    key_issuers[kid] = entry["issuer"]
            except jwt.PyJWTError:
                logger.warning("Ignoring unusable signing key %s", kid)
        if not keys:
            raise CredentialUnavailable("The tenant publishes no usable RS256 signing keys")
        v1 = self._v1_issuer()
        self._issuers = (issuer, v1) if v1 else (issuer,)
        self._key_issuers = key_issuers
        self._keys, self._fetched_at = keys, self._clock()
        self._generation += 1
        logger.info("Loaded %d signing keys for issuer %s", len(keys), issuer)

    def _v1_issuer(self) -> str | None:
        """The v1 issuer ``https://{sts host}/{tenant}/`` of the authority's cloud (tenant from the metadata
        URL's path). A host outside the table (the local tenant) is taken to be the global service."""
        parts = urlsplit(self._metadata_url)
        segments = [segment for segment in parts.path.split("/") if segment]
        if not segments:
            return None
        sts_host = V1_ISSUER_HOSTS.get((parts.hostname or "").lower(), GLOBAL_V1_ISSUER_HOST)
        return f"https://{sts_host}/{segments[0]}/"

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._transport.send(
                "GET", url, headers={"Accept": "application/json"}, timeout=self._timeout
            )
        except TransportError as exc:
            raise CredentialUnavailable("The tenant's signing keys are unreachable", retry_after=10) from exc
        if response.status_code != 200:
            raise CredentialUnavailable(
                f"Fetching the tenant's signing keys failed (HTTP {response.status_code})", retry_after=10
            )
        if _declared_length(response.headers) > MAX_DOCUMENT_BYTES or len(response.text) > MAX_DOCUMENT_BYTES:
            raise CredentialUnavailable(
                f"The tenant's key metadata exceeds {MAX_DOCUMENT_BYTES} bytes", retry_after=10
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise CredentialUnavailable("The tenant's key metadata is not JSON", retry_after=10) from exc
        if not isinstance(body, dict):
            raise CredentialUnavailable("The tenant's key metadata is not a JSON object", retry_after=10)
        return body


def _declared_length(headers: Mapping[str, str]) -> int:
    try:
        return int(headers.get("content-length") or 0)
    except (TypeError, ValueError):
        return 0


def _refresh_thread(target: Callable[[], None]) -> None:
    start_daemon(target, name="signing-keys-refresh")
