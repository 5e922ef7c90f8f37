"""Client assertions: certificate-signed JWTs (RS256 + ``x5t``, PS256 + ``x5t#S256``, ``x5c``) and
federated credentials (a managed-identity token of this tenant, audience ``api://AzureADTokenExchange``)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Any

import jwt
from cryptography import x509

from emulator.clock import CLOCK
from emulator.directory.model import UTC, Application, ClientCertificate
from emulator.entra.context import EntraError, Tenant, fail, token_endpoint_audiences
from emulator.entra.store import get_store
from emulator.state import EmulatorState
from emulator.token_service import TokenRejected

CERT_DOC = (
    "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/"
    "active-directory-certificate-credentials ."
)
FIC_DOC = (
    "Check your federated identity credential Subject, Audience and Issuer against the presented assertion. "
    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
)


def _b64(value: Any, *, url: bool) -> bytes | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(text) if url else base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _stamp(epoch: float | None) -> str:
    if epoch is None:
        return "(none)"
    moment = dt.datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise fail(50027, "invalid_request", "JWT token is invalid or malformed.") from exc
    return header, claims


def _time_error(claims: dict[str, Any]) -> EntraError:
    now = CLOCK.time()
    start = _number(claims.get("nbf")) or _number(claims.get("iat"))
    return fail(
        700024,
        "invalid_client",
        f"Client assertion is not within its valid time range. Current time: {_stamp(now)}, assertion valid "
        f"from {_stamp(start)}, expiry time of assertion {_stamp(_number(claims.get('exp')))}. {CERT_DOC}",
        status=401,
    )


def _check_times(state: EmulatorState, claims: dict[str, Any]) -> None:
    now, skew = CLOCK.time(), state.tokens.clock_skew
    exp, nbf, iat = _number(claims.get("exp")), _number(claims.get("nbf")), _number(claims.get("iat"))
    if exp is None:
        raise fail(
            50027, "invalid_client", "Invalid JWT token. The client assertion has no 'exp' claim.", status=401
        )
    if exp + skew < now or (nbf is not None and nbf - skew > now) or (iat is not None and iat - skew > now):
        raise _time_error(claims)


def _find_certificate(app: Application, header: dict[str, Any]) -> tuple[ClientCertificate | None, str]:
    """The registered certificate the header names, and the SHA-1 thumbprint (hex) for messages."""
    sha1 = _b64(header.get("x5t"), url=True)
    sha256 = _b64(header.get("x5t#S256"), url=True)
    leaf: bytes | None = None
    x5c = header.get("x5c")
    if isinstance(x5c, list) and x5c:
        leaf = _b64(x5c[0], url=False)
    if leaf is not None:
        leaf_sha1 = hashlib.sha1(leaf).digest()  # noqa: S324 - certificate thumbprint
        leaf_sha256 = hashlib.sha256(leaf).digest()
        if (sha1 is not None and sha1 != leaf_sha1) or (sha256 is not None and sha256 != leaf_sha256):
            return None, leaf_sha1.hex().upper()  # the header names one certificate and carries another
        sha1 = leaf_sha1
    shown = sha1.hex().upper() if sha1 else (sha256.hex().upper() if sha256 else "")
    for cert in app.certificates:
        if (sha1 is not None and cert.thumbprint_sha1 == sha1) or (
            sha256 is not None and cert.thumbprint_sha256 == sha256
        ):
            return cert, shown
    return None, shown


def verify_certificate_assertion(
    state: EmulatorState, tenant: Tenant, app: Application, assertion: str
) -> None:
    header, claims = _unverified(assertion)
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        raise fail(
            700027,
            "invalid_client",
            f"Client assertion failed signature validation. [Reason - The signature algorithm '{alg}' is not "
            f"supported; use RS256 or PS256.] {CERT_DOC}",
            status=401,
        )
    cert, shown = _find_certificate(app, header)
    keys_hint = (
        "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for "
        f"app Id '{app.app_id}'. Review the documentation at "
        "https://docs.microsoft.com/en-us/graph/deployments if you are not using the correct keys."
    )
    if cert is None:
        raise fail(
            700027,
            "invalid_client",
            "The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}', "
            f"{keys_hint}]",
            status=401,
        )
    now = CLOCK.now()
    if cert.end < now or cert.start > now:
        raise fail(
            700027,
            "invalid_client",
            "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint "
            f"of key used by client: '{shown}', {keys_hint}]",
            status=401,
        )
    public_key = x509.load_pem_x509_certificate(cert.cert_pem.encode()).public_key()
    try:
        jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=[str(alg)],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise fail(
            700027,
            "invalid_client",
            "Client assertion contains an invalid signature. [Reason - The key was found, but the signature "
            f"does not verify., Thumbprint of key used by client: '{shown}', {keys_hint}]",
            status=401,
        ) from exc
    except jwt.PyJWTError as exc:
        raise fail(50027, "invalid_request", "JWT token is invalid or malformed.") from exc
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str) or iss != sub:
        raise fail(
            50048, "invalid_client", "Subject mismatches Issuer claim in the client assertion.", status=401
        )
    if iss.lower() != app.app_id.lower():
        raise fail(
            700021,
            "invalid_client",
            f"Client assertion application identifier doesn't match 'client_id' parameter. {CERT_DOC}",
            status=401,
        )
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if not isinstance(aud, str) or aud.rstrip("/").lower() not in token_endpoint_audiences(state, tenant):
        raise fail(
            50027,
            "invalid_client",
            f"Invalid JWT token. The audience '{aud}' of the client assertion is not this token endpoint.",
            status=401,
        )
    _check_times(state, claims)
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        store = get_store(state)
        key = f"{app.app_id}:{jti}"
        if key in store.used_jti and store.settings.reject_assertion_replay:
            raise fail(
                50013,
                "invalid_client",
                f"Assertion is invalid: the client assertion with jti '{jti}' was already presented "
                "(replay).",
                status=401,
            )
        store.maybe_sweep()
        store.used_jti[key] = (_number(claims.get("exp")) or CLOCK.time()) + state.tokens.clock_skew


def is_federated(app: Application, assertion: str) -> bool:
    """An assertion whose issuer is an URL rather than the client id is a federated credential."""
    _, claims = _unverified(assertion)
    iss = claims.get("iss")
    return isinstance(iss, str) and iss.lower() != app.app_id.lower() and "://" in iss


def _audience_forms(state: EmulatorState, audiences: tuple[str, ...]) -> set[str]:
    """A credential's audiences and the app ids they name: Entra issues tokens for
    ``api://AzureADTokenExchange`` with ``aud`` = that resource's app id (v2)."""
    forms = set(audiences)
    for audience in audiences:
        resource = state.directory.resource_for(audience)
        if resource is not None:
            forms.add(resource.app_id)
    return forms


def verify_federated_assertion(state: EmulatorState, app: Application, assertion: str) -> None:
    _, unverified = _unverified(assertion)
    iss = str(unverified.get("iss"))
    # Matching is case-sensitive, as Entra's now is.
    candidates = [fc for fc in app.federated_credentials if fc.issuer == iss]
    if not candidates:
        raise fail(
            700211,
            "invalid_client",
            f"No matching federated identity record found for presented assertion issuer '{iss}'. {FIC_DOC}",
            status=401,
        )
    audiences = sorted({a for fc in candidates for a in _audience_forms(state, fc.audiences)})
    try:
        # The home tenant's token service: one managed identity's token serves every organisation.
        claims = state.home.tokens.validate(assertion, audiences, issuers=[iss])
    except TokenRejected as exc:
        if exc.reason == "wrong_audience":
            raise fail(
                700212,
                "invalid_client",
                "No matching federated identity record found for presented assertion audience "
                f"'{unverified.get('aud')}'. {FIC_DOC}",
                status=401,
            ) from exc
        if exc.reason in ("expired", "not_yet_valid"):
            raise _time_error(unverified) from exc
        if exc.reason == "wrong_issuer":
            raise fail(
                700211,
                "invalid_client",
                f"No matching federated identity record found for presented assertion issuer '{iss}'. "
                f"{FIC_DOC}",
                status=401,
            ) from exc
        if exc.reason == "malformed":
            raise fail(50027, "invalid_request", "JWT token is invalid or malformed.") from exc
        raise fail(
            700027,
            "invalid_client",
            f"Client assertion failed signature validation. [Reason - {exc.message}]",
            status=401,
        ) from exc
    sub, aud = claims.get("sub"), claims.get("aud")
    aud_l = str(aud).rstrip("/").lower()

    def accepts(audiences: tuple[str, ...]) -> bool:
        return aud_l in {a.rstrip("/").lower() for a in _audience_forms(state, audiences)}

    if not any(fc.subject == sub and accepts(fc.audiences) for fc in candidates):
        raise fail(
            700213,
            "invalid_client",
            f"No matching federated identity record found for presented assertion subject '{sub}'. {FIC_DOC}",
            status=401,
        )
    if "scp" in claims or claims.get("idtyp") == "user":
        raise fail(
            700229,
            "invalid_client",
            "Only app-only tokens can be used as Federated Identity Credentials for Microsoft Entra issuer. "
            "Use an app-only access token (generated during a client credentials flow) instead of a "
            "user-delegated access token.",
            status=401,
        )
