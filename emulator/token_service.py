"""Minting and validating the tenant's JWTs.

Access tokens for Graph, SharePoint, Key Vault and storage have the v1 shape (``iss`` =
``https://sts.windows.net/{tid}/``, ``appid``, ``appidacr``, ``ver`` 1.0); tokens for an app whose
``accessTokenAcceptedVersion`` is 2 (Graph Functions' own API) have the v2 shape (``aud`` = client id,
``azp``, ``iss`` = ``{authority}/{tid}/v2.0``). Every token is RS256, signed by the current JWKS key.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from emulator.config import EmulatorConfig
from emulator.directory.model import Application, Directory, User
from emulator.pki.signing_keys import KeyRing


class TokenRejected(Exception):
    """A presented token is not acceptable. ``reason`` is a stable word used by the services."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        # malformed | bad_signature | unknown_key | expired | not_yet_valid | wrong_audience | wrong_issuer
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_in: int
    claims: dict[str, Any]


def _uti() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


class TokenService:
    def __init__(self, config: EmulatorConfig, directory: Directory, keys: KeyRing) -> None:
        self.config = config
        self.directory = directory
        self.keys = keys
        #: Tolerated clock skew when validating, as Entra-protected services do (about five minutes).
        self.clock_skew = 300
        #: Optional override of the access-token lifetime (control API) for refresh tests.
        self.access_lifetime: int | None = None

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    @property
    def issuer_v1(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def issuer_v2(self) -> str:
        return f"{self.config.authority_host}/{self.tenant_id}/v2.0"

    # ---------------------------------------------------------------------------------- minting
    def sign(self, claims: dict[str, Any], *, x5t: bool = False, typ: str = "JWT") -> str:
        key = self.keys.current
        headers: dict[str, Any] = {"typ": typ, "kid": key.kid}
        if x5t:
            headers["x5t"] = key.x5t
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)

    def access_token(
        self,
        *,
        resource: Application,
        audience: str,
        client: Application,
        user: User | None = None,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        appidacr: str = "1",
        lifetime: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> MintedToken:
        """Mint an access token for ``resource``; app-only when ``user`` is None."""
        now = int(time.time())
        life = lifetime or self.access_lifetime or self.config.lifetimes.access_token
        scope_list = sorted(set(scopes))
        role_list = sorted(set(roles))
        claims: dict[str, Any] = {
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + life,
            "tid": self.tenant_id,
            "uti": _uti(),
            "rh": "0.local-tenant.",
            "aio": _uti(),
        }
        v2 = resource.access_token_version == 2
        if v2:
            claims.update({"iss": self.issuer_v2, "ver": "2.0", "azp": client.app_id, "azpacr": appidacr})
        else:
            claims.update(
                {
                    "iss": self.issuer_v1,
                    "ver": "1.0",
                    "appid": client.app_id,
                    "appidacr": appidacr,
                    "app_displayname": client.display_name,
                    "idp": self.issuer_v1,
                    "idtyp": "user" if user else "app",
                    "tenant_region_scope": "EU",
                }
            )
        if user is None:
            claims.update({"oid": client.sp_id, "sub": client.sp_id})
        else:
            claims.update(
                {
                    "oid": user.id,
                    "sub": _pairwise(user.id, client.app_id),
                    "name": user.display_name,
                }
            )
            if v2:
                claims["preferred_username"] = user.user_principal_name
            else:
                claims.update(
                    {
                        "upn": user.user_principal_name,
                        "unique_name": user.user_principal_name,
                        "given_name": user.given_name,
                        "family_name": user.surname,
                        "amr": ["pwd"],
                        "acr": "1",
                    }
                )
        if scope_list:
            claims["scp"] = " ".join(scope_list)
        if role_list:
            claims["roles"] = role_list
        if extra:
            claims.update(extra)
        return MintedToken(self.sign(claims, x5t=not v2), life, claims)

    def id_token(
        self,
        *,
        client_id: str,
        user: User,
        nonce: str | None,
        roles: Iterable[str] = (),
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self.issuer_v2,
            "iat": now,
            "nbf": now,
            "exp": now + self.config.lifetimes.id_token,
            "ver": "2.0",
            "tid": self.tenant_id,
            "oid": user.id,
            "sub": _pairwise(user.id, client_id),
            "name": user.display_name,
            "preferred_username": user.user_principal_name,
            "uti": _uti(),
            "rh": "0.local-tenant.",
            "aio": _uti(),
            "sid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{user.id}:{client_id}")),
        }
        if user.mail:
            claims["email"] = user.mail
        if nonce is not None:
            claims["nonce"] = nonce
        role_list = sorted(set(roles))
        if role_list:
            claims["roles"] = role_list
        if extra:
            claims.update(extra)
        return self.sign(claims)

    def client_info(self, user: User) -> str:
        import json

        raw = json.dumps({"uid": user.id, "utid": self.tenant_id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    # ------------------------------------------------------------------------------- validation
    def validate(
        self, token: str, audiences: Iterable[str], *, issuers: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Validate signature, lifetime, audience and issuer; return the claims or raise TokenRejected."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed", "IDX14100: JWT is not well formed.") from exc
        if header.get("alg") != "RS256":
            raise TokenRejected("bad_signature", "Signature algorithm is not supported.")
        key = self.keys.find(str(header.get("kid", "")))
        if key is None:
            raise TokenRejected("unknown_key", "Signing key not found for the token's kid.")
        wanted_issuers = list(issuers) if issuers is not None else [self.issuer_v1, self.issuer_v2]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp", "iat"]},
                leeway=self.clock_skew,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("expired", "Lifetime validation failed, the token is expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected(
                "not_yet_valid", "Lifetime validation failed, the token is not yet valid."
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("bad_signature", "Signature validation failed.") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed", f"Token validation failed: {type(exc).__name__}.") from exc
        aud = claims.get("aud")
        wanted = {a.rstrip("/").lower() for a in audiences}
        if not isinstance(aud, str) or aud.rstrip("/").lower() not in wanted:
            raise TokenRejected("wrong_audience", "Invalid audience.")
        if claims.get("iss") not in wanted_issuers or claims.get("tid") != self.tenant_id:
            raise TokenRejected("wrong_issuer", "Invalid issuer.")
        return claims


def _pairwise(user_id: str, client_id: str) -> str:
    """``sub`` is pairwise per application in Entra: stable for a user and app, different across apps."""
    import hashlib

    digest = hashlib.sha256(f"{user_id}:{client_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")
