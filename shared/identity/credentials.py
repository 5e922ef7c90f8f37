"""Where the app's own Entra credential comes from: Key Vault (secret or certificate) or managed identity.

Two :class:`CredentialSource` implementations produce a :class:`ClientCredential`, ready to hand to MSAL:

* :class:`KeyVaultCredentialSource` (``ENTRA_CREDENTIAL=keyvault``) reads the vault entry named by
  ``ENTRA_CREDENTIAL_NAME`` with ``DefaultAzureCredential`` and ONE ``SecretClient`` per process, and detects
  the kind from the secret's content type: a client secret, a PKCS#12 (PFX) certificate, or a PEM certificate.
* :class:`ManagedIdentityAssertionSource` (``ENTRA_CREDENTIAL=managed-identity``) is secretless: MSAL gets a
  callable returning a managed-identity token for ``api://AzureADTokenExchange`` (federated credential).

Secret values never leave this module except inside :class:`ClientCredential` (whose repr hides them) and are
never logged; logs carry the kind, length, version and certificate thumbprint at most.
azure-identity, azure-keyvault-secrets and cryptography are imported on first use only.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from shared.core.error_translation import from_azure_error
from shared.core.errors import ConfigurationError
from shared.core.records import Record
from shared.core.settings_parts import VaultSettings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

logger = logging.getLogger(__name__)

CredentialKind = Literal["secret", "certificate", "assertion"]

#: Audience of managed-identity tokens used as federated-credential assertions (Entra's fixed value).
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"  # noqa: S105 - a scope, not a password

CONTENT_TYPE_PKCS12 = "application/x-pkcs12"
CONTENT_TYPE_PEM = "application/x-pem-file"
_SECRET_CONTENT_TYPES = frozenset({"", "text/plain"})
_EXPIRY_WARNING = datetime.timedelta(days=14)


class ClientCredential(Record):
    """The app's credential in the form MSAL's ``client_credential`` takes.

    Attributes:
        kind: ``secret``, ``certificate`` or ``assertion``.
        msal_credential: a secret string, a ``{"private_key", "thumbprint", "public_certificate"}`` dict,
            or ``{"client_assertion": callable}``. Hidden from ``repr``.
        fingerprint: SHA-256 of the material, to tell whether a re-read returned something new. Hidden too.
        version: the Key Vault secret version, if read from a vault.
        thumbprint: SHA-1 hex of the certificate (public information), for certificates.
    """

    kind: CredentialKind
    msal_credential: str | dict[str, Any]
    fingerprint: str
    version: str | None = None
    thumbprint: str | None = None

    def __repr__(self) -> str:
        return (
            f"ClientCredential(kind={self.kind!r}, version={self.version!r}, thumbprint={self.thumbprint!r})"
        )

    def describe(self) -> str:
        """A log-safe one-line description (never the material itself)."""
        if self.kind == "certificate":
            return f"certificate thumbprint={self.thumbprint} version={self.version}"
        if self.kind == "secret":
            return f"client secret ({len(str(self.msal_credential))} chars) version={self.version}"
        return "managed-identity federated assertion"


class CredentialSource(Protocol):
    """Produces the current :class:`ClientCredential`. Called rarely: at first use and after rotation."""

    def load(self) -> ClientCredential:
        """Read the credential now (no caching).

        Raises:
            ConfigurationError: the credential is missing, disabled, forbidden or malformed.
            CredentialUnavailable: the store is unreachable or throttling; retry later.
        """
        ...


def build_credential_source(
    vault: VaultSettings,
    *,
    secret_client: Callable[[], SecretClient] | None = None,
    azure_transport: Callable[[], Any] | None = None,
) -> CredentialSource:
    """The source ``ENTRA_CREDENTIAL`` selects. ``secret_client`` gives the process's one vault client
    (the session key is read through it too), so one identity token serves both reads; ``azure_transport``
    the azure-core transport the managed identity's requests go through (the process's pooled session)."""
    if vault.credential_mode == "managed-identity":
        return ManagedIdentityAssertionSource(vault, azure_transport=azure_transport)
    return KeyVaultCredentialSource(vault, secret_client=secret_client() if secret_client else None)


def is_loopback_host(url: str) -> bool:
    """True when ``url``'s host is ``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KeyVaultCredentialSource:
    """Reads the app's credential from Key Vault. ONE ``DefaultAzureCredential`` + ``SecretClient`` per
    instance (the runtime keeps one instance per process). Requires the ``secrets/get`` permission
    (RBAC role "Key Vault Secrets User") for the Function App's managed identity."""

    def __init__(self, vault: VaultSettings, *, secret_client: SecretClient | None = None) -> None:
        """``secret_client`` replaces the vault client built on first use (tests pass a fake)."""
        if not vault.key_vault_url or not vault.credential_name:
            raise ConfigurationError("KEY_VAULT_URL and ENTRA_CREDENTIAL_NAME are required in keyvault mode")
        self._vault = vault
        self._vault_url = vault.key_vault_url
        self._name = vault.credential_name
        self._lock = threading.Lock()
        self._client = secret_client

    @property
    def description(self) -> str:
        return f"secret '{self._name}' in Key Vault {self._vault_url}"

    def _secret_client(self) -> SecretClient:
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

                self._client = SecretClient(
                    self._vault_url,
                    azure_credential(self._vault),
                    **secret_client_options(self._vault),
                )
            return self._client

    def load(self) -> ClientCredential:
        from azure.core.exceptions import AzureError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            secret = self._secret_client().get_secret(self._name)
        except AzureError as exc:
            error = from_azure_error(exc, what=self.description)
            logger.warning("Reading %s failed: %s (%s)", self.description, error.code, type(exc).__name__)
            raise error from exc
        except ValueError as exc:  # e.g. the challenge resource does not match the vault host
            raise ConfigurationError(f"Key Vault {self._vault_url} could not be used: {exc}") from exc
        value = secret.value
        if not value:
            raise ConfigurationError(
                f"The {self.description} is empty: store the client secret or certificate"
            )
        credential = credential_from_secret(
            value, secret.properties.content_type, version=secret.properties.version, what=self.description
        )
        logger.info("Loaded the app credential from %s: %s", self.description, credential.describe())
        return credential


class ManagedIdentityAssertionSource:
    """Secretless mode: a managed-identity token is the client assertion (federated identity credential).

    The app registration must trust the managed identity (issuer ``{authority}/v2.0``, subject = the
    identity's object id, audience ``api://AzureADTokenExchange``)."""

    def __init__(
        self,
        vault: VaultSettings,
        *,
        identity: TokenCredential | None = None,
        azure_transport: Callable[[], Any] | None = None,
    ) -> None:
        """``identity`` replaces the ManagedIdentityCredential built on first use (tests pass a fake);
        ``azure_transport`` gives the azure-core transport it sends through."""
        self._vault = vault
        self._lock = threading.Lock()
        self._credential = identity
        self._azure_transport = azure_transport

    def _identity(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                from azure.identity import ManagedIdentityCredential  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

                # Only a managed identity can be trusted as a federated credential, so no dev-tool fallback.
                transport = self._azure_transport() if self._azure_transport else None
                options = {"transport": transport} if transport is not None else {}
                self._credential = ManagedIdentityCredential(
                    client_id=self._vault.managed_identity_client_id, **options
                )
            return self._credential

    def _assertion(self) -> str:
        from azure.core.exceptions import AzureError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            return self._identity().get_token(TOKEN_EXCHANGE_SCOPE).token
        except AzureError as exc:
            raise from_azure_error(exc, what="managed identity token for api://AzureADTokenExchange") from exc

    def load(self) -> ClientCredential:
        # MSAL calls the callable only when it sends a token request; azure-identity caches the MI token.
        return ClientCredential(
            kind="assertion", msal_credential={"client_assertion": self._assertion}, fingerprint="assertion"
        )


def secret_client_options(vault: VaultSettings) -> dict[str, Any]:
    """Keyword arguments for the process's ``SecretClient``."""
    if vault.key_vault_url is None:
        raise ConfigurationError("KEY_VAULT_URL is required when ENTRA_CREDENTIAL=keyvault")
    return {
        # A vault's 401 challenge names resource "https://vault.azure.net"; the SDK checks that the vault host
        # is a subdomain of it. A loopback host (the local tenant) can never be, so the check is skipped for
        # loopback vault URLs only; every real vault keeps it.
        "verify_challenge_resource": not is_loopback_host(vault.key_vault_url),
        "connection_timeout": vault.graph_timeout_seconds,
        "read_timeout": vault.graph_timeout_seconds,
        "retry_total": 2,  # this read sits on a caller's request path: fail fast, callers retry
    }


def azure_credential_options(vault: VaultSettings) -> dict[str, Any]:
    """Keyword arguments for the ``DefaultAzureCredential`` that reads the vault."""
    options: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if vault.managed_identity_client_id:
        options["managed_identity_client_id"] = vault.managed_identity_client_id
    if not vault.authority_is_microsoft_cloud:
        # Same narrow branch as MSAL's instance_discovery=False: a non-Microsoft authority host cannot be
        # validated by login.microsoftonline.com's instance discovery.
        options["disable_instance_discovery"] = True
    return options


def azure_credential(vault: VaultSettings, *, transport: Any = None) -> TokenCredential:
    """The identity that reads the vault; ``transport`` (azure-core) carries its token requests."""
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    options = azure_credential_options(vault)
    if transport is not None:
        options["transport"] = transport
    return DefaultAzureCredential(**options)


def credential_from_secret(
    value: str, content_type: str | None, *, version: str | None = None, what: str = "vault entry"
) -> ClientCredential:
    """Turn a Key Vault secret into a :class:`ClientCredential`, by content type.

    No content type or ``text/plain``: client secret, without surrounding whitespace (stripped with a
    warning: Entra's secrets contain none). ``application/x-pkcs12``: base64 PFX with an empty password.
    ``application/x-pem-file``: PEM private key + certificate(s).

    Raises:
        ConfigurationError: unknown content type or unreadable certificate (message names ``what``).
    """
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    fingerprint = hashlib.sha256(value.encode("utf-8")).hexdigest()
    if kind in _SECRET_CONTENT_TYPES:
        # Entra-generated client secrets never contain whitespace, so whitespace around one is an artefact of
        # how it was stored (`... -o tsv | az keyvault secret set --file /dev/stdin` keeps the newline), and
        # Entra would refuse it forever (AADSTS7000215). Strip it; the log line says how much (never what).
        secret = value.strip()
        if not secret:
            raise ConfigurationError(f"The {what} holds only whitespace: store the client secret")
        if secret != value:
            logger.warning(
                "The client secret in the %s has %d whitespace character(s) around it (e.g. a trailing "
                "newline): stripped. Store it without them (docs/deploy.md, the credential)",
                what,
                len(value) - len(secret),
            )
        return ClientCredential(
            kind="secret", msal_credential=secret, fingerprint=fingerprint, version=version
        )
    if kind == CONTENT_TYPE_PKCS12:
        msal_cert = certificate_from_pfx(value, what=what)
    elif kind == CONTENT_TYPE_PEM:
        msal_cert = certificate_from_pem(value, what=what)
    else:
        raise ConfigurationError(
            f"The {what} has content type '{content_type}', which the app cannot use: store a client secret "
            f"(no content type or text/plain) or a certificate ({CONTENT_TYPE_PKCS12} or {CONTENT_TYPE_PEM})"
        )
    return ClientCredential(
        kind="certificate",
        msal_credential=msal_cert,
        fingerprint=fingerprint,
        version=version,
        thumbprint=msal_cert["thumbprint"],
    )


def certificate_from_pfx(value: str, *, what: str = "vault entry") -> dict[str, str]:
    """MSAL certificate dict from a base64 PKCS#12 blob with an empty (or no) password."""
    from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"The {what} is marked {CONTENT_TYPE_PKCS12} but is not base64") from exc
    loaded = None
    for password in (None, b""):  # Key Vault exports PFX with an empty password; others use none at all.
        try:
            loaded = pkcs12.load_key_and_certificates(raw, password)
            break
        except ValueError:
            continue
    if loaded is None:
        raise ConfigurationError(
            f"The {what} is not a PKCS#12 (PFX) file readable without a password: re-import it without one"
        )
    key, cert, extra = loaded
    if key is None or cert is None:
        raise ConfigurationError(f"The {what} must contain both a private key and its certificate")
    return _msal_certificate(key, [cert, *extra], what=what)


def certificate_from_pem(value: str, *, what: str = "vault entry") -> dict[str, str]:
    """MSAL certificate dict from PEM text holding an unencrypted private key and the certificate(s)."""
    from cryptography import x509  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    data = value.encode("utf-8")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"The {what} has no readable unencrypted PEM private key") from exc
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigurationError(f"The {what} has no PEM certificate next to its private key") from exc
    return _msal_certificate(key, certs, what=what)


def _msal_certificate(key: PrivateKeyTypes, certs: list[x509.Certificate], *, what: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(
            f"The {what} must hold an RSA key: Entra ID client assertions are RSA-signed"
        )
    public = key.public_key().public_numbers()
    leaf = next((c for c in certs if _public_numbers(c) == public), None)
    if leaf is None:
        raise ConfigurationError(f"No certificate in the {what} matches its private key")
    chain = [leaf, *(c for c in certs if c is not leaf)]
    _warn_if_expiring(leaf, what)
    return {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii"),
        # x5t is defined as the certificate's SHA-1 thumbprint (RFC 7515 4.1.7): an id, not a security use.
        "thumbprint": leaf.fingerprint(hashes.SHA1()).hex(),  # noqa: S303
        # Sending the chain as x5c enables subject-name/issuer (SNI) authentication.
        "public_certificate": "".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain
        ),
    }


def _public_numbers(cert: x509.Certificate) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    public_key = cert.public_key()
    return public_key.public_numbers() if isinstance(public_key, rsa.RSAPublicKey) else None


def _warn_if_expiring(cert: x509.Certificate, what: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    not_after = cert.not_valid_after_utc
    if not_after <= now:
        logger.error("The certificate in the %s expired on %s", what, not_after.isoformat())
    elif not_after - now <= _EXPIRY_WARNING:
        logger.warning("The certificate in the %s expires on %s: rotate it", what, not_after.isoformat())
