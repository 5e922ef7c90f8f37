"""Timer triggers: scheduling, past-due detection, run-on-startup.

Each timer follows the Functions host's ``TimerListener``:

1. At start-up a monitored timer (see ``ncrontab.monitor_enabled``) reads its
   schedule status; if the recorded ``Next`` has passed, it runs once at once
   with ``past_due=True``. Otherwise, with ``run_on_startup``, it runs once at
   once with ``past_due=False``.
2. Then it runs at each occurrence. Invocations of one timer never overlap;
   the next occurrence is computed from the invocation time, and the status
   (Last/Next/LastUpdated) is saved after each run (best effort).
3. The function receives ``azure.functions.TimerRequest(past_due,
   schedule_status, schedule)``; ``schedule_status`` is the status dict for a
   monitored timer and empty otherwise, as the worker passes it.

Exceptions from the function, and runs past ``functionTimeout``, are logged as
failed invocations and never stop the schedule or the host.

Times are in ``WEBSITE_TIME_ZONE`` (an IANA name) when set, else the machine's
local time zone, as with ``func start``; Azure uses UTC without the setting, so
``timezone_warning`` gives the start-up warning for a machine not on UTC.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
from anyio.abc import TaskGroup, TaskStatus
from azure.core.exceptions import AzureError
from azure.functions.timer import TimerRequest

from devhost.discovery import FunctionSpec
from devhost.invoke import Invoker, new_invocation_id
from devhost.limits import FunctionTimeoutError, log_function_timeout
from devhost.ncrontab import (
    Schedule,
    ScheduleError,
    monitor_enabled,
    parse_schedule,
    resolve_app_settings,
)
from devhost.schedule_status import (
    ScheduleStatus,
    StatusStore,
    check_past_due,
    timer_lookup_name,
)

__all__ = ["PlannedTimer", "TimerScheduler", "plan_timers", "resolve_timezone", "timezone_warning"]

_log = logging.getLogger("devhost")
_MANUAL_REASON = "This function was programmatically called via the host APIs."
_SCHEDULE_INFO = {"AdjustForDST": True}


@dataclass
class PlannedTimer:
    spec: FunctionSpec
    schedule: Schedule
    monitor: bool
    status: ScheduleStatus | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    sleep_scope: anyio.CancelScope | None = None

    @property
    def lookup_name(self) -> str:
        return timer_lookup_name(self.spec.name)


def plan_timers(
    specs: list[FunctionSpec], environ: Mapping[str, str]
) -> tuple[list[PlannedTimer], dict[str, str]]:
    """Resolve ``%SETTING%`` schedules and parse them.

    Returns the timers and, per function name, the error of those that cannot
    run (the host marks such functions as errored and starts the others).
    """
    timers: list[PlannedTimer] = []
    errors: dict[str, str] = {}
    now = dt.datetime.now(dt.UTC)
    for spec in specs:
        if spec.timer is None:
            continue
        try:
            schedule = parse_schedule(resolve_app_settings(spec.timer.schedule, environ))
            schedule.next_after(now)  # refuse schedules that never fire (Feb 30th)
        except ScheduleError as error:
            errors[spec.name] = str(error)
            continue
        monitor = monitor_enabled(schedule, spec.timer.use_monitor)
        timers.append(PlannedTimer(spec=spec, schedule=schedule, monitor=monitor))
    return timers, errors


def resolve_timezone(environ: Mapping[str, str]) -> dt.tzinfo:
    for name in (environ.get("WEBSITE_TIME_ZONE"), environ.get("TZ")):
        if name:
            try:
                return ZoneInfo(name.lstrip(":"))
            except (ZoneInfoNotFoundError, ValueError):
                _log.warning("Time zone %r is not an IANA name; ignoring it", name)
    try:
        link = os.path.realpath("/etc/localtime")
        key = link.split("/zoneinfo/", 1)[1]
        return ZoneInfo(key)
    except (IndexError, OSError, ZoneInfoNotFoundError, ValueError):
        local = dt.datetime.now().astimezone().tzinfo
        return local if local is not None else dt.UTC


def timezone_warning(environ: Mapping[str, str], tz: dt.tzinfo, year: int | None = None) -> str | None:
    """The start-up warning when timers follow a local zone that Azure would not use, else None.

    Azure evaluates schedules in UTC unless ``WEBSITE_TIME_ZONE`` is set; Core Tools
    (and devhost) use the machine's zone. A zone at UTC+0 all ``year`` (by default
    this one) fires at the same instants as UTC, so it gets no warning.
    """
    if environ.get("WEBSITE_TIME_ZONE"):
        return None
    when = year or dt.datetime.now(dt.UTC).year
    offsets = {dt.datetime(when, month, 1, 12, tzinfo=tz).utcoffset() for month in (1, 7)}
    if offsets <= {dt.timedelta(0)}:
        return None
    name = getattr(tz, "key", None) or str(tz)
    return (
        f"Timer schedules run in {name}, this machine's time zone (as with Core Tools), but in UTC "
        f"in Azure unless WEBSITE_TIME_ZONE is set: '0 0 9 * * *' fires at 09:00 {name} here and at "
        "09:00 UTC there. Set WEBSITE_TIME_ZONE (e.g. UTC) to run them as Azure will."
    )


class TimerScheduler:
    """Runs timer loops and manual (admin API) invocations in one task group."""

    def __init__(
        self,
        timers: list[PlannedTimer],
        *,
        invoker: Invoker,
        store: StatusStore,
        tz: dt.tzinfo,
        schedule_enabled: bool = True,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.timers = {timer.spec.name: timer for timer in timers}
        self._invoker = invoker
        self._store = store
        self.tz = tz
        self._schedule_enabled = schedule_enabled
        self._shutdown_timeout = shutdown_timeout
        self._task_group: TaskGroup | None = None
        self._stopping = False
        self._active = 0

    @property
    def store_description(self) -> str:
        return self._store.description

    @property
    def stopping(self) -> bool:
        return self._stopping

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the timer loops; on exit, stop them and wait for running invocations."""
        async with anyio.create_task_group() as group:
            self._task_group = group
            if self._schedule_enabled:
                for timer in self.timers.values():
                    # start() returns once the timer holds its lock, so an admin
                    # invocation can never run before the start-up checks.
                    await group.start(self._run_timer, timer, name=f"timer {timer.spec.name}")
            try:
                yield
            finally:
                await self._stop(group)

    def trigger_now(self, name: str) -> bool:
        """Queue a manual invocation (admin API); False if not a known timer."""
        timer = self.timers.get(name)
        if timer is None or self._task_group is None or self._stopping:
            return False
        self._task_group.start_soon(self._invoke_manually, timer)
        return True

    async def _stop(self, group: TaskGroup) -> None:
        self._stopping = True
        for timer in self.timers.values():
            if timer.sleep_scope is not None:
                timer.sleep_scope.cancel()
        with anyio.move_on_after(self._shutdown_timeout):
            while self._active:
                await anyio.sleep(0.05)
        if self._active:
            _log.warning(
                "Abandoning %d timer invocation(s) still running after %.0f s",
                self._active,
                self._shutdown_timeout,
            )
        group.cancel_scope.cancel()

    async def _run_timer(
        self, timer: PlannedTimer, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with timer.lock:
                task_status.started()
                await self._start_up(timer)
            await self._run_schedule(timer)
        except Exception:  # one broken timer must not take the host down
            _log.exception("Timer '%s' stopped", timer.spec.name)

    async def _run_schedule(self, timer: PlannedTimer) -> None:
        while True:
            with anyio.CancelScope() as scope:
                timer.sleep_scope = scope
                if not self.stopping and timer.status is not None:
                    await self._sleep_until(timer.status.next)
            timer.sleep_scope = None
            if self.stopping:
                return
            async with timer.lock:
                await self._fire(timer)

    async def _start_up(self, timer: PlannedTimer) -> None:
        """Past-due check and run-on-startup; the caller holds the timer's lock."""
        name = timer.spec.name
        now = self.now()
        past_due = False
        status: ScheduleStatus | None = None
        if timer.monitor:
            try:
                recorded = await self._store.get(timer.lookup_name)
                late, status = await check_past_due(
                    self._store, timer.lookup_name, now, timer.schedule, recorded
                )
                past_due = late > dt.timedelta(0)
            except (AzureError, OSError) as error:  # storage down: keep going
                _log.error(
                    "Function '%s': cannot read or write its schedule status (%s: %s)",
                    name,
                    type(error).__name__,
                    error,
                )
        timer.status = status or ScheduleStatus(next=timer.schedule.next_after(now))
        if past_due:
            _log.info("Function '%s' is past due on start-up", name)
            await self._fire(timer, past_due=True)
        elif timer.spec.timer is not None and timer.spec.timer.run_on_startup:
            await self._fire(timer, run_on_startup=True)

    async def _sleep_until(self, moment: dt.datetime) -> None:
        while (remaining := (moment - self.now()).total_seconds()) > 0:
            await anyio.sleep(min(remaining, 60.0))  # re-check the wall clock

    async def _fire(
        self, timer: PlannedTimer, *, past_due: bool = False, run_on_startup: bool = False
    ) -> None:
        """One scheduled invocation and the status update; the caller holds the lock."""
        if self._stopping:
            return
        invoked_at = self.now()
        reason = (
            "IsPastDue"
            if past_due
            else "RunOnStartup"
            if run_on_startup
            else "Timer fired at " + invoked_at.isoformat()
        )
        scheduled = timer.status.next if timer.status else invoked_at
        await self._execute(timer, past_due, reason)
        adjusted = invoked_at
        if not past_due and not run_on_startup and scheduled > invoked_at:
            adjusted = scheduled  # fired a little early: don't repeat it
        timer.status = ScheduleStatus(
            next=timer.schedule.next_after(adjusted),
            last=adjusted,
            last_updated=adjusted,
        )
        if timer.monitor:
            try:
                await self._store.update(timer.lookup_name, timer.status)
            except (AzureError, OSError) as error:  # best effort, as the host
                _log.error(
                    "Function '%s' failed to update the timer trigger status (%s)",
                    timer.spec.name,
                    type(error).__name__,
                )

    async def _invoke_manually(self, timer: PlannedTimer) -> None:
        async with timer.lock:
            if not self._stopping:
                await self._execute(timer, False, _MANUAL_REASON)

    async def _execute(self, timer: PlannedTimer, past_due: bool, reason: str) -> None:
        spec = timer.spec
        status = timer.status.as_dict() if timer.monitor and timer.status else None
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule=dict(_SCHEDULE_INFO))
        invocation_id = new_invocation_id()
        _log.info(
            "Executing 'Functions.%s' (Reason='%s', Id=%s)",
            spec.name,
            reason,
            invocation_id,
        )
        started = time.perf_counter()
        self._active += 1
        outcome = "Succeeded"
        try:
            await self._invoker.invoke(spec, request, invocation_id=invocation_id)
        except FunctionTimeoutError as error:
            outcome = "Failed"
            log_function_timeout(error)
        except Exception:  # user code must never stop the host
            outcome = "Failed"
            _log.exception("Function 'Functions.%s' raised (Id=%s)", spec.name, invocation_id)
        finally:
            self._active -= 1
        _log.info(
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)",
            spec.name,
            outcome,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
