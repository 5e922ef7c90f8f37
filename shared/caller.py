"""Who is calling: validation of the bearer tokens that client applications present to this API.

Callers obtain tokens from this tenant for ``api://{ENTRA_CLIENT_ID}/.default`` (client credentials) and
send ``Authorization: Bearer <token>``. :class:`CallerAuthenticator` accepts a token only if it is RS256
signed by a key from the tenant's JWKS, issued by the tenant (v2 issuer from OpenID discovery, or the v1
``https://sts.windows.net/{tenant}/``), meant for this API (audience = client id or ``api://`` URI), current
(``exp``/``nbf``/``iat`` with 60 s leeway) and from this tenant (``tid``). Each endpoint then requires an app
role, e.g. ``Users.Read.All``. A missing or invalid token is a 401, a missing role a 403.

:class:`Caller` has a ``kind`` so that signed-in browser sessions can be added later as a second
:class:`Authenticator` without changing endpoints. PyJWT is imported on first use.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

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
MAX_TOKEN_LENGTH = 16 * 1024
_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


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

    kind: Literal["application", "user"]
    app_id: str
    object_id: str | None
    tenant_id: str
    roles: frozenset[str]
    scopes: frozenset[str] = frozenset()

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Authenticator(Protocol):
    """Turns request headers into a :class:`Caller` holding ``required_role``, or raises 401/403 errors."""

    def authenticate(self, headers: Mapping[str, str], *, required_role: str) -> Caller: ...


class SigningKeys:
    """The tenant's OpenID metadata and JWKS, cached per process, refreshed on unknown ``kid`` (rate-limited)
    and when older than :data:`MAX_KEY_AGE_SECONDS`. Keeps serving cached keys if a refresh fails."""

    def __init__(
        self,
        *,
        metadata_url: str,
        transport: Transport,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        max_age_seconds: float = MAX_KEY_AGE_SECONDS,
    ) -> None:
        self._metadata_url = metadata_url
        self._transport = transport
        self._timeout = timeout
        self._clock = clock
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._issuer: str | None = None
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._kid_refresh_at: float | None = None  # last refetch caused by an unknown kid
        self.fetches = 0

    def issuer(self) -> str:
        """The ``issuer`` of the tenant's OpenID configuration (fetched if needed)."""
        issuer = self._issuer
        if issuer is None:
            with self._lock:
                if self._issuer is None:
                    self._refresh_locked()
                issuer = self._issuer
        if issuer is None:  # _refresh_locked sets it or raises; kept for the type checker
            raise CredentialUnavailable("The tenant's OpenID configuration has no issuer")
        return issuer

    def key(self, kid: str) -> Any | None:
        """The public key for ``kid``, or None if the tenant does not publish it (even after a refresh).

        Raises:
            CredentialUnavailable: no keys could be fetched yet.
        """
        now = self._clock()
        fresh = self._fetched_at is not None and now - self._fetched_at < self._max_age
        found = self._keys.get(kid)
        if found is not None and fresh:
            return found
        with self._lock:
            now = self._clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._max_age
            if kid in self._keys and fresh:
                return self._keys[kid]
            if not self._keys:
                # Without any keys, a failed first fetch is retried after a short pause (503 meanwhile).
                if self._attempted_at is not None and now - self._attempted_at < FAILED_FETCH_RETRY_SECONDS:
                    raise CredentialUnavailable("The tenant's signing keys are unavailable", retry_after=10)
            elif fresh:
                # Fresh keys but an unknown kid: the tenant may have rolled its keys over. Callers must not
                # drive refetches, so at most one per interval however many kids they invent; the initial or
                # scheduled fetch does not count, or a rollover just after start would lock callers out.
                if self._kid_refresh_at is not None and now - self._kid_refresh_at < self._min_refresh:
                    return None
                self._kid_refresh_at = now
            elif self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                return self._keys.get(kid)  # stale keys kept through an outage until the next attempt
            try:
                self._refresh_locked()
            except CredentialUnavailable:
                if not self._keys:
                    raise
                logger.warning(
                    "Refreshing the tenant's signing keys failed; using the %d cached", len(self._keys)
                )
            return self._keys.get(kid)

    def _refresh_locked(self) -> None:
        import jwt

        self._attempted_at = self._clock()
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
        for entry in jwks.get("keys") or []:
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
        self._issuer, self._keys, self._fetched_at = issuer, keys, self._clock()
        logger.info("Loaded %d signing keys for issuer %s", len(keys), issuer)

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
        try:
            body = response.json()
        except ValueError as exc:
            raise CredentialUnavailable("The tenant's key metadata is not JSON", retry_after=10) from exc
        if not isinstance(body, dict):
            raise CredentialUnavailable("The tenant's key metadata is not a JSON object", retry_after=10)
        return body


class CallerAuthenticator:
    """Validates app-only bearer tokens issued by the tenant for this API (see module docstring)."""

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
        self._v1_issuer = f"https://sts.windows.net/{settings.tenant_id}/"
        self._keys = keys
        self._leeway = leeway
        self._now = now

    def authenticate(self, headers: Mapping[str, str], *, required_role: str) -> Caller:
        """The validated caller, who holds ``required_role``.

        Raises:
            Unauthenticated: no token, or a token that fails any check (401, ``WWW-Authenticate``).
            Forbidden: a valid token without ``required_role`` (403).
            CredentialUnavailable: the tenant's signing keys cannot be fetched (503).
        """
        caller = self.validate(_bearer_token(headers))
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
                issuer=[self._keys.issuer(), self._v1_issuer],
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
