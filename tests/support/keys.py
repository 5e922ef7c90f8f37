"""Private keys the tests sign with, parsed once per process.

PyJWT parses a PEM key on every ``jwt.encode``, and cryptography validates an RSA key as it loads it:
about 60 ms of CPU per signature against 1 ms with the loaded key. The suite signs thousands of tokens
and client assertions, so each PEM is loaded once and the key object is what gets passed to PyJWT.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@lru_cache(maxsize=64)
def _load(pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    # The keys are the tests' own or the local tenant's: cryptography's RSA consistency check (most of the
    # 60 ms a load costs) guards against hostile key material, which none of them is.
    key = serialization.load_pem_private_key(pem, None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"the tests sign with RSA or EC keys, not {type(key).__name__}")
    return key


def private_key(pem: str | bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The key ``pem`` holds (unencrypted PKCS#1 or PKCS#8), the same object for the same PEM."""
    return _load(pem.encode() if isinstance(pem, str) else pem)
