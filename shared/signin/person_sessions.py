"""Every session of one person, so they can all be ended at once (a user disabled or deleted in Entra:
:mod:`shared.notifications.directory`).

Session rows are keyed by the hash of their cookie value and sealed, so the session table cannot be searched
by person. Each new session therefore also writes an index row in the same table: ``PartitionKey``
``person-{sha256(tenant|object id)}``, ``RowKey`` the session's row key, ``ExpiresAt`` the session's absolute
expiry (the cleanup timer purges it with the sessions). Ending a person's sessions reads that one partition
and deletes the sessions it names; the next request with such a cookie finds no session (signed out).
Sessions created before the index existed are not found (they end at their expiry).
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from shared.storage.tables import EnsuredTable, hashed_key, partition_of, storage_call

if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger(__name__)


def person_partition(tenant_id: str, object_id: str) -> str:
    return f"person-{hashed_key(f'{tenant_id.lower()}|{object_id.lower()}')}"


class PersonSessions:
    """The person index of the session table (module docstring). Thread-safe."""

    def __init__(self, table: EnsuredTable) -> None:
        self._table = table
        self._what = f"using the session table '{table.name}'"

    def _client(self) -> TableClient:
        return self._table.client()

    def add(self, tenant_id: str, object_id: str, session_row: str, expires_at: datetime.datetime) -> None:
        """Index the session row ``session_row`` under its person. Raises StorageUnavailable."""
        entity = {
            "PartitionKey": person_partition(tenant_id, object_id),
            "RowKey": session_row,
            "Kind": "person-index",
            "ExpiresAt": expires_at,
        }
        with storage_call(self._what):
            self._client().upsert_entity(entity)

    def end_all(self, tenant_id: str, object_id: str) -> int:
        """Delete every indexed session of the person; returns how many were ended. Idempotent.

        Raises:
            StorageUnavailable: what was deleted stays deleted; call again.
        """
        partition = person_partition(tenant_id, object_id)
        ended = 0
        with storage_call(self._what):
            client = self._client()
            rows = [
                str(entity["RowKey"])
                for entity in client.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]
                )
            ]
            for row in rows:
                client.delete_entity(partition_of(row), row)
                client.delete_entity(partition, row)
                ended += 1
        if ended:
            logger.info("Ended %d sessions of a person the directory disabled or deleted", ended)
        return ended
