"""Rich notifications: ``encryptedContent`` and ``validationTokens``, exactly as Microsoft documents them
(learn.microsoft.com/graph/change-notifications-with-resource-data; sources in docs/notifications.md).

* ``encryptedContent``: a fresh 32-byte symmetric key per item; ``data`` = base64 of AES-256-CBC with PKCS7
  padding, IV = the key's first 16 bytes; ``dataSignature`` = base64 HMAC-SHA256 keyed with that key over
  the ciphertext bytes; ``dataKey`` = base64 of the key wrapped with the subscriber's certificate, RSA-OAEP
  with SHA-1 and MGF1(SHA-1) (SHA-256 OAEP does not decrypt it); ``encryptionCertificateId`` echoed,
  ``encryptionCertificateThumbprint`` = upper-case hex SHA-1 of the certificate.
* ``validationTokens``: one v1 JWT per (app, tenant) pair in the POST, signed by the tenant's published keys
  (``{authority}/common/discovery/v2.0/keys``), ``aud`` = the subscribing app, ``iss`` =
  ``https://sts.windows.net/{tenant}/``, ``appid`` = Graph's change-notification publisher.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from emulator.clock import CLOCK
from emulator.graph.notify_store import NOTIFICATION_PUBLISHER_APP_ID
from emulator.token_service import TokenService

VALIDATION_TOKEN_LIFETIME = 3_600  # [INFERRED] seconds


def load_certificate(b64: str) -> x509.Certificate:
    """The subscriber's ``encryptionCertificate`` (base64 DER, or a PEM body without its markers).

    Raises:
        ValueError: not a certificate, or its key is not RSA 2,048 to 4,096 bits.
    """
    text = "".join(b64.split())
    try:
        der = base64.b64decode(text, validate=True)
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ValueError("not a base64-encoded X.509 certificate") from exc
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or not 2_048 <= key.key_size <= 4_096:
        raise ValueError("the certificate's key must be RSA of 2048 to 4096 bits")
    return cert


def thumbprint(cert: x509.Certificate) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - certificate thumbprints are SHA-1


def encrypt_content(resource: dict[str, Any], certificate_b64: str, certificate_id: str) -> dict[str, str]:
    """The ``encryptedContent`` of one notification item carrying ``resource`` (UTF-8 JSON)."""
    cert = load_certificate(certificate_b64)
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):  # load_certificate refused anything else
        raise ValueError("the certificate's key must be RSA")
    key = secrets.token_bytes(32)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(resource, ensure_ascii=False).encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    wrapped = public.encrypt(
        key,
        asym.OAEP(mgf=asym.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
    )
    return {
        "data": base64.b64encode(data).decode("ascii"),
        "dataSignature": base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode("ascii"),
        "dataKey": base64.b64encode(wrapped).decode("ascii"),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": thumbprint(cert),
    }


def validation_token(
    tokens: TokenService,
    app_id: str,
    tenant_id: str,
    overrides: dict[str, Any] | None = None,
    *,
    foreign: bool = False,
) -> str:
    """A validation token for the items of ``app_id`` in ``tenant_id`` (the documented claim set);
    ``overrides`` (the control API's, for tests) replace claims, a None value removing one; ``foreign``
    signs with a fresh key the tenant does not publish (same ``kid``: a forgery)."""
    now = int(CLOCK.time())
    issuer = f"https://sts.windows.net/{tenant_id}/"
    claims = {
        "aud": app_id,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + VALIDATION_TOKEN_LIFETIME,
        "aio": base64.b64encode(os.urandom(24)).decode("ascii"),
        "appid": NOTIFICATION_PUBLISHER_APP_ID,
        "appidacr": "2",
        "idp": issuer,
        "tid": tenant_id,
        "uti": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("="),
        "ver": "1.0",
    }
    for name, value in (overrides or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    if foreign:
        import jwt

        signed = tokens.sign(claims, x5t=True)
        header = jwt.get_unverified_header(signed)
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": header.get("kid")})
    return tokens.sign(claims, x5t=True)
