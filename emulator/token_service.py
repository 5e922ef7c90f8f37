"""Minting and validating the tenant's JWTs.

Access tokens for Graph, SharePoint, Key Vault and storage have the v1 shape (``iss`` =
``https://sts.windows.net/{tid}/``, ``appid``, ``appidacr``, ``ver`` 1.0); tokens for an app whose
``accessTokenAcceptedVersion`` is 2 (Graph Functions' own API) have the v2 shape (``aud`` = client id,
``azp``, ``iss`` = ``{authority}/{tid}/v2.0``). Every token is RS256, signed by the current JWKS key.

Microsoft Graph's access tokens have the cloud's proprietary shape: a ``nonce`` in the JWT header and a
signature computed over the header with that nonce replaced by its SHA-256 (base64url). Nobody but Graph
can verify them against the JWKS, as in the cloud; :meth:`TokenService.validate` verifies them only when the
caller (the emulated Graph) passes ``graph_nonce=True``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from emulator.clock import CLOCK
from emulator.config import GRAPH_APP_ID, EmulatorConfig
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _compact(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def hashed_nonce(nonce: str) -> str:
    """The value the Graph token's signature covers in place of its header ``nonce``."""
    return _b64(hashlib.sha256(nonce.encode()).digest())


#: Resources that evaluate Continuous Access Evaluation and ask for the ``xms_cc`` optional claim.
CAE_RESOURCES = frozenset({GRAPH_APP_ID})


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

    def sign_graph(self, claims: dict[str, Any]) -> str:
        """A Graph access token: header ``{"typ", "nonce", "alg", "x5t", "kid"}`` (the order of real ones),
        signed over the header carrying SHA-256(nonce) instead of the nonce."""
        key = self.keys.current
        nonce = _b64(secrets.token_bytes(48))
        header = {"typ": "JWT", "nonce": nonce, "alg": "RS256", "x5t": key.x5t, "kid": key.kid}
        payload = _b64(_compact(claims))
        signed_header = _b64(_compact({**header, "nonce": hashed_nonce(nonce)}))
        signature = key.private_key.sign(
            f"{signed_header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{_b64(_compact(header))}.{payload}.{_b64(signature)}"

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
        capabilities: Iterable[str] = (),
        not_before: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> MintedToken:
        """Mint an access token for ``resource``; app-only when ``user`` is None.

        ``capabilities`` are the client's declared ones (``xms_cc`` of the claims request): a CAE resource
        gets ``xms_cc`` in the token. ``not_before`` (a claims request's ``nbf``) moves ``iat``/``nbf`` up to
        that time; a CAE token is never dated before the user's last critical event (it would be refused).
        """
        now = int(CLOCK.time())
        # xms_cc goes to CAE resources and to APIs asking for the optional claim (optional claims reference).
        wants_cc = resource.app_id in CAE_RESOURCES or "xms_cc" in resource.optional_claims.get(
            "accessToken", ()
        )
        cae = sorted({c.lower() for c in capabilities} & {"cp1"}) if wants_cc else []
        if user is not None and cae:
            now = max(now, math.ceil(user.cae_event_at))
        if not_before is not None:
            now = max(now, not_before)
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
            if v2 and "idtyp" in resource.optional_claims.get("accessToken", ()):
                # The optional claim is "only in app-only access tokens" (optional claims reference).
                claims["idtyp"] = "app"
        else:
            claims.update(self._user_access_claims(user, client, v2))
        if scope_list:
            claims["scp"] = " ".join(scope_list)
        if role_list:
            claims["roles"] = role_list
        if cae:
            claims["xms_cc"] = cae
        if extra:
            claims.update(extra)
        if resource.app_id == GRAPH_APP_ID:
            return MintedToken(self.sign_graph(claims), life, claims)
        return MintedToken(self.sign(claims, x5t=not v2), life, claims)

    def _user_access_claims(self, user: User, client: Application, v2: bool) -> dict[str, Any]:
        """The user part of a delegated access token. A B2B guest (access-token claims reference; "Understand
        user tokens in B2B collaboration") has no ``upn``: ``unique_name`` and ``email`` are their own
        address and ``idp`` their home tenant's issuer."""
        claims: dict[str, Any] = {
            "oid": user.id,
            "sub": _pairwise(user.id, client.app_id),
            "name": user.display_name,
        }
        home = user.home_tenant_id
        if home is not None:
            claims["idp"] = f"https://sts.windows.net/{home}/"
        sign_in_name = user.mail if home is not None and user.mail else user.user_principal_name
        if v2:
            claims["preferred_username"] = sign_in_name
            return claims
        claims.update({"unique_name": sign_in_name, "amr": ["pwd"], "acr": "1"})
        if home is None:
            claims.update(
                {"upn": user.user_principal_name, "given_name": user.given_name, "family_name": user.surname}
            )
        else:
            claims["email"] = user.mail
        return claims

    def id_token(
        self,
        *,
        client_id: str,
        user: User,
        nonce: str | None,
        roles: Iterable[str] = (),
        scopes: Iterable[str] = ("openid", "profile"),
        optional: Iterable[str] = (),
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A v2 id_token with the claims of the ID-token claims reference: ``name``,
        ``preferred_username`` and ``oid`` only with the ``profile`` scope; ``email`` for guests with an
        address, otherwise only with the ``email`` scope or optional claim; ``idp``: a guest's home tenant.
        """
        now = int(CLOCK.time())
        granted = set(scopes)
        home = user.home_tenant_id
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self.issuer_v2,
            "iat": now,
            "nbf": now,
            "exp": now + self.config.lifetimes.id_token,
            "ver": "2.0",
            "tid": self.tenant_id,
            "sub": _pairwise(user.id, client_id),
            "uti": _uti(),
            "rh": "0.local-tenant.",
            "aio": _uti(),
            "sid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{user.id}:{client_id}")),
        }
        if "profile" in granted:
            claims["oid"] = user.id
            claims["name"] = user.display_name
            claims["preferred_username"] = (
                user.mail if home is not None and user.mail else user.user_principal_name
            )
        if home is not None:
            claims["idp"] = f"https://sts.windows.net/{home}/"
        if user.mail and (home is not None or "email" in granted or "email" in set(optional)):
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
        self,
        token: str,
        audiences: Iterable[str],
        *,
        issuers: Iterable[str] | None = None,
        graph_nonce: bool = False,
    ) -> dict[str, Any]:
        """Validate signature, lifetime, audience and issuer; return the claims or raise TokenRejected.

        ``graph_nonce``: the caller is Microsoft Graph, which alone knows how to verify its tokens' nonce
        signature; everywhere else a header ``nonce`` makes the signature fail, as it does for third parties.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed", "IDX14100: JWT is not well formed.") from exc
        if graph_nonce and isinstance(header.get("nonce"), str):
            token = _with_hashed_nonce(token)
        if header.get("alg") != "RS256":
            raise TokenRejected("bad_signature", "Signature algorithm is not supported.")
        key = self.keys.find(str(header.get("kid", "")))
        if key is None:
            raise TokenRejected("unknown_key", "Signing key not found for the token's kid.")
        wanted_issuers = list(issuers) if issuers is not None else [self.issuer_v1, self.issuer_v2]
        wanted = {a.rstrip("/").lower() for a in audiences}
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=["RS256"],
                # Lifetimes are checked below on the tenant's clock (PyJWT reads the real one).
                options={
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iat"],
                },
            )
            _check_times(claims, CLOCK.time(), self.clock_skew)
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("expired", "Lifetime validation failed, the token is expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected(
                "not_yet_valid", "Lifetime validation failed, the token is not yet valid."
            ) from exc
        except jwt.InvalidSignatureError as exc:
            # A token for another resource is reported by its audience even when its signature does not
            # verify here: a real Graph token (signed over its header nonce) gets the vault's AKV10022 and
            # SharePoint's 3000003, not a signature error [INFERRED order, see docs].
            if not _audience_in(_unverified_claims(token).get("aud"), wanted):
                raise TokenRejected("wrong_audience", "Invalid audience.") from exc
            raise TokenRejected("bad_signature", "Signature validation failed.") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed", f"Token validation failed: {type(exc).__name__}.") from exc
        if not _audience_in(claims.get("aud"), wanted):
            raise TokenRejected("wrong_audience", "Invalid audience.")
        if claims.get("iss") not in wanted_issuers or claims.get("tid") != self.tenant_id:
            raise TokenRejected("wrong_issuer", "Invalid issuer.")
        return claims


def _check_times(claims: dict[str, Any], now: float, leeway: float) -> None:
    """PyJWT's own ``iat``/``nbf``/``exp`` rules and errors (same order, same messages), at ``now``.

    Raises:
        jwt.InvalidIssuedAtError, jwt.DecodeError: a time claim is not a number.
        jwt.ImmatureSignatureError: ``iat`` or ``nbf`` is later than ``now + leeway``.
        jwt.ExpiredSignatureError: ``exp`` is at or before ``now - leeway``.
    """

    def number(name: str, error: type[jwt.PyJWTError], what: str) -> int:
        try:
            return int(claims[name])
        except (ValueError, TypeError, OverflowError):
            raise error(f"{what} claim ({name}) must be an integer.") from None

    if "iat" in claims and number("iat", jwt.InvalidIssuedAtError, "Issued At") > now + leeway:
        raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")
    if "nbf" in claims and number("nbf", jwt.DecodeError, "Not Before") > now + leeway:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    if "exp" in claims and number("exp", jwt.DecodeError, "Expiration Time") <= now - leeway:
        raise jwt.ExpiredSignatureError("Signature has expired")


def _audience_in(aud: object, wanted: set[str]) -> bool:
    return isinstance(aud, str) and aud.rstrip("/").lower() in wanted


def _unverified_claims(token: str) -> dict[str, Any]:
    """The claims read without verification (only to word a rejection); {} when unreadable."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _with_hashed_nonce(token: str) -> str:
    """The token as its signature covers it: the header's nonce replaced by its SHA-256."""
    head, _, rest = token.partition(".")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError as exc:
        raise TokenRejected("malformed", "IDX14100: JWT is not well formed.") from exc
    header["nonce"] = hashed_nonce(str(header["nonce"]))
    return f"{_b64(_compact(header))}.{rest}"


def _pairwise(user_id: str, client_id: str) -> str:
    """``sub`` is pairwise per application in Entra: stable for a user and app, different across apps."""
    import hashlib

    digest = hashlib.sha256(f"{user_id}:{client_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")
