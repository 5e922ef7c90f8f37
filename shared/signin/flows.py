"""Sign-in flows in progress, in Azure Table Storage (``AUTH_FLOW_TABLE``), so the callback may land on any
instance: MSAL's auth-code flow dict (PKCE verifier, nonce, state) between ``/auth/login`` and
``/auth/callback``.

* Keyed by the flow's ``state`` (the row key is its SHA-256), the flow sealed with the session key ring
  (the row key as associated data): the PKCE verifier and nonce are secrets.
* Bound to the browser that started it: :meth:`FlowStore.put` returns a random binding secret for a
  short-lived cookie and stores only its SHA-256; :meth:`FlowStore.take` refuses a callback whose browser
  does not present it (login CSRF: an attacker's ``state`` and code planted in a victim's browser).
* One-time: :meth:`FlowStore.take` replaces the row by a tombstone, conditioned on the ETag it read, so of
  two concurrent callbacks exactly one gets the flow and a replay is told apart from an unknown state.
* Expire after :data:`FLOW_LIFETIME_SECONDS`; the cleanup timer deletes them (and tombstones).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from shared.core.errors import AuthFlowMismatch, AuthFlowReplayed, AuthFlowUnknown
from shared.identity.key_ring import SessionKeyRing, UnreadableRecordError, associated_data
from shared.storage.tables import (
    EnsuredTable,
    Now,
    hashed_key,
    join_binary,
    partition_of,
    purge_rows,
    split_binary,
    storage_call,
    utcnow,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger(__name__)

#: How long a sign-in may take between /auth/login and the callback.
FLOW_LIFETIME_SECONDS = 600
_KIND = "authflow"
_SCHEMA = 1
_DATA = "Data"
# OAuth state as MSAL makes it (URL-safe random text); anything else cannot be ours.
_STATE = r"^[A-Za-z0-9._~-]{8,256}$"
_BINDING = r"^[A-Za-z0-9_-]{32,128}$"


class TakenFlow(NamedTuple):
    """A flow :meth:`FlowStore.take` handed out: MSAL's flow dict (for
    ``acquire_token_by_auth_code_flow``) and what the caller stored beside it. ``repr`` leaves the flow
    (its PKCE verifier, state and nonce) out."""

    flow: dict[str, Any]
    extra: dict[str, Any]

    def __repr__(self) -> str:
        return f"TakenFlow(extra={self.extra!r})"


class FlowStore:
    """Sign-in flows in one table. Thread-safe; one per process (``Runtime.auth_flows``)."""

    def __init__(self, table: EnsuredTable, keys: SessionKeyRing, *, now: Now = utcnow) -> None:
        self._table = table
        self._keys = keys
        self._now = now
        self._what = f"using the sign-in flow table '{table.name}'"

    def put(self, flow: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None) -> str:
        """Store ``flow`` (MSAL's ``initiate_auth_code_flow`` result, or any dict with a ``state``) and
        JSON-serialisable ``extra`` (e.g. the ``next`` path); returns the binding secret for the browser's
        short-lived cookie.

        Raises:
            ValueError: ``flow`` has no usable ``state`` (a programming error).
            StorageUnavailable, CredentialUnavailable, ConfigurationError.
        """
        state = flow.get("state")
        if not isinstance(state, str) or not re.fullmatch(_STATE, state):
            raise ValueError("the flow needs a URL-safe 'state' of 8-256 characters")
        binding = secrets.token_urlsafe(32)
        row = hashed_key(state)
        now = self._now()
        payload = json.dumps({"schema": _SCHEMA, "flow": dict(flow), "extra": dict(extra or {})})
        sealed = self._keys.seal(payload.encode("utf-8"), aad=associated_data(_KIND, _SCHEMA, row))
        entity = {
            "PartitionKey": partition_of(row),
            "RowKey": row,
            "Kind": _KIND,
            "KeyVersion": sealed.version,
            "Binding": _binding_hash(binding),
            "Created": now,
            "ExpiresAt": now + datetime.timedelta(seconds=FLOW_LIFETIME_SECONDS),
            "Consumed": False,
            **split_binary(sealed.blob, _DATA),
        }
        with storage_call(self._what):
            # Upsert: MSAL's state is random, so a clash is another put of this very flow (a retried login).
            self._client().upsert_entity(entity)
        return binding

    def take(self, state: str | None, binding: str | None) -> TakenFlow:
        """The flow stored under ``state``, once: a second take of it fails.

        Raises:
            AuthFlowUnknown: no such flow (never stored, malformed state, expired, unreadable).
            AuthFlowMismatch: ``binding`` is not the secret :meth:`put` returned for this flow (another
                browser's state, or the cookie was lost). The flow stays usable by its own browser.
            AuthFlowReplayed: the flow was already taken (a replayed or concurrent callback).
            StorageUnavailable, CredentialUnavailable.
        """
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        if not state or not re.fullmatch(_STATE, state):
            raise AuthFlowUnknown("The sign-in callback carries no state this app issued")
        row = hashed_key(state)
        try:
            with storage_call(self._what):
                entity = self._client().get_entity(partition_of(row), row)
        except ResourceNotFoundError:
            raise AuthFlowUnknown("No sign-in was started with this state, or it expired") from None
        if entity.get("Consumed") is True:
            raise AuthFlowReplayed("This sign-in was already completed")
        expires = entity.get("ExpiresAt")
        if not isinstance(expires, datetime.datetime) or expires <= self._now():
            raise AuthFlowUnknown("This sign-in took too long and expired")
        stored = entity.get("Binding")
        if (
            not binding
            or not re.fullmatch(_BINDING, binding)
            or not isinstance(stored, str)
            or not hmac.compare_digest(stored, _binding_hash(binding))
        ):
            raise AuthFlowMismatch("This sign-in was started in another browser")
        taken = self._open(row, entity)
        tombstone = {
            "PartitionKey": entity["PartitionKey"],
            "RowKey": row,
            "Kind": _KIND,
            "Consumed": True,
            "Created": entity.get("Created"),
            "ExpiresAt": expires,
        }
        try:
            with storage_call(self._what):
                self._client().update_entity(
                    tombstone,
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise AuthFlowReplayed("This sign-in was completed by another request") from None
        return taken

    def purge_expired(self, now: datetime.datetime | None = None, *, page_size: int = 100) -> int:
        """Delete flows (and tombstones) expired at ``now``; returns how many. Raises StorageUnavailable."""
        return purge_rows(self._client(), now or self._now(), self._what, page_size=page_size)

    def _client(self) -> TableClient:
        return self._table.client()

    def _open(self, row: str, entity: Mapping[str, Any]) -> TakenFlow:
        blob, version = join_binary(entity, _DATA), entity.get("KeyVersion")
        try:
            if blob is None or not isinstance(version, str):
                raise UnreadableRecordError("no sealed flow")
            payload = json.loads(self._keys.open(version, blob, aad=associated_data(_KIND, _SCHEMA, row)))
            flow, extra = payload["flow"], payload["extra"]
            if payload.get("schema") != _SCHEMA or not isinstance(flow, dict) or not isinstance(extra, dict):
                raise UnreadableRecordError("malformed flow")
        except (UnreadableRecordError, ValueError, KeyError, TypeError):
            logger.warning("A sign-in flow row failed to open (tampered, or sealed by a retired key version)")
            raise AuthFlowUnknown("This sign-in can no longer be completed") from None
        return TakenFlow(flow=flow, extra=extra)


def _binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode("ascii")).hexdigest()
