"""The Graph Functions app's own certificate (generated once per state dir) and its vault encodings."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from emulator.pki.x509 import pkcs8_pem, self_signed_rsa


@dataclass(frozen=True)
class AppCertificate:
    key_pem: bytes  # PKCS8, unencrypted
    cert_pem: bytes
    cert: x509.Certificate
    pfx: str  # base64 PKCS#12 of the two, made once from the loaded key (loading one again costs ~60 ms)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def sha1(self) -> bytes:
        return hashlib.sha1(self.der).digest()  # noqa: S324 - certificate thumbprints are SHA-1 by definition

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    def pfx_base64(self) -> str:
        """Base64 PKCS#12 with an empty password, as Key Vault returns a certificate-backed secret."""
        return self.pfx

    def pem_bundle(self) -> str:
        """PEM private key + certificate, as Key Vault returns an ``application/x-pem-file`` secret."""
        return (self.key_pem + self.cert_pem).decode("ascii")


def _pfx_base64(key: Any, cert: x509.Certificate) -> str:
    data = pkcs12.serialize_key_and_certificates(
        b"graph-functions", key, cert, None, serialization.NoEncryption()
    )  # type: ignore[arg-type]
    return base64.b64encode(data).decode("ascii")


def load_or_create(path: Path, common_name: str = "graph-functions") -> AppCertificate:
    if path.exists():
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, None)
        cert = x509.load_pem_x509_certificate(data)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return AppCertificate(
            key_pem, cert.public_bytes(serialization.Encoding.PEM), cert, _pfx_base64(key, cert)
        )
    key, cert = self_signed_rsa(common_name, days=365)
    key_pem = pkcs8_pem(key)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem + cert_pem)
    return AppCertificate(key_pem, cert_pem, cert, _pfx_base64(key, cert))
