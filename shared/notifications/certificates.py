"""The app's notification encryption certificate (``NOTIFICATION_CERTIFICATE_NAME``): a Key Vault secret
holding an X.509 certificate and its RSA private key as PEM.

* The **latest** version is what subscriptions are created or rotated with: ``encryptionCertificate`` =
  base64 DER of the certificate, ``encryptionCertificateId`` = the secret's version (Graph echoes it in
  every ``encryptedContent``, so the worker knows which key to unwrap with). It is read once per process
  and re-read every :data:`REFRESH_SECONDS` (a rotation is followed within that, by every instance); a
  failed re-read keeps the cached version (logged).
* An **older** version named by a notification (encrypted before the subscription's rotation took effect)
  is read on demand and kept: Graph's guidance is to keep the old key until no notification names it. A
  version the vault no longer has or has disabled is retired (its items cannot be decrypted; the timer's
  delta catch-up still finds the messages).

Required: ``secrets/get`` on the vault (RBAC role "Key Vault Secrets User") for the app's identity.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.core.cooldown import Clock, HeldFailure
from shared.core.error_translation import from_azure_error
from shared.core.errors import ConfigurationError, CredentialUnavailable, GraphFunctionsError
from shared.core.records import Record
from shared.identity.key_source import retires_version

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

logger = logging.getLogger(__name__)

#: The latest version is re-read this often (the subscriptions timer runs every 5 minutes).
REFRESH_SECONDS = 300.0
#: A failed first read is answered from memory this long (callers get 503 meanwhile).
HOLD_SECONDS = 5.0
#: Key Vault secret versions: 32 hexadecimal characters.
VERSION_PATTERN = r"[0-9a-fA-F]{32}"
_MAX_VERSIONS = 16
_HINT = (
    "store the certificate and its unencrypted RSA private key (2048-4096 bits) as PEM, e.g. "
    "'openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=graph-notifications -keyout k.pem "
    "-out c.pem && cat c.pem k.pem > both.pem' then 'az keyvault secret set --file both.pem'"
)


class EncryptionKey(Record):
    """One version of the certificate: its id for Graph, the public certificate (base64 DER) and the
    private key (PEM, never in a repr)."""

    version: str
    certificate: str
    private_key: bytes

    def __repr__(self) -> str:
        return f"EncryptionKey(version={self.version!r})"


def parse_pem(value: str, *, version: str, what: str) -> EncryptionKey:
    """The certificate and key of a PEM secret value.

    Raises:
        ConfigurationError: no certificate or key, not RSA 2048-4096, or the key is not the certificate's.
    """
    from cryptography import x509  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    data = value.encode("utf-8")
    try:
        cert = x509.load_pem_x509_certificate(data)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"The {what} is not a PEM certificate with its private key: {_HINT}"
        ) from exc
    public = cert.public_key()
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
        raise ConfigurationError(f"The {what} must hold an RSA key: {_HINT}")
    if not 2048 <= public.key_size <= 4096:
        raise ConfigurationError(f"The {what} holds a {public.key_size}-bit key; Graph takes 2048-4096 bits")
    if key.public_key().public_numbers() != public.public_numbers():
        raise ConfigurationError(f"The {what} holds a private key that is not its certificate's: {_HINT}")
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return EncryptionKey(version=version, certificate=base64.b64encode(der).decode("ascii"), private_key=pem)


class NotificationCertificates:
    """The certificate's versions (module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        client: Callable[[], SecretClient],
        name: str,
        vault_url: str,
        *,
        clock: Clock = time.monotonic,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._client = client
        self._name = name
        self._what = f"notification certificate secret '{name}' in Key Vault {vault_url}"
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()  # the maps
        self._load_lock = threading.Lock()  # one read of the latest version at a time
        self._version_lock = threading.Lock()  # one read of an older version at a time
        self._latest: EncryptionKey | None = None
        self._versions: dict[str, EncryptionKey | None] = {}  # None: retired
        self._next_refresh = 0.0
        self._failure = HeldFailure(clock=clock)
        self.reads = 0

    def current(self) -> EncryptionKey:
        """The latest version (re-read when due).

        Raises:
            CredentialUnavailable: nothing cached and the vault is failing (503, retried).
            ConfigurationError: the secret is missing, forbidden, disabled or not a PEM certificate + key.
        """
        latest = self._latest
        if latest is not None and self._clock() < self._next_refresh:
            return latest
        if latest is not None and not self._load_lock.acquire(blocking=False):
            return latest  # another thread re-reads; this one carries on with the cached version
        if latest is None:
            self._load_lock.acquire()
        try:
            latest = self._latest
            if latest is not None and self._clock() < self._next_refresh:
                return latest
            if latest is None:
                self._failure.raise_if_held()
            try:
                found = self._read(None)
            except GraphFunctionsError as error:
                if latest is None:
                    if isinstance(error, CredentialUnavailable):
                        self._failure.hold(error, HOLD_SECONDS)
                    raise
                logger.warning(
                    "Re-reading the %s failed (%s): the cached version stays", self._what, error.code
                )
                self._next_refresh = self._clock() + min(self._refresh_seconds, 60.0)
                return latest
            if found is None:
                raise ConfigurationError(f"The {self._what} has no enabled current version")
            with self._lock:
                if latest is None or latest.version != found.version:
                    logger.info(
                        "Notification certificate version %s encrypts new subscriptions", found.version
                    )
                self._latest = found
                self._versions[found.version] = found
            self._failure.clear()
            self._next_refresh = self._clock() + self._refresh_seconds
            return found
        finally:
            self._load_lock.release()

    def private_key(self, version: str) -> bytes | None:
        """The private key of ``version`` (PEM), read once and kept; None when the vault does not have it
        enabled (or ``version`` is not a version's shape).

        Raises:
            CredentialUnavailable: the vault is failing (retry later; the item is not at fault).
            ConfigurationError: the version exists but is not a PEM certificate + key.
        """
        if not re.fullmatch(VERSION_PATTERN, version):
            return None
        version = version.lower()
        with self._lock:
            if version in self._versions:
                found = self._versions[version]
                return found.private_key if found is not None else None
        with self._version_lock:
            with self._lock:
                if version in self._versions:
                    cached = self._versions[version]
                    return cached.private_key if cached is not None else None
            loaded = self._read(version)
            with self._lock:
                self._versions[version] = loaded
                while len(self._versions) > _MAX_VERSIONS:
                    self._versions.pop(next(iter(self._versions)))
            return loaded.private_key if loaded is not None else None

    def _read(self, version: str | None) -> EncryptionKey | None:
        from azure.core.exceptions import AzureError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        self.reads += 1
        try:
            secret: Any = self._client().get_secret(self._name, version)
        except AzureError as exc:
            if version is not None and retires_version(exc):
                logger.info("Notification certificate version %s is not readable: retired", version)
                return None
            error = from_azure_error(exc, what=self._what)
            if version is not None and isinstance(error, ConfigurationError):
                raise CredentialUnavailable(
                    f"The vault refused an older version of the {self._what}; retry shortly"
                ) from exc
            if isinstance(error, ConfigurationError):
                error = ConfigurationError(
                    f"The {self._what} could not be read ({error.message}): {_HINT}; or fix "
                    "NOTIFICATION_CERTIFICATE_NAME / KEY_VAULT_URL and grant the app's identity "
                    "'Key Vault Secrets User'; or unset NOTIFICATION_CERTIFICATE_NAME for basic notifications"
                )
            logger.warning("Reading the %s failed: %s (%s)", self._what, error.code, type(exc).__name__)
            raise error from exc
        except ValueError as exc:  # e.g. the challenge resource does not match the vault host
            raise ConfigurationError(f"The {self._what} could not be read: {exc}") from exc
        found_version = str(secret.properties.version or "").lower()
        return parse_pem(secret.value or "", version=found_version, what=self._what)
