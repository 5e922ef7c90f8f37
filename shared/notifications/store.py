"""The ingestion's table (``NOTIFICATION_TABLE``): one row per watched target (each in-scope mailbox, and
the tenant's users) with its Graph subscription, delta link and status, an index from subscription id to
target, and the de-duplication rows of the worker (:mod:`shared.notifications.ledger`).

Rows (``PartitionKey`` / ``RowKey``):

* ``target-{tenant}`` / ``mailbox-{object id}`` or ``users``: :class:`Target`;
* ``sub-{tenant}`` / ``{subscription id}``: the target's row key (the worker's point read);
* ``msg-{tenant}-{mailbox}`` and ``seen-{tenant}``: the ledger's.

Writers touch disjoint columns with merges (the timer the subscription's, the worker the notification,
catch-up and delta columns), so neither overwrites the other's news. Client states are never stored, only
their SHA-256. Storage failures raise ``StorageUnavailable`` (503).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from shared.core.records import Record
from shared.storage.tables import EnsuredTable, storage_call

if TYPE_CHECKING:
    from azure.data.tables import TableClient

USERS_TARGET = "users"


def mailbox_target(object_id: str) -> str:
    return f"mailbox-{object_id.lower()}"


class Target(Record):
    """One watched target and its subscription (module docstring). Times are UTC."""

    tenant_id: str
    key: str
    mailbox: str | None = None
    upn: str | None = None
    subscription_id: str | None = None
    resource: str | None = None
    client_state_hash: str | None = None
    key_version: str | None = None
    #: A rich subscription's ``encryptionCertificateId`` (the certificate's Key Vault version).
    certificate_id: str | None = None
    expires_at: datetime.datetime | None = None
    status: str = "new"
    since: datetime.datetime | None = None
    delta_link: str | None = None
    last_notification: datetime.datetime | None = None
    last_catch_up: datetime.datetime | None = None
    last_lifecycle: str | None = None
    last_error: str | None = None
    catch_up_requested: bool = False

    @property
    def is_users(self) -> bool:
        return self.key == USERS_TARGET

    def to_json(self) -> dict[str, Any]:
        """The operators' view (``/subscriptions``): no delta link, no client state fingerprint."""

        def when(value: datetime.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "target": "users" if self.is_users else "mailbox",
            "mailbox": self.mailbox,
            "userPrincipalName": self.upn,
            "subscriptionId": self.subscription_id,
            "resource": self.resource,
            "encryptionCertificateId": self.certificate_id,
            "expirationDateTime": when(self.expires_at),
            "status": self.status,
            "lastNotification": when(self.last_notification),
            "lastCatchUp": when(self.last_catch_up),
            "lastLifecycleEvent": self.last_lifecycle,
            "lastError": self.last_error,
        }


_COLUMNS = {
    "mailbox": "Mailbox",
    "upn": "Upn",
    "subscription_id": "SubscriptionId",
    "resource": "Resource",
    "client_state_hash": "ClientStateHash",
    "key_version": "KeyVersion",
    "certificate_id": "CertificateId",
    "expires_at": "ExpiresAt",
    "status": "Status",
    "since": "Since",
    "delta_link": "DeltaLink",
    "last_notification": "LastNotification",
    "last_catch_up": "LastCatchUp",
    "last_lifecycle": "LastLifecycle",
    "last_error": "LastError",
    "catch_up_requested": "CatchUpRequested",
}


def _target(entity: Any, tenant_id: str) -> Target:
    values: dict[str, Any] = {}
    for field, column in _COLUMNS.items():
        value = entity.get(column)
        if value is not None and value != "":
            values[field] = value
    return Target(tenant_id=tenant_id, key=str(entity["RowKey"]), **values)


class NotificationTable:
    """Targets, subscription index and ledger rows in one table (module docstring). Thread-safe."""

    def __init__(self, table: EnsuredTable) -> None:
        self._table = table
        self._what = f"using the notification table '{table.name}'"

    def client(self) -> TableClient:
        return self._table.client()

    @property
    def what(self) -> str:
        return self._what

    def targets(self, tenant_id: str) -> list[Target]:
        """Every target of ``tenant_id`` (one partition)."""
        with storage_call(self._what):
            entities = self.client().query_entities(
                "PartitionKey eq @pk", parameters={"pk": f"target-{tenant_id}"}
            )
            return [_target(entity, tenant_id) for entity in entities]

    def target(self, tenant_id: str, key: str) -> Target | None:
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            with storage_call(self._what):
                entity = self.client().get_entity(f"target-{tenant_id}", key)
        except ResourceNotFoundError:
            return None
        return _target(entity, tenant_id)

    def update(self, tenant_id: str, key: str, **changes: Any) -> None:
        """Merge ``changes`` (Target field names; None clears) into the target's row, creating it."""
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        entity: dict[str, Any] = {"PartitionKey": f"target-{tenant_id}", "RowKey": key}
        for field, value in changes.items():
            entity[_COLUMNS[field]] = "" if value is None else value
        with storage_call(self._what):
            self.client().upsert_entity(entity, mode=UpdateMode.MERGE)

    def delete(self, target: Target) -> None:
        with storage_call(self._what):
            self.client().delete_entity(f"target-{target.tenant_id}", target.key)
            if target.subscription_id:
                self.client().delete_entity(f"sub-{target.tenant_id}", target.subscription_id)

    def index(self, tenant_id: str, subscription_id: str, key: str) -> None:
        """Remember that ``subscription_id`` watches target ``key``."""
        with storage_call(self._what):
            self.client().upsert_entity(
                {"PartitionKey": f"sub-{tenant_id}", "RowKey": subscription_id, "Target": key}
            )

    def unindex(self, tenant_id: str, subscription_id: str) -> None:
        with storage_call(self._what):
            self.client().delete_entity(f"sub-{tenant_id}", subscription_id)

    def by_subscription(self, tenant_id: str, subscription_id: str) -> Target | None:
        """The target ``subscription_id`` watches (two point reads), None if none (a stale or foreign id)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            with storage_call(self._what):
                entity = self.client().get_entity(f"sub-{tenant_id}", subscription_id)
        except ResourceNotFoundError:
            return None
        target = self.target(tenant_id, str(entity.get("Target", "")))
        if target is None or target.subscription_id != subscription_id:
            return None
        return target
