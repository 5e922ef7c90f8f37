"""Token-signing keys: RSA 2048, published as a JWKS, persisted in the state dir, rotatable.

Entra publishes several keys at once; tokens name theirs with ``kid`` (and ``x5t`` in v1 tokens).
Rotation makes a new key current and keeps the previous ones published unless asked to retire them,
exactly the situation a resource server meets when it sees an unknown ``kid`` and must refetch the JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator.pki.x509 import self_signed_rsa


def b64url(data: bytes, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode("ascii")
    return text if pad else text.rstrip("=")


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    cert_der: bytes

    @property
    def x5t(self) -> str:
        return b64url(hashlib.sha1(self.cert_der).digest())  # noqa: S324 - x5t is defined as SHA-1

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _int_b64(numbers.n),
            "e": _int_b64(numbers.e),
            "x5c": [base64.b64encode(self.cert_der).decode("ascii")],
            "issuer": issuer,
        }


def _new_key() -> SigningKey:
    key, cert = self_signed_rsa("accounts.local-tenant", days=1825)
    der = cert.public_bytes(serialization.Encoding.DER)
    # Entra's kid equals the x5t of the key's certificate.
    kid = b64url(hashlib.sha1(der).digest())  # noqa: S324
    return SigningKey(kid=kid, private_key=key, cert_der=der)


@lru_cache(maxsize=64)  # loading and checking an RSA key costs ~60 ms; rings are reloaded from disk often
def _load_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("a signing key must be RSA")
    return key


class KeyRing:
    """The published signing keys; the first is current. Thread-safe; persisted on every change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        if path.exists():
            for item in json.loads(path.read_text()):
                self._keys.append(
                    SigningKey(
                        kid=item["kid"],
                        private_key=_load_key(item["key"].encode()),
                        cert_der=base64.b64decode(item["cert"]),
                    )
                )
        if not self._keys:
            self._keys = [_new_key()]
            self._save()

    def _save(self) -> None:
        data = [
            {
                "kid": k.kid,
                "key": k.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "cert": base64.b64encode(k.cert_der).decode(),
            }
            for k in self._keys
        ]
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self._path)

    @property
    def current(self) -> SigningKey:
        return self._keys[0]

    def find(self, kid: str) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    def jwks(self, issuer: str) -> dict[str, Any]:
        return {"keys": [k.jwk(issuer) for k in self._keys]}

    def rotate(self, retire_previous: bool = False, keep: int = 3) -> SigningKey:
        """Make a new key current. ``retire_previous`` unpublishes all older keys at once."""
        new = _new_key()
        with self._lock:
            self._keys = [new] if retire_previous else [new, *self._keys][:keep]
            self._save()
        return new
