"""Every session of one person, so they can all be ended at once (a user disabled or deleted in Entra:
:mod:`shared.notifications.directory`).

Session rows are keyed by the hash of their cookie value and sealed, so the session table cannot be searched
by person. Each new session therefore also writes an index row in the same table: ``PartitionKey``
``person-{sha256(tenant|object id)}``, ``RowKey`` the session's row key, ``ExpiresAt`` the session's absolute
expiry (the cleanup timer purges it with the sessions). Ending a person's sessions reads that one partition
and deletes the sessions it names; the next request with such a cookie finds no session (signed out).

Sessions created before the index existed have no index row. The first time a person's sessions are ended
(in the directory reaction's worker, never on a request path) :meth:`PersonSessions.backfill` indexes them:
it reads every session row once, opens each with the session store's key ring (``owner_of``) and indexes
it under its person, then writes a marker row (``person-index`` / ``backfilled``) so later reactions skip
the scan. Every session created since the index exists is indexed when it is created, so once the marker
is written no unindexed session can remain. A scan that fails part-way writes no marker and is done again.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.storage.tables import EnsuredTable, hashed_key, partition_of, storage_call

if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger(__name__)


#: The marker row of a finished backfill (no ``ExpiresAt``: the cleanup timer leaves it).
BACKFILL_PARTITION, BACKFILL_ROW = "person-index", "backfilled"

#: A session row's owner and absolute expiry, from its row key and entity; None if it cannot be opened.
OwnerOf = Callable[[str, Mapping[str, Any]], "tuple[str, str, datetime.datetime] | None"]


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

    def backfill(self, kind: str, owner_of: OwnerOf) -> int:
        """Index the sessions (rows whose ``Kind`` is ``kind``) created before the index existed, once per
        table (module docstring); returns how many rows were indexed (0 once the marker is written).

        Raises:
            StorageUnavailable: no marker is written; the next call scans again (indexing is idempotent).
        """
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        client = self._client()
        try:
            with storage_call(self._what):
                client.get_entity(BACKFILL_PARTITION, BACKFILL_ROW)
        except ResourceNotFoundError:
            pass
        else:
            return 0
        indexed = 0
        with storage_call(self._what):
            rows = list(client.query_entities("Kind eq @kind", parameters={"kind": kind}))
        for entity in rows:
            row = str(entity["RowKey"])
            owner = owner_of(row, entity)
            if owner is None:  # unreadable (a retired key): never a live session
                continue
            self.add(owner[0], owner[1], row, owner[2])
            indexed += 1
        with storage_call(self._what):
            client.upsert_entity(
                {"PartitionKey": BACKFILL_PARTITION, "RowKey": BACKFILL_ROW, "Indexed": indexed}
            )
        logger.info("Person index backfill: %d sessions created before the index were indexed", indexed)
        return indexed

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
