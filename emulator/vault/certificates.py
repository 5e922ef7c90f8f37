"""The X.509 certificate inside a certificate-backed secret's value, for the attributes it implies.

Key Vault mirrors a certificate's attributes to its addressable secret, and a certificate's ``nbf`` and
``exp`` are the X.509 "not before" and expiration dates ("About Azure Key Vault certificates",
https://learn.microsoft.com/azure/key-vault/certificates/about-certificates#attributes).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

PFX = "application/x-pkcs12"
PEM = "application/x-pem-file"


def _from_pfx(value: str) -> x509.Certificate | None:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    for password in (None, b""):  # Key Vault exports with an empty password
        try:
            _key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            continue
        if cert is not None:
            return cert
    return None


def _from_pem(value: str) -> x509.Certificate | None:
    try:
        chain = x509.load_pem_x509_certificates(value.encode("utf-8"))
    except ValueError:
        return None
    return chain[0] if chain else None  # the leaf comes first, as Key Vault writes it


def certificate_validity(value: str, content_type: str | None) -> tuple[dt.datetime, dt.datetime]:
    """``(not_before, not_after)`` (UTC) of the certificate in ``value`` (base64 PFX or PEM, per
    ``content_type``; both are tried when it is unset). Raises ValueError when there is none."""
    readers = {PFX: (_from_pfx,), PEM: (_from_pem,)}.get(content_type or "", (_from_pfx, _from_pem))
    for read in readers:
        cert = read(value)
        if cert is not None:
            return cert.not_valid_before_utc, cert.not_valid_after_utc
    raise ValueError(
        "a certificate-backed secret's value must hold an X.509 certificate "
        f"(base64 PKCS#12 for {PFX}, PEM for {PEM})"
    )
