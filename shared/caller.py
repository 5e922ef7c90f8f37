"""Who is calling: validation of the bearer tokens that client applications present to this API.

Callers obtain tokens from this tenant for ``api://{ENTRA_CLIENT_ID}/.default`` (client credentials) and
send ``Authorization: Bearer <token>``. :class:`CallerAuthenticator` accepts a token only if it is RS256
signed by a key from the tenant's JWKS, issued by the tenant (v2 issuer from OpenID discovery, or the v1
issuer of the authority's cloud: ``https://sts.windows.net/{tenant}/`` for the public and US Government
clouds, ``https://sts.chinacloudapi.cn/{tenant}/`` for China; other hosts count as the global service),
meant for this API (audience = client id or ``api://`` URI), current (``exp``/``nbf``/``iat`` with 60 s
leeway) and from this tenant (``tid``). Each endpoint then states the caller kinds it accepts
(``application`` for app-only tokens, ``user`` for delegated ones, which carry ``scp``) and the app role it
requires, e.g. ``Users.Read.All``. A missing or invalid token is a 401; a wrong kind or a missing role a 403.

PyJWT is imported on first use.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from shared.cooldown import Cooldown, HeldFailure
from shared.errors import CredentialUnavailable, Forbidden, Unauthenticated
from shared.http import Transport, TransportError
from shared.settings import Settings

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
LEEWAY_SECONDS = 60
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
MAX_TOKEN_LENGTH = 16 * 1024
_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


CallerKind = Literal["application", "user", "person"]
#: An endpoint for services only (client-credentials tokens).
APPLICATIONS: frozenset[CallerKind] = frozenset({"application"})
#: An endpoint for signed-in people only (delegated tokens).
USERS: frozenset[CallerKind] = frozenset({"user"})
#: An endpoint for people signed in to this app's pages (session cookie, :mod:`shared.principal`).
PEOPLE: frozenset[CallerKind] = frozenset({"person"})
KIND_NAMES: Mapping[CallerKind, str] = {
    "application": "applications (app-only)",
    "user": "signed-in users (delegated)",
    "person": "people signed in to this app (session)",
}


@dataclasses.dataclass(frozen=True)
class Caller:
    """An authenticated caller.

    Attributes:
        kind: ``application`` (app-only token) or ``user`` (delegated token, carries ``scp``).
        app_id: the calling client's application id (``azp`` in v2 tokens, ``appid`` in v1).
        object_id: the caller's object id (``oid``): service principal or user.
        tenant_id: the caller's tenant (``tid``).
        roles: app roles granted to the caller (``roles``).
        scopes: delegated scopes (``scp``), empty for applications.
    """

    kind: CallerKind
    app_id: str
    object_id: str | None
    tenant_id: str
    roles: frozenset[str]
    scopes: frozenset[str] = frozenset()

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Authenticator(Protocol):
    """Turns request headers into a :class:`Caller` of one of ``kinds`` holding ``required_role``, or
    raises 401/403 errors. Every endpoint states the kinds it accepts: nothing is open to people (or to
    services) by default."""

    def authenticate(
        self, headers: Mapping[str, str], *, required_role: str, kinds: Collection[CallerKind]
    ) -> Caller: ...


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
        self._spawn = spawn or _daemon_thread
        self._fetch_lock = threading.Lock()  # held by fetchers only, never by requests with a known kid
        self._keys: dict[str, Any] = {}  # replaced whole, never mutated: readers need no lock
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
        import jwt

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
        entries = jwks.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or entry.get("alg", ALGORITHM) != ALGORITHM:
                continue
            try:
                keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM).key
            except jwt.PyJWTError:
                logger.warning("Ignoring unusable signing key %s", kid)
        if not keys:
            raise CredentialUnavailable("The tenant publishes no usable RS256 signing keys")
        v1 = self._v1_issuer()
        self._issuers = (issuer, v1) if v1 else (issuer,)
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


def _daemon_thread(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="signing-keys-refresh", daemon=True).start()


class CallerAuthenticator:
    """Validates bearer tokens issued by the tenant for this API (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        keys: SigningKeys,
        *,
        leeway: int = LEEWAY_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._tenant = settings.tenant_id
        self._audiences = list(settings.api_audiences)
        self._keys = keys
        self._leeway = leeway
        self._now = now

    def authenticate(
        self, headers: Mapping[str, str], *, required_role: str, kinds: Collection[CallerKind]
    ) -> Caller:
        """The validated caller, of one of ``kinds``, who holds ``required_role``.

        Raises:
            Unauthenticated: no token, or a token that fails any check (401, ``WWW-Authenticate``).
            Forbidden: a valid token of a kind the endpoint does not accept (403
                ``caller_kind_not_allowed``), or without ``required_role`` (403 ``forbidden``).
            CredentialUnavailable: the tenant's signing keys cannot be fetched (503).
        """
        caller = self.validate(_bearer_token(headers))
        if caller.kind not in kinds:
            accepted = " or ".join(sorted(KIND_NAMES[kind] for kind in kinds))
            raise Forbidden(
                f"This endpoint accepts tokens of {accepted}, not of {KIND_NAMES[caller.kind]}",
                code="caller_kind_not_allowed",
            )
        if not caller.has_role(required_role):
            raise Forbidden(f"The caller lacks the app role '{required_role}' required by this endpoint")
        return caller

    def validate(self, token: str) -> Caller:
        """Validate ``token`` (signature, issuer, audience, lifetime, tenant) and describe its caller."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The bearer token is not a well-formed JWT") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"The bearer token must be signed with {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("The bearer token has no key id (kid)")
        key = self._keys.key(kid)
        if key is None:
            raise Unauthenticated("The bearer token is signed with a key this tenant does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audiences,
                issuer=list(self._keys.issuers()),
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The bearer token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("The bearer token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("The bearer token was not issued for this API") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("The bearer token was not issued by this tenant") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("The bearer token signature is invalid") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The bearer token lacks the '{exc.claim}' claim") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The bearer token is invalid") from exc
        return self._caller(claims)

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        if claims.get("tid") != self._tenant:
            raise Unauthenticated("The bearer token was issued for another tenant")
        app_id = claims.get("azp") or claims.get("appid")
        if not isinstance(app_id, str) or not app_id:
            raise Unauthenticated("The bearer token does not identify the calling application")
        roles = claims.get("roles") or []
        scopes = claims.get("scp") or ""
        if not isinstance(roles, list) or not isinstance(scopes, str):
            raise Unauthenticated("The bearer token has malformed roles or scopes")
        oid = claims.get("oid")
        return Caller(
            kind="user" if scopes else "application",
            app_id=app_id,
            object_id=oid if isinstance(oid, str) else None,
            tenant_id=self._tenant,
            roles=frozenset(role for role in roles if isinstance(role, str)),
            scopes=frozenset(scopes.split()),
        )


def _bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization") or headers.get("Authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value or not value.strip():
        raise Unauthenticated("A bearer token is required", token_present=False)
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_LENGTH or not _JWS.fullmatch(token):
        raise Unauthenticated("The bearer token is not a well-formed JWT")
    return token
