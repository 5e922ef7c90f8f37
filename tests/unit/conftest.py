"""Shared fixtures for unit tests: valid settings, RSA keys and a signed-token factory."""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.app import services as runtime
from shared.core.settings import Settings

TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
CALLER_APP = "33333333-3333-3333-3333-333333333333"
AUTHORITY_HOST = "https://127.0.0.1:8443"
GRAPH = "https://127.0.0.1:8444"

BASE_ENV: dict[str, str] = {
    "ENTRA_TENANT_ID": TENANT,
    "ENTRA_CLIENT_ID": CLIENT,
    "ENTRA_AUTHORITY_HOST": AUTHORITY_HOST,
    "KEY_VAULT_URL": "https://127.0.0.1:8445/",
    "ENTRA_CREDENTIAL_NAME": "app-credential",
    "GRAPH_ENDPOINT": GRAPH,
}


def make_settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **overrides})


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture(autouse=True)
def _isolated_runtime() -> Iterator[None]:
    """No test leaks a runtime into another."""
    previous = runtime.install(None)
    yield
    runtime.install(previous)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(
    key: rsa.RSAPrivateKey, *, days: int = 30, cn: str = "graph-functions-test"
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "use": "sig", "kid": kid, "n": b64(numbers.n), "e": b64(numbers.e)}


def pem_of(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


TokenFactory = Callable[..., str]


@pytest.fixture
def make_token(rsa_key: rsa.RSAPrivateKey) -> TokenFactory:
    """Mint a v2 app-only access token for this API; override any claim, header or the signing key."""

    def factory(
        *,
        key: Any = None,
        kid: str = "key-1",
        algorithm: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "aud": CLIENT,
            "iss": f"{AUTHORITY_HOST}/{TENANT}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": TENANT,
            "azp": CALLER_APP,
            "oid": str(uuid.uuid4()),
            "roles": ["Users.Read.All"],
            "ver": "2.0",
        }
        payload.update(claims)
        payload.setdefault("sub", payload["oid"])  # an app-only token: both name the service principal
        for name in drop:
            payload.pop(name, None)
        signing_key = key if key is not None else rsa_key  # the key object: PyJWT re-parses a PEM (~60 ms)
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})

    return factory
