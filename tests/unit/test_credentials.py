from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceRequestError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.core.errors import ConfigurationError, CredentialUnavailable
from shared.identity.credentials import (
    TOKEN_EXCHANGE_SCOPE,
    KeyVaultCredentialSource,
    ManagedIdentityAssertionSource,
    azure_credential_options,
    build_credential_source,
    credential_from_secret,
    is_loopback_host,
    secret_client_options,
)

from .azure_fakes import vault_error
from .conftest import make_settings, pem_of, self_signed


def pfx_b64(
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    password: bytes | None = None,
    extra: list[x509.Certificate] | None = None,
) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    blob = pkcs12.serialize_key_and_certificates(b"app", key, cert, extra, encryption)
    return base64.b64encode(blob).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "text/plain; charset=utf-8", "TEXT/PLAIN"])
def test_client_secret_kinds(content_type: str | None) -> None:
    credential = credential_from_secret("s3cr3t-value", content_type, version="v1")
    assert credential.kind == "secret"
    assert credential.msal_credential == "s3cr3t-value"
    assert credential.version == "v1"


def test_secret_material_is_never_in_repr_or_description() -> None:
    credential = credential_from_secret("s3cr3t-value", None)
    assert "s3cr3t" not in repr(credential)
    assert "s3cr3t" not in credential.describe()
    assert "12 chars" in credential.describe()


def test_pfx_becomes_msal_certificate_dict(rsa_key: rsa.RSAPrivateKey) -> None:
    cert = self_signed(rsa_key)
    credential = credential_from_secret(pfx_b64(rsa_key, cert), "application/x-pkcs12", version="v7")
    assert credential.kind == "certificate"
    value: dict[str, str] = credential.msal_credential  # type: ignore[assignment]
    assert set(value) == {"private_key", "thumbprint", "public_certificate"}
    assert value["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303
    assert credential.thumbprint == value["thumbprint"]
    assert value["private_key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert x509.load_pem_x509_certificates(value["public_certificate"].encode())[0] == cert
    assert value["thumbprint"] in credential.describe()
    assert "PRIVATE" not in repr(credential)


def test_pfx_with_chain_sends_leaf_first(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    leaf, ca = self_signed(rsa_key, cn="leaf"), self_signed(other_rsa_key, cn="ca")
    value: Any = credential_from_secret(
        pfx_b64(rsa_key, leaf, extra=[ca]), "application/x-pkcs12"
    ).msal_credential
    certs = x509.load_pem_x509_certificates(value["public_certificate"].encode())
    assert certs == [leaf, ca]


def test_pfx_with_base64_line_breaks(rsa_key: rsa.RSAPrivateKey) -> None:
    blob = pfx_b64(rsa_key, self_signed(rsa_key))
    wrapped = "\n".join(blob[i : i + 64] for i in range(0, len(blob), 64))
    assert credential_from_secret(wrapped, "application/x-pkcs12").kind == "certificate"


def test_pem_key_and_certificate_in_any_order(rsa_key: rsa.RSAPrivateKey) -> None:
    cert = self_signed(rsa_key)
    key_pem = pem_of(rsa_key).decode()
    for text in (key_pem + cert_pem(cert), cert_pem(cert) + key_pem):
        credential = credential_from_secret(text, "application/x-pem-file")
        assert credential.kind == "certificate"
        assert credential.thumbprint == cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303


def test_unknown_content_type_is_actionable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        credential_from_secret("x", "application/json", what="secret 'c' in Key Vault https://kv/")
    message = caught.value.message
    assert "application/json" in message and "secret 'c'" in message and "application/x-pkcs12" in message


@pytest.mark.parametrize(
    ("value", "content_type", "fragment"),
    [
        ("not base64!!", "application/x-pkcs12", "not base64"),
        (base64.b64encode(b"garbage").decode(), "application/x-pkcs12", "PKCS#12"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "application/x-pem-file",
            "private key",
        ),
    ],
)
def test_unreadable_certificates(value: str, content_type: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        credential_from_secret(value, content_type)


def test_password_protected_pfx_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigurationError, match="without a password"):
        credential_from_secret(pfx_b64(rsa_key, self_signed(rsa_key), password=b"pw"), "application/x-pkcs12")


def test_key_must_match_certificate(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
    text = pem_of(rsa_key).decode() + cert_pem(self_signed(other_rsa_key))
    with pytest.raises(ConfigurationError, match="matches its private key"):
        credential_from_secret(text, "application/x-pem-file")


def test_ec_keys_are_rejected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ec")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode() + cert_pem(cert)
    with pytest.raises(ConfigurationError, match="RSA"):
        credential_from_secret(text, "application/x-pem-file")


def test_expiring_certificate_is_logged(rsa_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        credential_from_secret(pfx_b64(rsa_key, self_signed(rsa_key, days=3)), "application/x-pkcs12")
    assert "rotate it" in caplog.text


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("https://127.0.0.1:8445/", True),
        ("https://127.1.2.3/", True),
        ("https://[::1]:8445/", True),
        ("https://localhost:8445/", True),
        ("https://LOCALHOST/", True),
        ("https://kv.vault.azure.net/", False),
        ("https://localhost.evil.example/", False),
        ("https://10.0.0.1/", False),
    ],
)
def test_loopback_detection(url: str, loopback: bool) -> None:
    assert is_loopback_host(url) is loopback


# -- Key Vault source with a fake SecretClient ------------------------------------------------------------


@dataclasses.dataclass
class Properties:
    content_type: str | None
    version: str = "0123456789abcdef0123456789abcdef"


@dataclasses.dataclass
class Secret:
    value: str | None
    properties: Properties


class FakeSecretClient:
    def __init__(self, outcome: Secret | Exception) -> None:
        self.outcome = outcome
        self.names: list[str] = []

    def get_secret(self, name: str) -> Secret:
        self.names.append(name)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def vault_source(outcome: Secret | Exception) -> tuple[KeyVaultCredentialSource, FakeSecretClient]:
    client = FakeSecretClient(outcome)
    return KeyVaultCredentialSource(make_settings().vault, secret_client=client), client  # type: ignore[arg-type]


def test_vault_source_reads_the_named_secret(caplog: pytest.LogCaptureFixture) -> None:
    source, client = vault_source(Secret("the-secret-value", Properties(None)))
    with caplog.at_level(logging.DEBUG):
        credential = source.load()
    assert client.names == ["app-credential"]
    assert credential.kind == "secret" and credential.version == "0123456789abcdef0123456789abcdef"
    assert "the-secret-value" not in caplog.text


def test_vault_source_rejects_empty_secret() -> None:
    source, _ = vault_source(Secret("", Properties(None)))
    with pytest.raises(ConfigurationError, match="empty"):
        source.load()


def test_vault_source_maps_vault_errors() -> None:
    source, _ = vault_source(vault_error(404, "SecretNotFound"))
    with pytest.raises(ConfigurationError) as caught:
        source.load()
    assert "'app-credential'" in caught.value.message and "https://127.0.0.1:8445/" in caught.value.message
    source, _ = vault_source(ServiceRequestError("refused"))
    with pytest.raises(CredentialUnavailable):
        source.load()


def test_mode_selects_the_source() -> None:
    assert isinstance(build_credential_source(make_settings().vault), KeyVaultCredentialSource)
    mi = make_settings(ENTRA_CREDENTIAL="managed-identity")
    assert isinstance(build_credential_source(mi.vault), ManagedIdentityAssertionSource)


# -- managed identity (secretless) -------------------------------------------------------------------------


class FakeIdentity:
    def __init__(self, outcome: str | Exception) -> None:
        self.outcome = outcome
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return AccessToken(self.outcome, 2_000_000_000)


def test_managed_identity_assertion_is_a_callable_for_the_exchange_audience() -> None:
    identity = FakeIdentity("mi-assertion")
    source = ManagedIdentityAssertionSource(
        make_settings(ENTRA_CREDENTIAL="managed-identity").vault,
        identity=identity,
    )
    credential = source.load()
    assert credential.kind == "assertion"
    assert isinstance(credential.msal_credential, dict)
    assertion = credential.msal_credential["client_assertion"]
    assert identity.scopes == []  # nothing fetched until MSAL needs it
    assert assertion() == "mi-assertion"
    assert identity.scopes == [(TOKEN_EXCHANGE_SCOPE,)]
    assert TOKEN_EXCHANGE_SCOPE == "api://AzureADTokenExchange/.default"


def test_managed_identity_failure_is_typed() -> None:
    source = ManagedIdentityAssertionSource(
        make_settings().vault,
        identity=FakeIdentity(ServiceRequestError("down")),
    )
    credential = source.load().msal_credential
    assert isinstance(credential, dict)
    assertion = credential["client_assertion"]
    with pytest.raises(CredentialUnavailable):
        assertion()


def test_vault_client_skips_challenge_verification_only_for_loopback() -> None:
    local = secret_client_options(make_settings(KEY_VAULT_URL="https://127.0.0.1:8445/").vault)
    cloud = secret_client_options(make_settings(KEY_VAULT_URL="https://kv.vault.azure.net/").vault)
    assert local["verify_challenge_resource"] is False
    assert cloud["verify_challenge_resource"] is True
    assert local["retry_total"] == 2 and local["read_timeout"] == 10.0


def test_azure_credential_options() -> None:
    local = azure_credential_options(make_settings().vault)
    assert local == {"exclude_interactive_browser_credential": True, "disable_instance_discovery": True}
    cloud = azure_credential_options(
        make_settings(
            ENTRA_AUTHORITY_HOST="https://login.microsoftonline.com",
            ENTRA_MANAGED_IDENTITY_CLIENT_ID="44444444-4444-4444-4444-444444444444",
        ).vault
    )
    assert cloud == {
        "exclude_interactive_browser_credential": True,
        "managed_identity_client_id": "44444444-4444-4444-4444-444444444444",
    }


def test_real_clients_can_be_constructed_without_network() -> None:
    """Building DefaultAzureCredential + SecretClient with our options does no I/O."""
    source = KeyVaultCredentialSource(make_settings().vault)
    client = source._secret_client()
    assert client.vault_url.rstrip("/") == "https://127.0.0.1:8445"
    assert source._secret_client() is client  # one client per source (per process)
