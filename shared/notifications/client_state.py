"""Each subscription's ``clientState``: a secret Graph echoes in every notification, which is how the
webhook knows a post is Graph's about one of the app's subscriptions (Graph sends no token).

A client state is ``{nonce}.{version}.{mac}``: a random nonce per subscription and the session key ring's
HMAC-SHA256 over the tenant and that nonce (:meth:`~shared.identity.key_ring.SessionKeyRing.sign`, purpose
``graph-client-state``). So it is derived from the key in Key Vault, differs per subscription, and is never
stored: the subscriptions table keeps only its SHA-256 (:func:`fingerprint`), which the worker compares to
bind a notification to the subscription it names. Checking a post costs one HMAC and a constant-time
comparison, no storage read; a forged or altered value fails.

A key rotation: values signed by a version the process no longer holds fail; the subscriptions timer
recreates every subscription whose client state an older version signed (its ``KeyVersion`` column), and
catch-up by delta finds what was refused meanwhile (docs/change-notifications.md).

Graph's limit on ``clientState`` is 128 characters (the subscription resource): a 16-character nonce, a
Key Vault version (32 hex) and a 43-character MAC make 93.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Protocol

from shared.core.errors import ConfigurationError

PURPOSE = "graph-client-state"
MAX_CHARS = 128


class Signer(Protocol):
    """What the key ring offers (:class:`~shared.identity.key_ring.SessionKeyRing`)."""

    def sign(self, purpose: str, message: bytes) -> str: ...

    def verify(self, purpose: str, message: bytes, token: str | None) -> bool: ...


def _message(tenant_id: str, nonce: str) -> bytes:
    return f"{tenant_id.lower()}|{nonce}".encode()


def fingerprint(client_state: str) -> str:
    """What the table keeps of a client state: its SHA-256, hex (the value itself is a credential)."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


def key_version(client_state: str) -> str:
    """The key version that signed ``client_state`` ("" when malformed)."""
    parts = client_state.split(".")
    return parts[1] if len(parts) == 3 else ""


class ClientStates:
    """Issues and checks client states (module docstring). Thread-safe."""

    def __init__(self, keys: Signer) -> None:
        self._keys = keys

    def issue(self, tenant_id: str) -> str:
        """A new client state for a subscription in ``tenant_id``.

        Raises:
            CredentialUnavailable, ConfigurationError: the key ring's (Key Vault unreachable, no key).
        """
        nonce = secrets.token_urlsafe(12)
        value = f"{nonce}.{self._keys.sign(PURPOSE, _message(tenant_id, nonce))}"
        if len(value) > MAX_CHARS:
            raise ConfigurationError(
                f"The session key's version name is too long for Graph's {MAX_CHARS}-character clientState"
            )
        return value

    def verify(self, tenant_id: str, client_state: str) -> bool:
        """True when ``client_state`` is one :meth:`issue` made for ``tenant_id`` (constant-time MAC check;
        never a vault read: an unknown key version is False).

        Raises:
            CredentialUnavailable, ConfigurationError: no key at all (the vault failing at a cold start).
        """
        if len(client_state) > MAX_CHARS or client_state.count(".") != 2:
            return False
        nonce, _, signature = client_state.partition(".")
        return self._keys.verify(PURPOSE, _message(tenant_id, nonce), signature)
