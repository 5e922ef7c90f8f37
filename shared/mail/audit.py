"""The audit trail of mailbox reads: one Table Storage row and one structured log line per read attempt.

Rows (table ``AUDIT_TABLE``) are append-only: the app only ever inserts (``create_entity``; no upsert, no
update, no delete route). They are partitioned by UTC day (``PartitionKey`` = ``YYYYMMDD``) so a day's reads
list from one partition, and their ``RowKey`` is the inverted time in microseconds plus a random suffix, so
a partition lists newest first in key order with no sort.

Every field is metadata: who (caller kind, app id, user object id and UPN), whose mailbox (as typed, and
its owner's object id and UPN at read time), which endpoint
(and message id), how many messages, outcome and error code, request id, time. Subjects, bodies and the
addresses of correspondents are never recorded, in the table or in the log line.

A record that cannot be written raises :class:`~shared.core.errors.AuditUnavailable` (503): the read it
describes is refused rather than served unaudited (:mod:`shared.mail.reads`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.core.errors import AuditUnavailable, StorageUnavailable
from shared.core.records import Record
from shared.identity.principal import Principal
from shared.mail.scope import MailboxOwner
from shared.storage.tables import EnsuredTable, storage_call

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

logger = logging.getLogger("shared.mail.audit")

UTC = dt.UTC
#: Larger than any microsecond timestamp before the year 5000, so inverted keys stay positive and 17 wide.
_INVERT_FROM = 99_999_999_999_999_999
OUTCOMES = ("allowed", "denied", "failed")


class AuditEntry(Record):
    """One read attempt. ``outcome`` is ``allowed`` (data returned), ``denied`` (a 401/403 refusal) or
    ``failed`` (any other error); ``error_code`` is the API's code for the last two. ``mailbox`` is as the
    caller typed it; ``owner`` whose mailbox it is (None when the attempt ended before it was resolved)."""

    actor: Principal
    mailbox: str
    owner: MailboxOwner | None
    endpoint: str
    outcome: str
    status: int
    request_id: str
    message_count: int = 0
    message_id: str | None = None
    folder: str | None = None
    error_code: str | None = None
    channel: str = "api"


class AuditRow(Record):
    """A stored record as read back: its keys (for paging) and its API shape."""

    partition: str
    row: str
    document: dict[str, Any]


def day_key(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d")


def row_key_bound(when: dt.datetime) -> str:
    """The inverted-time prefix of rows written at ``when`` (newer times give smaller keys)."""
    micros = int(when.astimezone(UTC).timestamp() * 1_000_000)
    return f"{_INVERT_FROM - micros:017d}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _document(entity: dict[str, Any]) -> dict[str, Any]:
    when = entity.get("Time")
    count = entity.get("MessageCount")
    status = entity.get("Status")
    return {
        "time": when.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if isinstance(when, dt.datetime)
        else None,
        "actor": {
            "kind": _text(entity.get("ActorKind")),
            "appId": _text(entity.get("ActorAppId")),
            "objectId": _text(entity.get("ActorObjectId")),
            "userPrincipalName": _text(entity.get("ActorUpn")),
        },
        "mailbox": _text(entity.get("Mailbox")),
        "mailboxObjectId": _text(entity.get("MailboxObjectId")),
        "mailboxUserPrincipalName": _text(entity.get("MailboxUpn")),
        "endpoint": _text(entity.get("Endpoint")),
        "folder": _text(entity.get("Folder")),
        "messageId": _text(entity.get("MessageId")),
        "messageCount": count if isinstance(count, int) else 0,
        "outcome": _text(entity.get("Outcome")),
        "status": status if isinstance(status, int) else None,
        "errorCode": _text(entity.get("ErrorCode")),
        "requestId": _text(entity.get("RequestId")),
        "channel": _text(entity.get("Channel")),
    }


class AuditStore:
    """Writes and lists audit records in Table Storage (module docstring). Thread-safe."""

    def __init__(
        self,
        service: TableServiceClient,
        table: str,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
    ) -> None:
        self._service = service
        self._table = EnsuredTable(service, table)
        self._now = now

    @property
    def table_name(self) -> str:
        return self._table.name

    def record(self, entry: AuditEntry) -> None:
        """Insert one record and write its log line.

        Raises:
            AuditUnavailable: storage failed or refused the insert (the caller refuses the read).
        """
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        when = self._now()
        entity: dict[str, Any] = {
            "PartitionKey": day_key(when),
            "RowKey": f"{row_key_bound(when)}-{secrets.token_hex(6)}",
            "Time": when,
            "ActorKind": entry.actor.kind,
            "ActorAppId": entry.actor.app_id or "",
            # A service is named by its app id; its service principal's object id is not recorded.
            "ActorObjectId": (
                "" if entry.actor.kind == "application" else entry.actor.object_id or ""
            ).lower(),
            "ActorUpn": (entry.actor.user_principal_name or "").lower(),
            "Mailbox": entry.mailbox,
            "MailboxObjectId": entry.owner.object_id if entry.owner is not None else "",
            "MailboxUpn": entry.owner.user_principal_name if entry.owner is not None else "",
            "Endpoint": entry.endpoint,
            "Folder": entry.folder or "",
            "MessageId": entry.message_id or "",
            "MessageCount": entry.message_count,
            "Outcome": entry.outcome,
            "Status": entry.status,
            "ErrorCode": entry.error_code or "",
            "RequestId": entry.request_id,
            "Channel": entry.channel,
        }
        started = time.perf_counter()
        try:
            try:
                self._insert(entity)
            except ResourceNotFoundError:
                # The table was deleted after this process created it: create it again, once.
                self._table = EnsuredTable(self._service, self._table.name)
                self._insert(entity)
        except (StorageUnavailable, ResourceExistsError, ResourceNotFoundError) as exc:
            logger.error(
                "Mail audit write FAILED; the read is refused (request %s): %s", entry.request_id, exc
            )
            raise AuditUnavailable(
                f"The audit record of a mailbox read could not be written to table '{self._table.name}'"
            ) from exc
        written_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "mail audit %s (written in %.1f ms)",
            json.dumps(_log_fields(entity), separators=(",", ":")),
            written_ms,
        )

    def _insert(self, entity: dict[str, Any]) -> None:
        with storage_call(f"writing an audit record to table '{self._table.name}'"):
            self._table.client().create_entity(entity)

    def query(
        self,
        *,
        start: dt.datetime,
        end: dt.datetime,
        partition: str,
        after: str | None,
        filters: dict[str, str],
    ) -> Any:
        """Rows of one day partition between ``start`` and ``end`` (newest first), after row key ``after``,
        matching ``filters`` (property -> value, or ``"Actor"`` for any actor field; ``MailboxObjectId``
        and/or ``Mailbox``, see :func:`shared.mail.audit_query.list_audit`). Returns an iterator."""
        lo = row_key_bound(end)
        hi = row_key_bound(start) + "~"  # rows written at `start` sort before "~"
        clauses = ["PartitionKey eq @pk", "RowKey ge @lo", "RowKey le @hi"]
        parameters: dict[str, Any] = {"pk": partition, "lo": lo, "hi": hi}
        if after is not None:
            clauses.append("RowKey gt @after")
            parameters["after"] = after
        if "MailboxObjectId" in filters:
            # Records name the owner's object id; records of attempts refused before the owner was
            # resolved (and records written before owners were recorded) only the mailbox as typed.
            clauses.append("( MailboxObjectId eq @owner or Mailbox eq @owner or Mailbox eq @typed )")
            parameters["owner"] = filters["MailboxObjectId"]
            parameters["typed"] = filters.get("Mailbox", filters["MailboxObjectId"])
        elif "Mailbox" in filters:
            clauses.append("( MailboxUpn eq @typed or Mailbox eq @typed )")
            parameters["typed"] = filters["Mailbox"]
        if "Actor" in filters:
            # The SDK substitutes @names split on spaces: keep the parentheses apart.
            clauses.append("( ActorAppId eq @actor or ActorObjectId eq @actor or ActorUpn eq @actor )")
            parameters["actor"] = filters["Actor"]
        with storage_call(f"listing table '{self._table.name}'"):
            client = self._table.client()
        return client.query_entities(" and ".join(clauses), parameters=parameters, results_per_page=100)

    def rows(self, iterator: Any, limit: int) -> list[AuditRow]:
        """Up to ``limit`` rows from a :meth:`query` iterator (storage errors as StorageUnavailable)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        found: list[AuditRow] = []
        try:
            with storage_call(f"listing table '{self._table.name}'"):
                for entity in iterator:
                    found.append(
                        AuditRow(str(entity["PartitionKey"]), str(entity["RowKey"]), _document(entity))
                    )
                    if len(found) >= limit:
                        break
        except ResourceNotFoundError:
            return []  # no table (deleted since): no records
        return found


def _log_fields(entity: dict[str, Any]) -> dict[str, Any]:
    """The log line's fields: the record without time objects (the log has its own time)."""
    return {
        "actorKind": entity["ActorKind"],
        "actorAppId": entity["ActorAppId"] or None,
        "actorObjectId": entity["ActorObjectId"] or None,
        "actorUpn": entity["ActorUpn"] or None,
        "mailbox": entity["Mailbox"],
        "mailboxObjectId": entity["MailboxObjectId"] or None,
        "mailboxUpn": entity["MailboxUpn"] or None,
        "endpoint": entity["Endpoint"],
        "folder": entity["Folder"] or None,
        "messageId": entity["MessageId"] or None,
        "messageCount": entity["MessageCount"],
        "outcome": entity["Outcome"],
        "status": entity["Status"],
        "errorCode": entity["ErrorCode"] or None,
        "requestId": entity["RequestId"],
        "channel": entity["Channel"],
        "row": f"{entity['PartitionKey']}/{entity['RowKey']}",
    }
