"""Helpers for the app's own Table Storage rows (sessions, sign-in flows, audit): tables created on first
use, storage failures as typed errors, hashed keys and large binary values split across properties.

Table Storage has no TTL and no server-side encryption the app controls, so the stores built on these
helpers keep secrets out of keys (:func:`hashed_key`) and encrypt values before they get here.

Limits (Azure Table service data model): a property holds at most 64 KiB of binary data, an entity at most
1 MiB in all, 255 properties; ``PartitionKey``/``RowKey`` at most 1 KiB and none of ``/ \\ # ?``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shared.core.error_translation import from_storage_error

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

logger = logging.getLogger(__name__)

#: The wall clock of stored times (injectable for tests: expiry is persisted, so it is wall-clock time).
Now = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    """Now, timezone-aware UTC (what Table Storage stores for datetime properties)."""
    return datetime.datetime.now(datetime.UTC)


#: The largest binary property value Table Storage accepts.
PROPERTY_LIMIT = 64 * 1024
#: Chunks per value: 14 x 64 KiB leaves room under the 1 MiB entity limit for the other properties.
MAX_CHUNKS = 14
#: The largest value :func:`split_binary` stores.
MAX_VALUE_BYTES = PROPERTY_LIMIT * MAX_CHUNKS


class ValueTooLargeError(ValueError):
    """A value exceeds :data:`MAX_VALUE_BYTES` (the entity would be refused by Table Storage)."""


def hashed_key(secret: str) -> str:
    """The row key for a bearer secret (a session id, an OAuth ``state``): its SHA-256, hex.

    Someone who can read the table learns nothing usable: the secrets are 256-bit random values, so the
    hash cannot be reversed, and presenting the hash as a cookie finds no row.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def partition_of(row_key: str) -> str:
    """A partition key spreading hashed rows over 256 partitions (Table Storage scales per partition)."""
    return row_key[:2]


def split_binary(data: bytes, prefix: str) -> dict[str, bytes]:
    """``data`` as properties ``{prefix}0``, ``{prefix}1``, ... of at most 64 KiB each (at least one).

    Raises:
        ValueTooLargeError: more than :data:`MAX_VALUE_BYTES`.
    """
    if len(data) > MAX_VALUE_BYTES:
        raise ValueTooLargeError(
            f"{len(data)} bytes exceed the {MAX_VALUE_BYTES}-byte limit of one table row"
        )
    chunks = [data[i : i + PROPERTY_LIMIT] for i in range(0, len(data), PROPERTY_LIMIT)] or [b""]
    return {f"{prefix}{index}": chunk for index, chunk in enumerate(chunks)}


def join_binary(entity: Mapping[str, Any], prefix: str) -> bytes | None:
    """The value :func:`split_binary` stored under ``prefix``; None when absent or not binary."""
    parts: list[bytes] = []
    for index in range(MAX_CHUNKS):
        chunk = entity.get(f"{prefix}{index}")
        if chunk is None:
            break
        if not isinstance(chunk, bytes | bytearray):
            return None
        parts.append(bytes(chunk))
    return b"".join(parts) if parts else None


@contextlib.contextmanager
def storage_call(what: str) -> Iterator[None]:
    """Turn storage failures inside the block into the app's errors (``StorageUnavailable`` 503, or
    ``ConfigurationError`` for a refused account). The outcomes a store handles itself pass through
    unchanged: ``ResourceNotFoundError`` (404), ``ResourceExistsError`` (409) and ``ResourceModifiedError``
    (412).

    ``what`` names the operation in operator terms, e.g. ``"reading table 'sessions'"``; never data.
    """
    from azure.core.exceptions import (  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        AzureError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )

    try:
        yield
    except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
        raise
    except AzureError as exc:
        error = from_storage_error(exc, what=what)
        logger.warning("Storage failed while %s: %s (%s)", what, error.code, type(exc).__name__)
        raise error from exc


class EnsuredTable:
    """One table of the account, created on first use (once per process; Bicep creates it in Azure, the
    first request creates it in Azurite). Thread-safe; a failed creation is retried by the next caller."""

    def __init__(self, service: TableServiceClient, name: str) -> None:
        self.name = name
        self._service = service
        self._lock = threading.Lock()
        self._client: TableClient | None = None

    def client(self) -> TableClient:
        """The table's client, the table created if missing.

        Raises:
            StorageUnavailable: storage unreachable or failing while creating the table.
            ConfigurationError: storage refused the app.
        """
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = self._create()
            return self._client

    def _create(self) -> TableClient:
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        try:
            with storage_call(f"creating table '{self.name}'"):
                self._service.create_table(self.name)
                logger.info("Created table '%s'", self.name)
        except ResourceExistsError:
            pass  # Bicep (or another instance) created it: what we wanted
        return self._service.get_table_client(self.name)


def purge_rows(client: TableClient, now: datetime.datetime, what: str, *, page_size: int = 100) -> int:
    """Delete the rows of ``client``'s table whose ``ExpiresAt`` is before ``now``, a page at a time, each
    delete conditioned on the ETag the query returned (a row written since is no longer expired and
    stays). Returns how many were deleted.

    Raises:
        StorageUnavailable: storage failing (what was deleted so far stays deleted).
    """
    from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
    from azure.core.exceptions import ResourceModifiedError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    deleted = 0
    with storage_call(what):
        pages = client.query_entities(
            "ExpiresAt lt @now",
            parameters={"now": now},
            select=["PartitionKey", "RowKey", "ExpiresAt"],
            results_per_page=page_size,
        ).by_page()
        for page in pages:
            for entity in list(page):
                try:
                    client.delete_entity(
                        entity["PartitionKey"],
                        entity["RowKey"],
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    deleted += 1
                except ResourceModifiedError:
                    continue
    if deleted:
        logger.info("Deleted %d expired rows of table '%s'", deleted, client.table_name)
    return deleted
