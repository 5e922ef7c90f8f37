"""Timer schedule status (Last / Next / LastUpdated), stored like the real host.

With ``AzureWebJobsStorage`` set to a connection string (for example
``UseDevelopmentStorage=true`` for Azurite), each monitored timer's status is
the blob ``azure-webjobs-hosts/timers/{hostId}/Host.Functions.{name}/status``
holding ``{"Last": ..., "Next": ..., "LastUpdated": ...}``, the path and JSON
that the Functions host's ``StorageScheduleMonitor`` uses, so statuses written
by ``func start`` and by devhost are interchangeable. Without storage the
status lives in memory for the life of the process (past-due detection across
restarts is then impossible), with a warning.

``check_past_due`` is the host's ``ScheduleMonitor.CheckPastDueAsync``: a
recorded ``Next`` in the past makes the timer past due at start-up, unless the
schedule changed since (then ``Next`` is recomputed and nothing is past due).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import socket
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio.to_thread
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from devhost.ncrontab import Schedule

__all__ = [
    "BlobStatusStore",
    "MemoryStatusStore",
    "ScheduleStatus",
    "StatusStore",
    "check_past_due",
    "create_store",
    "host_id",
    "timer_lookup_name",
]

HOST_CONTAINER = "azure-webjobs-hosts"
_NEVER = "0001-01-01T00:00:00"
_log = logging.getLogger("devhost")


@dataclass(frozen=True)
class ScheduleStatus:
    """``last``/``last_updated`` are None for the host's "never" (DateTime.MinValue)."""

    next: dt.datetime
    last: dt.datetime | None = None
    last_updated: dt.datetime | None = None

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    def as_dict(self) -> dict[str, str]:
        """The shape of ``func.TimerRequest.schedule_status`` and of the blob."""
        return {
            "Last": _format(self.last),
            "Next": _format(self.next),
            "LastUpdated": _format(self.last_updated),
        }

    @classmethod
    def from_json(cls, text: str, tz: dt.tzinfo) -> ScheduleStatus:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise TypeError("a schedule status must be a JSON object")
        next_occurrence = _parse(document.get("Next"), tz)
        if next_occurrence is None:
            raise ValueError("a schedule status needs 'Next'")
        return cls(
            next=next_occurrence,
            last=_parse(document.get("Last"), tz),
            last_updated=_parse(document.get("LastUpdated"), tz),
        )


class StatusStore(Protocol):
    description: str

    async def get(self, timer_name: str) -> ScheduleStatus | None: ...

    async def update(self, timer_name: str, status: ScheduleStatus) -> None: ...


class MemoryStatusStore:
    description = "in memory (set AzureWebJobsStorage to keep it across restarts)"

    def __init__(self) -> None:
        self._statuses: dict[str, ScheduleStatus] = {}

    async def get(self, timer_name: str) -> ScheduleStatus | None:
        return self._statuses.get(timer_name)

    async def update(self, timer_name: str, status: ScheduleStatus) -> None:
        self._statuses[timer_name] = status


class BlobStatusStore:
    """Status blobs in ``azure-webjobs-hosts``; blocking SDK calls run in threads."""

    def __init__(self, container: ContainerClient, host: str, tz: dt.tzinfo) -> None:
        self._container = container
        self._host_id = host
        self._tz = tz
        self._container_ready = False
        self.description = f"blob {HOST_CONTAINER}/timers/{host}/<timer>/status"

    @classmethod
    def from_connection_string(cls, connection_string: str, host: str, tz: dt.tzinfo) -> BlobStatusStore:
        # Blob's default retry waits 15 s, then 18 s more: with storage down, one status read would hold the
        # timer loop (and a SIGTERM) for half a minute. Short waits, as the app's own clients use.
        service = BlobServiceClient.from_connection_string(
            connection_string,
            connection_timeout=3,
            read_timeout=10,
            retry_total=2,
            initial_backoff=1,
            increment_base=2,
        )
        return cls(service.get_container_client(HOST_CONTAINER), host, tz)

    def blob_name(self, timer_name: str) -> str:
        return f"timers/{self._host_id}/{timer_name}/status"

    async def get(self, timer_name: str) -> ScheduleStatus | None:
        return await anyio.to_thread.run_sync(self._get, timer_name, abandon_on_cancel=True)

    async def update(self, timer_name: str, status: ScheduleStatus) -> None:
        await anyio.to_thread.run_sync(self._update, timer_name, status, abandon_on_cancel=True)

    def _get(self, timer_name: str) -> ScheduleStatus | None:
        try:
            data = self._container.download_blob(self.blob_name(timer_name)).readall()
        except ResourceNotFoundError:
            return None
        try:
            return ScheduleStatus.from_json(data.decode("utf-8-sig"), self._tz)
        except ValueError as error:
            _log.warning("Ignoring unreadable timer status of '%s': %s", timer_name, error)
            return None

    def _update(self, timer_name: str, status: ScheduleStatus) -> None:
        if not self._container_ready:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._container_ready = True
        self._container.upload_blob(
            self.blob_name(timer_name),
            status.to_json().encode("utf-8"),
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json"),
        )


def create_store(environ: Mapping[str, str], host: str, tz: dt.tzinfo) -> StatusStore:
    connection_string = environ.get("AzureWebJobsStorage", "").strip()
    if not connection_string:
        if any(name.startswith("AzureWebJobsStorage__") for name in environ):
            _log.warning(
                "Identity-based AzureWebJobsStorage__* settings are not supported "
                "by devhost; timer status is kept in memory"
            )
        else:
            _log.warning(
                "AzureWebJobsStorage is not set: timer schedule status is kept in "
                "memory, so past-due timers are not detected across restarts"
            )
        return MemoryStatusStore()
    try:
        return BlobStatusStore.from_connection_string(connection_string, host, tz)
    except (ValueError, AzureError) as error:
        _log.error(
            "AzureWebJobsStorage is not a usable connection string (%s); timer status is kept in memory",
            type(error).__name__,
        )
        return MemoryStatusStore()


async def check_past_due(
    store: StatusStore,
    timer_name: str,
    now: dt.datetime,
    schedule: Schedule,
    last_status: ScheduleStatus | None,
) -> tuple[dt.timedelta, ScheduleStatus]:
    """How late the timer is at start-up, and the status to continue with."""
    if last_status is None:
        # Never recorded: record the next occurrence so that it cannot be missed.
        status = ScheduleStatus(next=schedule.next_after(now), last_updated=now)
        await store.update(timer_name, status)
    else:
        status = last_status
        reference = last_status.last or last_status.last_updated or now
        expected = schedule.next_after(reference)
        if last_status.next != expected:
            # The schedule changed since the status was written: start afresh
            # rather than report a past-due occurrence of the old schedule.
            if now > expected:
                expected, reference = schedule.next_after(now), now
            status = ScheduleStatus(next=expected, last=None, last_updated=reference)
            await store.update(timer_name, status)
    late = now - status.next
    return max(dt.timedelta(0), late), status


def timer_lookup_name(function_name: str) -> str:
    """The name the host keys timer status by (``Host.Functions.<name>``)."""
    return f"Host.Functions.{function_name}"


def host_id(environ: Mapping[str, str], app_dir: Path) -> str:
    """The host id: ``AzureFunctionsWebHost__hostid``, else the site name, else
    ``<machine>-<hash of the app directory>`` (as Core Tools derives it locally),
    lower case, at most 32 characters."""
    configured = environ.get("AzureFunctionsWebHost__hostid", "").strip()
    if configured:
        return configured.lower()
    site = environ.get("WEBSITE_SITE_NAME", "").strip()
    if site:
        base = site
    else:
        digest = zlib.crc32(str(app_dir.resolve()).encode("utf-8"))
        base = f"{socket.gethostname()}-{digest}"
    cleaned = re.sub(r"[^a-z0-9-]+", "-", base.lower())
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:32]
    return cleaned.strip("-") or "devhost"


def _format(moment: dt.datetime | None) -> str:
    return _NEVER if moment is None else moment.isoformat()


def _parse(value: object, tz: dt.tzinfo) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a timestamp")
    moment = dt.datetime.fromisoformat(value)
    if moment.year == 1:
        return None  # DateTime.MinValue: "never"
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
