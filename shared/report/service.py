"""What the report's triggers call: start runs (timer, queue message, on-demand request), read summaries,
status and history, and link the CSVs. Built once per process by :meth:`shared.app.services.Runtime.reports`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.core.errors import BadRequest, GraphFunctionsError, NotFound, ReportCompleted
from shared.core.records import Record
from shared.report import layout
from shared.report.links import CsvLinks
from shared.report.run import ReportRunner, RunRequest, RunResult
from shared.report.store import ReportStore, _storage

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

logger = logging.getLogger(__name__)

CSV_FILES = frozenset({"users.csv", "changes.csv"})
#: A run still "queued" after this long was lost (poisoned, or its queue cleared): queue it again.
_QUEUED_FOR = dt.timedelta(minutes=10)
HISTORY_DAYS = 30


class Accepted(Record):
    """What ``POST /api/reports/users`` answers: 202 with the run queued, or 200 when already complete."""

    status_code: int
    status: dict[str, Any]


def timer_report_date(
    past_due: bool, schedule_status: Mapping[str, Any] | None, now: dt.datetime, zone: dt.tzinfo
) -> dt.date:
    """The report date of a timer firing: today in the schedule's zone; for a past-due firing, the date of
    the occurrence that was missed (the schedule status's ``Next``), so a late run still produces that
    day's report, once."""
    if past_due and schedule_status:
        missed = schedule_status.get("Next")
        if isinstance(missed, str):
            try:
                moment = dt.datetime.fromisoformat(missed.replace("Z", "+00:00"))
            except ValueError:
                moment = None
            if moment is not None:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=zone)
                if moment <= now:
                    return moment.astimezone(zone).date()
    return now.astimezone(zone).date()


class ReportService:
    """Facade over the store, the runner, the links and the run queue."""

    def __init__(
        self,
        *,
        store: ReportStore,
        runner: ReportRunner,
        queue: Callable[[], QueueClient],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        message_extra: Mapping[str, str] | None = None,
    ) -> None:
        """``message_extra``: added to every queue message (the tenant a multi-tenant run is for)."""
        self.store = store
        self._extra = dict(message_extra or {})
        self.runner = runner
        self.links = CsvLinks(store, now=now)
        self._queue_factory = queue
        self._queue: QueueClient | None = None
        self._queue_lock = threading.Lock()
        self._now = now

    # -- runs -----------------------------------------------------------------------------------------------

    def run(self, request: RunRequest) -> RunResult:
        return self.runner.run(request)

    def request_run(self, date: dt.date, *, force: bool, requested_by: str | None) -> Accepted:
        """Queue an on-demand run of ``date`` (200 and the status when already complete and not forced).

        Raises:
            ReportCompleted: ``report_completed`` (409), a forced run of a past date whose report
                completed: the directory can only be read as it is today, so it would replace that day's
                report with today's (a past date whose report never completed is produced as usual).
            StorageUnavailable: the queue or the container is unreachable.
        """
        completed = self.store.exists(layout.blob(date, "summary.json"))
        if completed and not force:
            return Accepted(200, self.status(date))
        if completed and date < self.runner.today():
            raise ReportCompleted(
                f"The report of {date.isoformat()} is complete and that day is over: a re-run would replace "
                "it with today's directory, so past reports are kept as they were. Only today's report can "
                "be re-run (or a past date whose report never completed)."
            )
        run_id = str(uuid.uuid4())
        current = self.store.read_json(layout.blob(date, "status.json"))
        if current is not None and not force:
            state = current[0].get("state")
            if state == "queued" and not _older_than(current[0].get("queuedAt"), self._now(), _QUEUED_FOR):
                return Accepted(202, current[0])  # one already on its way (a lost one is queued again)
            if state == "running" and self.store.leased(layout.blob(date, "lock")):
                # A run holds the date. Queue a message anyway, without touching its status: if that run
                # dies, the message (redelivered while the lease lives) completes the report.
                self._send(
                    {"date": date.isoformat(), "force": False, "runId": run_id, "requestedBy": requested_by}
                )
                return Accepted(202, current[0])
        status = {
            "reportDate": date.isoformat(),
            "runId": run_id,
            "state": "queued",
            "trigger": "on-demand",
            "forced": force,
            "queuedAt": _iso(self._now()),
            "pages": 0,
            "users": 0,
            "retries": 0,
            "reason": None,
        }
        self.store.put_json(layout.blob(date, "status.json"), status)
        message = {"date": date.isoformat(), "force": force, "runId": run_id, "requestedBy": requested_by}
        try:
            self._send(message)
        except GraphFunctionsError:
            # Nothing was queued: a "queued" status left behind would answer every request for the next
            # ten minutes with a run that never comes. Put back what was there before.
            self._restore_status(date, current[0] if current is not None else None)
            raise
        logger.info("Report %s queued (run %s, forced %s)", date, run_id, force)
        return Accepted(202, status)

    def _restore_status(self, date: dt.date, previous: dict[str, Any] | None) -> None:
        name = layout.blob(date, "status.json")
        try:
            if previous is None:
                self.store.delete(name)
            else:
                self.store.put_json(name, previous)
        except GraphFunctionsError:
            # Storage is failing as a whole: the queued status then ages out (_QUEUED_FOR) and is re-queued.
            logger.warning("Report %s: the status of a run that could not be queued was not restored", date)

    def _send(self, message: dict[str, Any]) -> None:
        queue = self._queue_client()
        body = json.dumps({**message, **self._extra}).encode("utf-8")
        _storage("queueing the report run", lambda: queue.send_message(body))

    def run_message(self, body: bytes) -> RunResult:
        """Run what an on-demand queue message asks for.

        Raises:
            BadRequest: the message is not one this app wrote (it then ends in the poison queue).
        """
        try:
            message = json.loads(body)
            date = layout.parse_report_date(str(message["date"]))
            force = message.get("force") is True
            run_id = str(uuid.UUID(str(message.get("runId") or uuid.uuid4())))  # names a blob prefix
            requested_by = message.get("requestedBy")
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest("The report queue message is malformed") from exc
        return self.runner.run(
            RunRequest(
                date=date,
                trigger="on-demand",
                force=force,
                run_id=run_id,
                requested_by=requested_by if isinstance(requested_by, str) else None,
            )
        )

    def _queue_client(self) -> QueueClient:
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        with self._queue_lock:
            if self._queue is None:
                queue = self._queue_factory()

                def create() -> None:
                    with contextlib.suppress(ResourceExistsError):
                        queue.create_queue()

                _storage("creating the report queue", create)
                self._queue = queue
            return self._queue

    # -- reads ----------------------------------------------------------------------------------------------

    def summary(self, date: dt.date) -> dict[str, Any]:
        """The summary of the completed report of ``date``. Raises NotFound ``report_not_found``."""
        found = self.store.read_json(layout.blob(date, "summary.json"))
        if found is None:
            raise NotFound(f"There is no completed report for {date.isoformat()}", code="report_not_found")
        return found[0]

    def latest(self) -> dict[str, Any]:
        """The newest completed report's summary. Raises NotFound ``report_not_found`` when none exists."""
        for date in self.store.report_dates():
            found = self.store.read_json(layout.blob(date, "summary.json"))
            if found is not None:
                return found[0]
        raise NotFound("No report has been completed yet", code="report_not_found")

    def status(self, date: dt.date) -> dict[str, Any]:
        """State and progress of the latest run of ``date``. Raises NotFound ``report_not_found``."""
        found = self.store.read_json(layout.blob(date, "status.json"))
        if found is None:
            raise NotFound(f"No report run exists for {date.isoformat()}", code="report_not_found")
        status = found[0]
        if status.get("state") == "running" and not self.store.leased(layout.blob(date, "lock")):
            summary = self.store.read_json(layout.blob(date, "summary.json"))
            if summary is not None and summary[0].get("runId") == status.get("runId"):
                # The run committed its report; only its last status write was lost.
                return status | {"state": "completed"}
            # Nobody renews the lease: the run's host stopped or crashed mid-run.
            status = status | {
                "state": "interrupted",
                "reason": "The run stopped before completing (its host stopped or crashed); no partial "
                "report was published. The next trigger, or POST /api/reports/users, completes it.",
            }
        return status

    def history(self, days: int = HISTORY_DAYS) -> list[dict[str, Any]]:
        """Summaries of the completed reports of the last ``days`` days, oldest first."""
        newest = self._now().date()
        out = []
        for date in self.store.report_dates():
            if (newest - date).days >= days:
                break
            found = self.store.read_json(layout.blob(date, "summary.json"))
            if found is not None:
                out.append(found[0])
        return list(reversed(out))

    def csv_url(self, date: dt.date, name: str) -> str:
        if name not in CSV_FILES:
            raise NotFound("Reports have users.csv and changes.csv only", code="report_not_found")
        return self.links.url(date, name)


def _older_than(stamp: Any, now: dt.datetime, age: dt.timedelta) -> bool:
    try:
        moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return True
    return now - moment > age


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
