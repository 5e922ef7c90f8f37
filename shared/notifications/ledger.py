"""The worker's memory of what it did, in the notification table: which notifications it has handled
(``seen``, per resource, change type and ETag) and, per message, whether its event went out (the ledger).

The ledger is what makes events come out once. Every path to an event (a notification, its duplicates,
Graph's retries, a redelivered work message after a crash, a delta catch-up) goes through
:meth:`Ledger.claim` for the message's row ``msg-{tenant}-{mailbox}`` / ``sha256(message id)``:

* no row: it is created ``pending`` with a lease (an insert: of two concurrent workers one wins);
* ``published`` or ``skipped``: nothing to do;
* ``pending`` with a live lease: another worker is on it: :class:`ClaimHeldError` (the work message is
  retried after the queue's visibility timeout, and then finds it done);
* ``pending`` or ``sending`` with a lapsed lease (its worker died): taken over with an ETag-conditioned
  write (a ``sending`` row's staged event comes with the claim).

The claimant reads the message, **stages** the event on the row (``sending``, the exact bytes, with the
same ETag condition: :meth:`Ledger.stage`), sends it and then records ``published`` (the staged copy is
cleared). A claimant that takes over a lapsed ``sending`` row sends the staged bytes again without a second
read. The one window no producer can close with Azure Storage queues (a queue cannot take part in a
transaction, and its message ids are the service's, so a lost answer to a send cannot be looked up) is a
worker dying after the queue accepted the event and before the ``published`` write: the message is then
sent again when its lease lapses, and that copy is **byte-identical** (same ``eventId``, same content),
so a consumer that keeps ids drops it (docs/change-notifications.md states the guarantee).

``seen`` rows only save work (a Graph read and an audit record per duplicate); they are written after the
notification was handled, so a crash never makes the worker skip one it did not finish.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from typing import Any

from shared.core.errors import GraphFunctionsError
from shared.core.records import Record
from shared.notifications.store import NotificationTable
from shared.storage.tables import storage_call

#: How long a claim holds a message (a worker reads it and sends one event well inside it).
LEASE_SECONDS = 60
#: How long a handled notification is remembered (Graph retries for up to 4 hours).
SEEN_HOURS = 6


class ClaimHeldError(GraphFunctionsError):
    """Another worker holds the message's claim: retry the work later (503)."""

    status = 503
    default_code = "message_claimed"


class Claim(Record):
    """A held claim: the row, the ETag of the write that took it, and the event staged by an earlier
    claimant that died before recording it (:meth:`Ledger.stage`; None when nothing was staged)."""

    partition: str
    row: str
    etag: str
    staged: str | None = None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_id(tenant_id: str, mailbox: str, message_id: str) -> str:
    """The event's stable id: the same message gives the same id on every path."""
    return _hash(f"{tenant_id}|{mailbox.lower()}|{message_id}")[:32]


class Ledger:
    """Seen notifications and per-message claims (module docstring). Thread-safe."""

    def __init__(
        self,
        table: NotificationTable,
        *,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._table = table
        self._now = now

    # -- seen notifications -----------------------------------------------------------------------------

    def _seen_key(self, tenant_id: str, resource: str, change: str, etag: str) -> tuple[str, str]:
        return f"seen-{tenant_id}", _hash(f"{resource.lower()}|{change}|{etag}")

    def seen(self, tenant_id: str, resource: str, change: str, etag: str | None) -> bool:
        """True when this notification (same resource, change type and ETag) was handled already. Without
        an ETag nothing is known to be a duplicate (False)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        if not etag:
            return False
        partition, row = self._seen_key(tenant_id, resource, change, etag)
        try:
            with storage_call(self._table.what):
                self._table.client().get_entity(partition, row, select=["PartitionKey"])
        except ResourceNotFoundError:
            return False
        return True

    def mark_seen(self, tenant_id: str, resource: str, change: str, etag: str | None) -> None:
        if not etag:
            return
        partition, row = self._seen_key(tenant_id, resource, change, etag)
        expires = self._now() + datetime.timedelta(hours=SEEN_HOURS)
        with storage_call(self._table.what):
            self._table.client().upsert_entity(
                {"PartitionKey": partition, "RowKey": row, "ExpiresAt": expires}
            )

    # -- per-message claims -----------------------------------------------------------------------------

    def claim(self, tenant_id: str, mailbox: str, message_id: str) -> Claim | None:
        """Take the message's claim; None when its event is already out (or it was skipped).

        Raises:
            ClaimHeldError: another worker's lease is live.
            StorageUnavailable.
        """
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import (  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        partition, row = f"msg-{tenant_id}-{mailbox.lower()}", _hash(message_id)
        client = self._table.client()
        for _ in range(5):
            now = self._now()
            lease = {"State": "pending", "LeaseUntil": now + datetime.timedelta(seconds=LEASE_SECONDS)}
            try:
                with storage_call(self._table.what):
                    entity = client.get_entity(partition, row)
            except ResourceNotFoundError:
                try:
                    with storage_call(self._table.what):
                        written = client.create_entity({"PartitionKey": partition, "RowKey": row, **lease})
                except ResourceExistsError:
                    continue
                return Claim(partition=partition, row=row, etag=str(written["etag"]))
            state = entity.get("State")
            if state in ("published", "skipped"):
                return None
            until = entity.get("LeaseUntil")
            if isinstance(until, datetime.datetime) and until > now:
                raise ClaimHeldError(
                    "Another worker is publishing this message's event", retry_after=LEASE_SECONDS
                )
            staged = entity.get("Event") if state == "sending" else None
            if isinstance(staged, str) and staged:
                lease["State"] = "sending"  # the staged event is kept: the new claimant sends it as it is
            else:
                staged = None
            try:
                with storage_call(self._table.what):
                    written = client.update_entity(
                        {"PartitionKey": partition, "RowKey": row, **lease},
                        mode=UpdateMode.MERGE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except ResourceModifiedError:
                continue
            return Claim(partition=partition, row=row, etag=str(written["etag"]), staged=staged)
        raise ClaimHeldError("The message's claim kept changing", retry_after=LEASE_SECONDS)

    def stage(self, claim: Claim, event: str) -> Claim | None:
        """Keep the event about to be sent on the claim's row (``sending``), so a worker that takes over
        after this one died sends exactly these bytes again instead of reading the message a second time.
        Returns the claim as it now holds (new ETag), None when another worker took the message over.

        Raises:
            StorageUnavailable.
        """
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        entity = {"PartitionKey": claim.partition, "RowKey": claim.row, "State": "sending", "Event": event}
        try:
            with storage_call(self._table.what):
                written = self._table.client().update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=claim.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceModifiedError:
            return None
        return claim._replace(etag=str(written["etag"]), staged=event)

    def finish(self, claim: Claim, state: str, **columns: Any) -> bool:
        """Record the claim's outcome (``published`` or ``skipped``) if the claim still holds; False when
        another worker took the message over meanwhile (its lease had lapsed).

        Raises:
            StorageUnavailable.
        """
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        entity = {
            "PartitionKey": claim.partition,
            "RowKey": claim.row,
            "State": state,
            "At": self._now(),
            **columns,
        }
        try:
            with storage_call(self._table.what):
                self._table.client().update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=claim.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceModifiedError:
            return False
        return True

    def state(self, tenant_id: str, mailbox: str, message_id: str) -> str | None:
        """The message's ledger state (None: never claimed)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            with storage_call(self._table.what):
                entity = self._table.client().get_entity(
                    f"msg-{tenant_id}-{mailbox.lower()}", _hash(message_id)
                )
        except ResourceNotFoundError:
            return None
        value = entity.get("State")
        return value if isinstance(value, str) else None
