"""The session key ring: the 256-bit key in Key Vault (``SESSION_KEY_NAME``) that encrypts sessions and
sign-in flows at rest, and signs the app's short tokens (CSRF), with rotation that signs nobody out.

How rotation works: each sealed record carries the **secret version** that sealed it. The latest version
seals new records; any other version is fetched once (``get_secret(name, version)``) and cached, so
records sealed before a rotation still open. The latest version is re-read every
:data:`REFRESH_SECONDS`, so a new version is used without a restart (and at once when a record sealed by
a newer version, written by another instance, is opened). To retire an old key, disable its version in
the vault: records sealed by it no longer open after the next re-read (their sessions end), since each
re-read forgets the older versions and reads them again when a record needs one.

Keys are never used directly: HKDF-SHA256 derives one subkey per purpose (record encryption, CSRF, ...),
see :meth:`SessionKeyRing.derive_key`. Records are sealed with AES-256-GCM (96-bit random nonce); the
caller's associated data (record kind and row) binds a ciphertext to its row.

Failures: the vault unreachable with keys cached changes nothing (the cached keys keep working; the
re-read is tried again after :data:`RETRY_SECONDS`). With no key cached, callers get 503
``credential_unavailable`` with ``Retry-After``, and the failure is held for :data:`HOLD_SECONDS` so an
outage costs the vault one read per period. A missing, disabled or malformed secret is a
``ConfigurationError``. An older version is retired only when the vault says it is gone (404) or disabled;
a refusal (401/403) or failure reading it is a 503 and retires nothing (a moment's fault signs nobody out).
Required permission: ``secrets/get`` on the vault (role "Key Vault Secrets User").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.core.cooldown import Clock, HeldFailure
from shared.core.errors import ConfigurationError, CredentialUnavailable, GraphFunctionsError
from shared.core.records import Record
from shared.core.settings_parts import VaultSettings
from shared.identity.key_source import KeySource, KeyVersion, VaultKeySource

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

logger = logging.getLogger(__name__)

#: How often the latest secret version is re-read (a rotation takes effect within this time).
REFRESH_SECONDS = 300.0
#: After a failed re-read with keys cached, the next attempt waits this long (not every request).
RETRY_SECONDS = 30.0
#: A vault failure with no key cached is answered from memory this long.
HOLD_SECONDS = 5.0
#: Versions found not to exist (or disabled) are remembered, so forged versions cost the vault nothing.
_MAX_UNKNOWN_VERSIONS = 256
_NONCE_BYTES = 12
_KEY_BYTES = 32
# Key Vault secret versions are 32 hex digits; accept any short alphanumeric id, refuse anything else.
_VERSION = r"^[0-9A-Za-z]{1,64}$"
_RECORD_PURPOSE = "record-encryption"


class UnreadableRecordError(Exception):
    """A sealed record that cannot be opened: tampered, sealed for another row, or by an unknown or
    disabled key version. Not an HTTP error: stores treat such a record as absent."""


class Sealed(Record):
    """A sealed (encrypted and authenticated) value: the key version that sealed it, and
    ``nonce || ciphertext || tag``."""

    version: str
    blob: bytes


class SessionKeyRing:
    """Every session-key version the process has seen, the latest one sealing. Thread-safe.

    One per process (:meth:`shared.app.services.Runtime.session_keys`).
    """

    def __init__(
        self,
        source: KeySource,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()  # guards the maps below
        self._load_lock = threading.Lock()  # one vault read of the latest version at a time
        self._keys: dict[str, KeyVersion] = {}
        self._unknown: OrderedDict[str, None] = OrderedDict()
        self._derived: dict[tuple[str, str], bytes] = {}
        self._latest: KeyVersion | None = None
        self._next_refresh = 0.0
        self._failure = HeldFailure(clock=clock)
        self._version_lock = threading.Lock()  # one vault read of an older version at a time
        self._version_failure = HeldFailure(clock=clock)

    # -- keys -------------------------------------------------------------------------------------------

    def latest_version(self) -> str:
        """The version that seals new records (reads the vault when due; see the module docstring).

        Raises:
            CredentialUnavailable: no key cached and the vault is failing.
            ConfigurationError: the secret is missing, disabled, forbidden or malformed.
        """
        return self._current().version

    def _current(self) -> KeyVersion:
        latest = self._latest
        if latest is not None and self._clock() < self._next_refresh:
            return latest
        if latest is not None:
            # Keys cached: one thread re-reads, the others carry on with the cached key meanwhile.
            if not self._load_lock.acquire(blocking=False):
                return latest
            try:
                if self._clock() >= self._next_refresh:
                    self._refresh(keep=latest)
            finally:
                self._load_lock.release()
            return self._latest or latest
        with self._load_lock:
            if self._latest is None:
                self._failure.raise_if_held()
                self._refresh(keep=None)
            latest = self._latest
            if latest is None:  # _refresh raises rather than leave it unset; stay safe regardless
                raise CredentialUnavailable("The session key could not be loaded")
            return latest

    def _refresh(self, *, keep: KeyVersion | None) -> None:
        try:
            found = self._source.read(None)
            if found is None:
                raise ConfigurationError("The session key secret has no enabled current version")
        except CredentialUnavailable as error:
            if keep is None:
                self._failure.hold(error, HOLD_SECONDS)
                error.retry_after = max(1, int(HOLD_SECONDS))
                raise
            logger.warning("Session key re-read failed (%s): the cached key version stays in use", error.code)
            self._next_refresh = self._clock() + RETRY_SECONDS
            return
        except GraphFunctionsError as error:
            if keep is None:
                raise
            logger.error("Session key re-read failed (%s): %s", error.code, error.message)
            self._next_refresh = self._clock() + RETRY_SECONDS
            return
        with self._lock:
            # Older versions are forgotten and read again when a record needs one, so a version disabled
            # in the vault (retired) stops opening records within one re-read, on every instance.
            self._keys = {found.version: found}
            self._derived = {k: v for k, v in self._derived.items() if k[0] == found.version}
            self._unknown.clear()
            if keep is None or found.version != keep.version:
                logger.info("Session key version %s seals new records", found.version)
            self._latest = found
        self._failure.clear()
        self._next_refresh = self._clock() + self._refresh_seconds

    def _version(self, version: str) -> KeyVersion | None:
        """A cached version, else read once (one read at a time: concurrent requests for a version not
        cached yet wait for the first one's read); None for a malformed, unknown or disabled version.

        Raises:
            CredentialUnavailable: the vault is failing (held for :data:`HOLD_SECONDS`); the record is not
                at fault, so it is not treated as unreadable.
        """
        cached = self._cached(version)
        if cached is not None or not re.fullmatch(_VERSION, version):
            return cached if isinstance(cached, KeyVersion) else None
        with self._version_lock:
            cached = self._cached(version)
            if cached is not None:
                return cached if isinstance(cached, KeyVersion) else None
            self._version_failure.raise_if_held()
            try:
                found = self._source.read(version)
            except CredentialUnavailable as error:
                self._version_failure.hold(error, HOLD_SECONDS)
                error.retry_after = max(1, int(HOLD_SECONDS))
                raise
            return self._remember(version, found)

    def _cached(self, version: str) -> KeyVersion | bool | None:
        """The cached version, False when known not to exist, None when not known yet."""
        with self._lock:
            found = self._keys.get(version)
            if found is not None:
                return found
            return False if version in self._unknown else None

    def _remember(self, version: str, found: KeyVersion | None) -> KeyVersion | None:
        with self._lock:
            if found is None:
                self._unknown[version] = None
                while len(self._unknown) > _MAX_UNKNOWN_VERSIONS:
                    self._unknown.popitem(last=False)
                return None
            self._keys[found.version] = found
            latest = self._latest
            newer = _newer(found, latest) if latest is not None else False
            if newer:
                # Another instance already seals with a newer version: follow it now, not at the re-read.
                logger.info("Session key version %s (newer) seals new records", found.version)
                self._latest = found
            elif newer is None:
                # Created in the same second as ours: the times cannot tell which is newer, the vault can.
                # The next seal re-reads the latest version rather than wait for the periodic re-read.
                self._next_refresh = 0.0
        return found

    def derive_key(self, purpose: str, *, version: str | None = None) -> tuple[str, bytes]:
        """A 256-bit subkey for ``purpose`` (HKDF-SHA256 of the session key; info names the purpose), and
        the version it derives from. ``version`` None: the latest; another version not cached is read
        from the vault once (only for versions stored records name, never a request's input).

        Raises:
            UnreadableRecordError: ``version`` is unknown or disabled.
            CredentialUnavailable, ConfigurationError: as :meth:`latest_version`.
        """
        source = self._current() if version is None else self._version(version)
        if source is None:
            raise UnreadableRecordError(f"unknown session key version {version!r}")
        return source.version, self._derive(source, purpose)

    def _derive(self, source: KeyVersion, purpose: str) -> bytes:
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

        cache_key = (source.version, purpose)
        with self._lock:
            derived = self._derived.get(cache_key)
        if derived is None:
            info = f"graph-functions/{purpose}".encode()
            derived = HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=info).derive(
                source.key
            )
            with self._lock:
                self._derived[cache_key] = derived
        return derived

    def _known(self, version: str) -> KeyVersion | None:
        """The version if this process holds it now (the latest, or one a record made it read); never
        a vault read: a version named by a request's input must not make the app read the vault."""
        latest = self._current()
        if version == latest.version:
            return latest
        with self._lock:
            return self._keys.get(version)

    # -- sealing ----------------------------------------------------------------------------------------

    def seal(self, plaintext: bytes, *, aad: bytes) -> Sealed:
        """Encrypt and authenticate ``plaintext`` with the latest key; ``aad`` (not stored) must be given
        again to open it, so a sealed value moved to another row or kind does not open.

        Raises:
            CredentialUnavailable, ConfigurationError: as :meth:`latest_version`.
        """
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

        version, key = self.derive_key(_RECORD_PURPOSE)
        nonce = os.urandom(_NONCE_BYTES)
        return Sealed(version=version, blob=nonce + AESGCM(key).encrypt(nonce, plaintext, aad))

    def open(self, version: str, blob: bytes, *, aad: bytes, known_only: bool = False) -> bytes:
        """The plaintext :meth:`seal` sealed. ``known_only``: for a value the caller sent (a cookie), only
        the latest version or one the process holds opens it, never a vault read (:meth:`verify`).

        Raises:
            UnreadableRecordError: tampered, other ``aad``, unknown or disabled version, malformed.
            CredentialUnavailable: the version must be read from the vault and the vault is failing.
        """
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

        if len(blob) < _NONCE_BYTES + 16:
            raise UnreadableRecordError("sealed value too short")
        if known_only:
            source = self._known(version)
            if source is None:
                raise UnreadableRecordError(f"session key version {version!r} is not held")
            key = self._derive(source, _RECORD_PURPOSE)
        else:
            _, key = self.derive_key(_RECORD_PURPOSE, version=version)
        try:
            return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise UnreadableRecordError("sealed value failed authentication") from exc

    # -- signing ----------------------------------------------------------------------------------------

    def sign(self, purpose: str, message: bytes) -> str:
        """A short token ``{version}.{base64url HMAC-SHA256}`` proving the app made it for ``message``.

        Raises:
            CredentialUnavailable, ConfigurationError: as :meth:`latest_version`.
        """
        version, key = self.derive_key(f"sign/{purpose}")
        mac = hmac.new(key, message, hashlib.sha256).digest()
        return f"{version}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"

    def verify(self, purpose: str, message: bytes, token: str | None) -> bool:
        """True when ``token`` is :meth:`sign`'s token for ``purpose`` and ``message``, by the latest key
        version or another this process holds (one a record it opened was sealed with). False for
        anything else, without reading the vault: the version is the caller's input, and an unknown one
        read per request would let anyone make the app read the vault at will. After a rotation an
        instance keeps older versions until its re-read, so a form rendered just before one may be
        refused once (the person submits it again).

        Raises:
            CredentialUnavailable, ConfigurationError: as :meth:`latest_version` (no key cached at all).
        """
        if not token or len(token) > 200 or token.count(".") != 1:
            return False
        version, _, mac_text = token.partition(".")
        source = self._known(version)
        if source is None:
            return False
        key = self._derive(source, f"sign/{purpose}")
        expected = base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=")
        return hmac.compare_digest(expected, mac_text.encode("ascii", "replace"))


def associated_data(kind: str, schema: int, row: str) -> bytes:
    """The associated data a record of ``kind`` (schema ``schema``) in table row ``row`` is sealed with: a
    ciphertext moved to another row, or read as another kind of record, fails to open."""
    return f"graph-functions/{kind}/v{schema}/{row}".encode("ascii")


def _newer(candidate: KeyVersion, latest: KeyVersion) -> bool | None:
    """Whether ``candidate`` was created after ``latest``; None when the times cannot tell: another version
    created within the same second (Key Vault's ``created`` has one-second resolution)."""
    if candidate.created is None or latest.created is None or candidate.version == latest.version:
        return False
    if int(candidate.created.timestamp()) == int(latest.created.timestamp()):
        return None
    return candidate.created > latest.created


def build_key_ring(
    vault: VaultSettings, client: Callable[[], SecretClient], *, clock: Clock = time.monotonic
) -> SessionKeyRing:
    """The process's key ring, reading the vault ``KEY_VAULT_URL`` names through ``client()``.

    Raises:
        ConfigurationError: no ``KEY_VAULT_URL``.
    """
    if not vault.key_vault_url:
        raise ConfigurationError(
            "KEY_VAULT_URL is missing: sign-in keeps its session key (SESSION_KEY_NAME) in Key Vault, so set "
            "KEY_VAULT_URL even with ENTRA_CREDENTIAL=managed-identity"
        )
    return SessionKeyRing(VaultKeySource(client(), vault.session_key_name, vault.key_vault_url), clock=clock)
