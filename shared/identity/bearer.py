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

The tenant's signing keys are fetched and cached by :class:`shared.identity.signing_keys.SigningKeys`. PyJWT
is
imported on first use.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol

from shared.core.errors import Forbidden, Unauthenticated
from shared.core.settings import Settings
from shared.identity.signing_keys import ALGORITHM, SigningKeys

logger = logging.getLogger(__name__)

LEEWAY_SECONDS = 60
MAX_TOKEN_LENGTH = 16 * 1024
_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


CallerKind = Literal["application", "user", "person"]
#: An endpoint for services only (client-credentials tokens).
APPLICATIONS: frozenset[CallerKind] = frozenset({"application"})
#: An endpoint for signed-in people only (delegated tokens).
USERS: frozenset[CallerKind] = frozenset({"user"})
#: An endpoint for people signed in to this app's pages (session cookie, :mod:`shared.identity.principal`).
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
