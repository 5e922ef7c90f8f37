"""Where the session key comes from: its versions (:class:`KeyVersion`) as a :class:`KeySource` reads them;
in production the Key Vault secret ``SESSION_KEY_NAME`` (:class:`VaultKeySource`). The key ring
(:mod:`shared.identity.key_ring`) decides which version seals and which open."""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from typing import TYPE_CHECKING, Protocol

from shared.core.error_translation import from_azure_error
from shared.core.errors import ConfigurationError, CredentialUnavailable
from shared.core.records import Record

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

logger = logging.getLogger(__name__)

_KEY_BYTES = 32
_NEW_KEY_HINT = (
    'python -c "import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())"'
)


class KeyVersion(Record):
    """One version of the session key as read from the vault (``key`` hidden from repr)."""

    version: str
    key: bytes
    created: datetime.datetime | None = None

    def __repr__(self) -> str:
        return f"KeyVersion(version={self.version!r}, created={self.created!r})"


class KeySource(Protocol):
    """Reads versions of the session key."""

    def read(self, version: str | None) -> KeyVersion | None:
        """The given version (None: the latest). None when that version does not exist or is disabled
        (only then: the records it sealed are retired).

        Raises:
            CredentialUnavailable: the store is unreachable or failing now, or refuses (401/403) to read
                an older version (a refusal says nothing about the key: nothing may be retired for it).
            ConfigurationError: the secret is missing, forbidden or not a base64 256-bit key.
        """
        ...


class VaultKeySource:
    """The session key in Key Vault, read with the app's identity through ONE ``SecretClient``."""

    def __init__(self, client: SecretClient, name: str, vault_url: str) -> None:
        self._client = client
        self._name = name
        self._what = f"session key secret '{name}' in Key Vault {vault_url}"

    def read(self, version: str | None) -> KeyVersion | None:
        from azure.core.exceptions import AzureError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            secret = self._client.get_secret(self._name, version)
        except AzureError as exc:
            if version is not None and retires_version(exc):
                # An old version that is gone or disabled: the records it sealed are retired.
                logger.info("Session key version %s is not readable (%s)", version, type(exc).__name__)
                return None
            error = from_azure_error(exc, what=self._what)
            if version is not None and isinstance(error, ConfigurationError):
                # 401/403 on an older version: the vault refusing the app (a token or role assignment
                # being replaced, RBAC propagating) says nothing about the key. Retiring the version
                # here would sign out everyone it sealed over a moment's fault: 503, nothing deleted.
                logger.warning("Reading session key version %s was refused (%s)", version, type(exc).__name__)
                raise CredentialUnavailable(
                    f"The vault refused to read an older version of the {self._what}; retry shortly"
                ) from exc
            if isinstance(error, ConfigurationError):
                error = ConfigurationError(
                    f"The {self._what} could not be read ({error.message}) Create it with a random 256-bit "
                    f"key, base64 ({_NEW_KEY_HINT}), or fix SESSION_KEY_NAME / KEY_VAULT_URL, and grant the "
                    "app's identity 'Key Vault Secrets User'."
                )
            logger.warning("Reading the %s failed: %s (%s)", self._what, error.code, type(exc).__name__)
            raise error from exc
        except ValueError as exc:  # e.g. the challenge resource does not match the vault host
            raise ConfigurationError(f"The {self._what} could not be read: {exc}") from exc
        key = decode_key(secret.value or "", what=self._what)
        return KeyVersion(
            version=str(secret.properties.version), key=key, created=secret.properties.created_on
        )


def retires_version(exc: BaseException) -> bool:
    """Whether a failed read of one version of the secret says that version is retired: it is gone
    (404) or disabled (403 with the inner code ``SecretDisabled``, the vault's answer for a disabled
    version, emulator/docs/vault-identity-sharepoint.md). Any other refusal or failure does not."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    if isinstance(exc, ResourceNotFoundError):
        return True
    if not isinstance(exc, HttpResponseError):
        return False
    if exc.status_code == 404:
        return True
    inner = getattr(exc.error, "innererror", None) if exc.error is not None else None
    return exc.status_code == 403 and isinstance(inner, dict) and inner.get("code") == "SecretDisabled"


def decode_key(value: str, *, what: str = "session key") -> bytes:
    """A 256-bit key from its base64 (standard or URL-safe, padding optional) text.

    Raises:
        ConfigurationError: not base64, or not exactly 32 bytes.
    """
    text = "".join(value.split())
    try:
        raw = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"The {what} is not base64: store a new version ({_NEW_KEY_HINT})") from exc
    if len(raw) != _KEY_BYTES:
        raise ConfigurationError(
            f"The {what} holds {len(raw)} bytes, not a 256-bit key: store a new version ({_NEW_KEY_HINT})"
        )
    return raw
