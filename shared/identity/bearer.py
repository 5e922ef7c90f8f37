"""Who is calling: validation of the bearer tokens that client applications present to this API.

Callers obtain tokens from this tenant for ``api://{ENTRA_CLIENT_ID}/.default`` (client credentials) and
send ``Authorization: Bearer <token>``. :class:`CallerAuthenticator` accepts a token only if it is RS256
signed by a key from the tenant's JWKS, issued by the tenant (v2 issuer from OpenID discovery, or the v1
issuer of the authority's cloud: ``https://sts.windows.net/{tenant}/`` for the public and US Government
clouds, ``https://sts.chinacloudapi.cn/{tenant}/`` for China; other hosts count as the global service),
meant for this API (audience = client id or ``api://`` URI), current (``exp``/``nbf``/``iat`` with 60 s
leeway) and from this tenant (``tid``). Each endpoint then states the caller kinds it accepts
(``application`` for app-only tokens, recognised positively by ``idtyp`` or ``oid == sub``; ``user`` for
delegated ones, which carry ``scp``; any other token is a 401) and the app role it
requires, e.g. ``Users.Read.All``. A missing or invalid token is a 401; a wrong kind or a missing role a 403.

The tenant's signing keys are fetched and cached by :class:`shared.identity.signing_keys.SigningKeys`. PyJWT
is imported on first use.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from shared.core.errors import Unauthenticated
from shared.identity.access import Access, require
from shared.identity.principal import CallerKind, Principal
from shared.identity.signing_keys import ALGORITHM, SigningKeys

logger = logging.getLogger(__name__)

LEEWAY_SECONDS = 60
MAX_TOKEN_LENGTH = 16 * 1024
_JWS = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class TokenValidator(Protocol):
    """Turns a bearer token into the :class:`Principal` it names, or raises 401/503 errors."""

    def validate(self, token: str) -> Principal: ...


class CallerAuthenticator:
    """Validates bearer tokens issued by the tenant for this API (see module docstring)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        audiences: Collection[str],
        keys: SigningKeys,
        leeway: int = LEEWAY_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._tenant = tenant_id
        self._audiences = list(audiences)
        self._keys = keys
        self._leeway = leeway
        self._now = now

    def authenticate(
        self, headers: Mapping[str, str], *, required_role: str, kinds: Collection[CallerKind]
    ) -> Principal:
        """The validated caller of ``headers``' bearer token, of one of ``kinds``, holding
        ``required_role``: :meth:`validate` then :func:`shared.identity.access.require`.

        Raises:
            Unauthenticated: no token, or a token that fails any check (401, ``WWW-Authenticate``).
            Forbidden: a valid token of a kind the endpoint does not accept (403
                ``caller_kind_not_allowed``), or without ``required_role`` (403 ``forbidden``).
            CredentialUnavailable: the tenant's signing keys cannot be fetched (503).
        """
        principal = self.validate(bearer_token(headers))
        return require(principal, Access(kinds=frozenset(kinds), app_role=required_role))

    def validate(self, token: str) -> Principal:
        """Validate ``token`` (signature, issuer, audience, lifetime, tenant) and describe its caller.

        Raises:
            Unauthenticated: the token fails any check (401).
            CredentialUnavailable: the tenant's signing keys cannot be fetched (503).
        """
        return self.caller_of(self.verified_claims(token))

    def caller_of(self, claims: Mapping[str, Any]) -> Principal:
        """The caller named by ``claims`` that :meth:`verified_claims` returned (tenant, client and kind
        checked here). Raises Unauthenticated (401) as :meth:`validate`."""
        return self._caller(claims)

    def verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` once its signature, issuer, audience and lifetime are verified (the
        caller's kind and tenant are not checked yet: :meth:`caller_of`). Raises as :meth:`validate`."""
        import jwt  # noqa: PLC0415 - jwt is heavy: imported on first use (cold start)

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
                issuer=self._issuers(token),
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
        return claims

    def _issuers(self, token: str) -> list[str]:
        """The issuers ``token`` may carry (this tenant's; a multi-tenant validator derives them from the
        token's ``tid``: :mod:`shared.identity.multi_bearer`)."""
        return list(self._keys.issuers())

    def _tenant_of(self, claims: Mapping[str, Any]) -> str:
        """The caller's tenant from validated ``claims``: this one, anything else is a 401."""
        if claims.get("tid") != self._tenant:
            raise Unauthenticated("The bearer token was issued for another tenant")
        return self._tenant

    def _caller(self, claims: Mapping[str, Any]) -> Principal:
        tenant_id = self._tenant_of(claims)
        app_id = claims.get("azp") or claims.get("appid")
        if not isinstance(app_id, str) or not app_id:
            raise Unauthenticated("The bearer token does not identify the calling application")
        roles = claims.get("roles") or []
        scopes = claims.get("scp") or ""
        if not isinstance(roles, list) or not isinstance(scopes, str):
            raise Unauthenticated("The bearer token has malformed roles or scopes")
        oid = claims.get("oid")
        kind = _kind(claims, scopes)
        upn = (claims.get("preferred_username") or claims.get("upn")) if kind == "user" else None
        return Principal(
            kind=kind,
            app_id=app_id,
            object_id=oid if isinstance(oid, str) else None,
            tenant_id=tenant_id,
            roles=frozenset(role for role in roles if isinstance(role, str)),
            scopes=frozenset(scopes.split()),
            user_principal_name=upn if isinstance(upn, str) else None,
        )


def _kind(claims: Mapping[str, Any], scopes: str) -> CallerKind:
    """``application`` or ``user``, each recognised positively; anything else is a 401.

    A delegated token carries ``scp``. An app-only token is recognised by ``idtyp == "app"`` where the
    token has the claim (the optional claim Entra adds when the API's registration asks for it: "the most
    accurate way for an API to determine if a token is an app token or an app+user token", optional claims
    reference), else by ``oid == sub`` with no ``scp`` (in an app-only token both name the client's service
    principal; in a user's token ``sub`` is pairwise, never the user's ``oid``). A user's token without
    ``scp`` (it may still carry the user's app ``roles``) is therefore neither: it must not pass as the
    application holding those roles.
    """
    idtyp = claims.get("idtyp")
    if idtyp is not None and idtyp not in ("app", "user"):
        raise Unauthenticated("The bearer token has an unknown token type (idtyp)")
    if scopes:
        if idtyp == "app":
            raise Unauthenticated("The bearer token is an app-only token (idtyp) but carries scopes (scp)")
        return "user"
    oid, sub = claims.get("oid"), claims.get("sub")
    if idtyp == "app" or (idtyp is None and isinstance(oid, str) and oid and oid == sub):
        return "application"
    raise Unauthenticated(
        "The bearer token is neither an app-only token (idtyp 'app', or oid equal to sub) nor a delegated "
        "token with scopes (scp)"
    )


def has_authorization(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` carry a non-blank ``Authorization`` (a bearer token then decides alone)."""
    value = headers.get("authorization")
    return value is not None and bool(value.strip())


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization") or headers.get("Authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value or not value.strip():
        raise Unauthenticated("A bearer token is required", token_present=False)
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_LENGTH or not re.fullmatch(_JWS, token):
        raise Unauthenticated("The bearer token is not a well-formed JWT")
    return token
