"""One report run for one date: coordination across instances, progress, and the commit point.

* **One completed report per date.** ``summary.json`` is the commit point: written last, with
  ``If-None-Match: *`` (or, for a forced re-run, ``If-Match`` the ETag it replaces). A date whose summary
  exists is done: another trigger, instance or on-demand run returns at once (and only makes sure the mail
  went out). Each run writes its CSVs and delta state under its own prefix (``users/D/runs/R/``, see
  :mod:`shared.report.layout`) and the summary names that prefix, so the report switches from one run's
  files to another's only at the summary: a run that fails anywhere before leaves the report as it was.
* **One run at a time per date.** The run holds a 15 s lease on ``users/D/lock``, renewed in the background
  while it works. A second run finds the lease taken and returns ``in-progress`` without touching anything.
* **Crash and resume.** A run that dies leaves uncommitted blocks and no summary; its lease lapses within
  15 s and the next trigger produces the whole report again (pages are re-read from Graph: page tokens
  expire, so resuming a half-read listing could lose or repeat rows).
* **Failure is visible.** When Graph keeps throttling past the run's budget (10 x
  ``GRAPH_RETRY_BUDGET_SECONDS`` of waiting, and never past the host's ``functionTimeout``) or storage
  fails (a page, a block staged or committed, the summary itself), ``status.json`` says ``failed`` with the
  reason and no summary is written; the next trigger retries.
* **Forced re-runs** (``force``) are explicit and leave an audit line (log + ``users/D/audit/...``). They
  replace today's report only: the directory can only be read as it is now, so a completed report of a past
  date is never replaced (the service refuses with 409; a queued one is dropped here). A past date whose
  report never completed is produced as any run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from shared.core.errors import GraphFunctionsError
from shared.core.http import Transport
from shared.core.records import Record
from shared.core.retry_policy import worst_case_call_seconds
from shared.core.settings_parts import ReportSettings
from shared.graph.client import GraphClient
from shared.report import layout
from shared.report.cells import page_cells, user_columns
from shared.report.csv_blob import BlockCsvWriter
from shared.report.delta import CHANGE_COLUMNS, record_changes
from shared.report.listing import CSV_COLUMNS, PageFetcher, SignInAvailability, iter_user_pages
from shared.report.store import ReportStore
from shared.report.summary import Totals
from shared.report.transport import ReportTransport

logger = logging.getLogger(__name__)

Trigger = Literal["timer", "on-demand"]
Outcome = Literal["completed", "already-completed", "in-progress", "failed"]
#: What the run keeps back from functionTimeout for its last writes.
_MARGIN_SECONDS = 15.0
#: Without a bounded functionTimeout, the host's default outside the Consumption plan (30 min).
_DEFAULT_FUNCTION_TIMEOUT = 1800.0
#: Seconds between progress writes to status.json (a blob write per page would add a second per 100 pages).
_PROGRESS_EVERY = 1.0
#: Users written between two yields of the GIL (see :func:`_write_page`).
_SLICE_USERS = 250


class RunRequest(Record):
    """A run to make: the report date, what asked for it, whether it re-runs a completed report, who asked,
    and the run's id (a new uuid4 unless given)."""

    date: dt.date
    trigger: Trigger = "timer"
    force: bool = False
    requested_by: str | None = None
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", str(uuid.uuid4()))


class RunResult(Record):
    outcome: Outcome
    status: dict[str, Any]
    summary: dict[str, Any] | None = None
    error: GraphFunctionsError | None = None


GraphFactory = Callable[[Transport], GraphClient]
MailStep = Callable[[dt.date, dict[str, Any]], None]


class ReportRunner:
    """Produces reports (see module docstring). Thread-safe: each run has its own state."""

    def __init__(
        self,
        *,
        settings: ReportSettings,
        store: ReportStore,
        transport: Transport,
        graph_factory: GraphFactory,
        function_timeout: float | None,
        mail: MailStep | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        block_bytes: int | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._transport = transport
        self._graph_factory = graph_factory
        self._function_timeout = function_timeout or _DEFAULT_FUNCTION_TIMEOUT
        self._mail = mail
        self._now = now
        self._clock = clock
        self._sleep = sleep
        self._block_bytes = block_bytes

    @property
    def run_budget_seconds(self) -> float:
        """Total time one run may wait for Graph to recover (throttling, outages), across all its calls."""
        return max(10.0, 10 * self._settings.graph_retry_budget_seconds)

    def run(self, request: RunRequest) -> RunResult:
        """Produce the report of ``request.date`` unless it exists (or ``force``). Never raises for Graph
        failures (the result says ``failed``); raises StorageUnavailable when storage itself is down."""
        date = request.date
        summary_name = layout.blob(date, "summary.json")
        existing = self._store.read_json(summary_name)
        if existing is not None and not self._replaces(request):
            self._after_commit(date, existing[0])
            return RunResult("already-completed", self._status(date), summary=existing[0])
        with self._store.lease(layout.blob(date, "lock")) as lease:
            if lease is None:
                logger.info("Report %s is being produced by another run; nothing to do", date)
                return RunResult("in-progress", self._status(date))
            existing = self._store.read_json(summary_name)  # re-check under the lease
            if existing is not None and not self._replaces(request):
                return RunResult("already-completed", self._status(date), summary=existing[0])
            if request.force:
                self._audit(request, replaced=existing is not None)
            status = self._start_status(request)
            try:
                summary = self._produce(request, status)
                committed = self._store.replace_json(
                    summary_name, summary, etag=existing[1] if existing is not None else None
                )
            except GraphFunctionsError as error:
                return self._failed(date, status, error)
            if not committed:  # only if a lease lapsed under a paused process: the other run won
                logger.warning(
                    "Report %s was committed by another run first; this run's summary is dropped", date
                )
                status.update(state="completed", reason="committed by another run")
            else:
                status.update(state="completed")
            status["finishedAt"] = _iso(self._now())
            try:
                self._store.put_json(layout.blob(date, "status.json"), status)
            except GraphFunctionsError as error:  # the report stands: the status resource reads the summary
                logger.error("Report %s completed but its status was not written (%s)", date, error.code)
        logger.info("Report %s completed: %d users, %d pages", date, status["users"], status["pages"])
        self._after_commit(date, summary)
        return RunResult("completed", status, summary=summary)

    def today(self) -> dt.date:
        """Today in the schedule's zone (``WEBSITE_TIME_ZONE``): the one date a forced run may replace."""
        return self._now().astimezone(layout.schedule_zone(self._settings.report_time_zone)).date()

    def _replaces(self, request: RunRequest) -> bool:
        """Whether ``request`` may replace the completed report of its date: forced, and of today."""
        if not request.force:
            return False
        if request.date < self.today():
            logger.warning(
                "Report %s: a forced re-run of a completed past report is dropped (run %s, by %s)",
                request.date,
                request.run_id,
                request.requested_by or request.trigger,
            )
            return False
        return True

    def _failed(self, date: dt.date, status: dict[str, Any], error: GraphFunctionsError) -> RunResult:
        status.update(state="failed", reason=error.public_message, errorCode=error.code)
        status["finishedAt"] = _iso(self._now())
        logger.error("Report %s failed (%s): %s", date, error.code, error.message)
        try:
            self._store.put_json(layout.blob(date, "status.json"), status)
        except GraphFunctionsError as again:  # storage is down: the status resource says "interrupted"
            logger.error("Report %s: the failed status was not written either (%s)", date, again.code)
        return RunResult("failed", status, error=error)

    # -- the work -------------------------------------------------------------------------------------------

    def _produce(self, request: RunRequest, status: dict[str, Any]) -> dict[str, Any]:
        date, settings = request.date, self._settings
        started_clock, started_at = self._clock(), self._now()
        counting = ReportTransport(self._transport)
        graph = self._graph_factory(counting)
        deadline = started_clock + self._function_timeout - _MARGIN_SECONDS
        deadline -= worst_case_call_seconds(
            settings.graph_timeout_seconds, settings.graph_retry_budget_seconds
        )
        fetcher = PageFetcher(
            graph,
            budget_seconds=self.run_budget_seconds,
            deadline=deadline,
            sleep=self._sleep,
            clock=self._clock,
        )
        previous_date, previous_link = self._previous(date)
        run_key = request.run_id
        prefix = layout.run_prefix(date, run_key)
        writers = 0

        def changes_writer() -> BlockCsvWriter:
            nonlocal writers
            writers += 1
            return self._writer(prefix + "changes.csv", CHANGE_COLUMNS, f"{run_key}c{writers}")

        delta, changes = record_changes(fetcher, previous_link, changes_writer)
        users = self._writer(prefix + "users.csv", CSV_COLUMNS, f"{run_key}u")
        totals = Totals(now=started_at)
        availability = SignInAvailability(included=False)
        reported = self._clock()
        for items in iter_user_pages(fetcher, availability):
            _write_page(items, users, totals)
            if self._clock() - reported >= _PROGRESS_EVERY:  # progress for the status resource
                reported = self._clock()
                status.update(pages=fetcher.stats.pages, users=totals.users, retries=counting.retries)
                status["updatedAt"] = _iso(self._now())
                self._store.put_json(layout.blob(date, "status.json"), status)
        status.update(pages=fetcher.stats.pages, users=totals.users, retries=counting.retries)
        users_bytes = users.commit()
        changes_bytes = changes.commit()
        self._store.put_json(
            prefix + "delta.json", {"reportDate": date.isoformat(), "deltaLink": delta.delta_link}
        )
        finished_at = self._now()
        return {
            "reportDate": date.isoformat(),
            "runId": request.run_id,
            "blobPrefix": prefix,
            "trigger": request.trigger,
            "forced": request.force,
            "startedAt": _iso(started_at),
            "generatedAt": _iso(finished_at),
            "durationSeconds": round(self._clock() - started_clock, 3),
            "totals": totals.to_json(),
            "departments": totals.top_departments(settings.report_top_departments),
            "signInActivity": {"included": availability.included, "reason": availability.reason},
            "changes": {"since": previous_date.isoformat() if previous_date else None, **delta.to_json()},
            "graph": {
                "pages": fetcher.stats.pages,
                "requests": counting.requests,
                "retries": counting.retries,
                "throttled": counting.throttled,
                "waitedSeconds": round(fetcher.stats.waited_seconds, 3),
            },
            "files": {
                "users.csv": {"rows": users.rows, "bytes": users_bytes},
                "changes.csv": {"rows": changes.rows, "bytes": changes_bytes},
            },
        }

    def _writer(self, name: str, header: tuple[str, ...], run_key: str) -> BlockCsvWriter:
        if self._block_bytes is None:
            return BlockCsvWriter(self._store.blob(name), header, run_id=run_key)
        return BlockCsvWriter(self._store.blob(name), header, run_id=run_key, block_bytes=self._block_bytes)

    def _previous(self, date: dt.date) -> tuple[dt.date | None, str | None]:
        """The latest completed report before ``date`` and the deltaLink it ended at."""
        for earlier in self._store.report_dates():
            found = self._store.read_json(layout.blob(earlier, "summary.json")) if earlier < date else None
            if found is None:
                continue
            state = self._store.read_json(layout.report_blob(earlier, found[0], "delta.json"))
            link = state[0].get("deltaLink") if state is not None else None
            return earlier, link if isinstance(link, str) and link else None
        return None, None

    # -- status, audit, mail ------------------------------------------------------------------------------

    def _start_status(self, request: RunRequest) -> dict[str, Any]:
        status: dict[str, Any] = {
            "reportDate": request.date.isoformat(),
            "runId": request.run_id,
            "state": "running",
            "trigger": request.trigger,
            "forced": request.force,
            "startedAt": _iso(self._now()),
            "updatedAt": _iso(self._now()),
            "finishedAt": None,
            "pages": 0,
            "users": 0,
            "retries": 0,
            "reason": None,
        }
        self._store.put_json(layout.blob(request.date, "status.json"), status)
        return status

    def _status(self, date: dt.date) -> dict[str, Any]:
        found = self._store.read_json(layout.blob(date, "status.json"))
        return found[0] if found is not None else {"reportDate": date.isoformat(), "state": "unknown"}

    def _audit(self, request: RunRequest, *, replaced: bool) -> None:
        stamp = self._now().strftime("%Y%m%dT%H%M%S")
        line = {
            "event": "forced-rerun",
            "reportDate": request.date.isoformat(),
            "runId": request.run_id,
            "trigger": request.trigger,
            "requestedBy": request.requested_by,
            "replacesCompletedReport": replaced,
            "at": _iso(self._now()),
        }
        logger.warning(
            "AUDIT forced re-run of report %s by %s (run %s, replaces a completed report: %s)",
            request.date,
            request.requested_by or request.trigger,
            request.run_id,
            replaced,
        )
        self._store.put_json(layout.blob(request.date, f"audit/{stamp}-{request.run_id}.json"), line)

    def _after_commit(self, date: dt.date, summary: dict[str, Any]) -> None:
        if self._mail is None:
            return
        try:
            self._mail(date, summary)
        except GraphFunctionsError as error:  # the report stands; the next trigger retries the mail
            logger.error("Report %s: the summary mail failed (%s): %s", date, error.code, error.message)


def _write_page(items: list[dict[str, Any]], users: BlockCsvWriter, totals: Totals) -> None:
    """users.csv rows and totals of one page, a slice at a time, yielding the GIL between slices.

    The next page is being fetched meanwhile by another thread (``iter_user_pages``), and that fetch is the
    run's critical path. Each of its socket reads needs the GIL back; while this thread computes, it gets it
    only after the interpreter's switch interval (5 ms), dozens of times per page, which made the listing
    ~40 % slower than the same listing alone. ``time.sleep(0)`` releases the GIL, so a waiting fetch resumes
    after at most one slice (``docs/reports.md``, benchmark).
    """
    for start in range(0, len(items), _SLICE_USERS):
        part = items[start : start + _SLICE_USERS]
        columns = user_columns(part)
        users.write_columns(page_cells(part, columns))
        totals.add_page(columns)
        time.sleep(0)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
