"""Timer schedules as the Azure Functions host reads them.

A timer trigger's ``schedule`` is either an NCRONTAB expression or a .NET
``TimeSpan``:

* NCRONTAB, six fields ``{second} {minute} {hour} {day} {month} {day-of-week}``
  (five fields, without seconds, are accepted too, as the host does). Each
  field is a comma list of ``*``, ``n``, ``n-m``, with an optional ``/step``;
  ``n/step`` means "from n to the maximum". Day-of-week is 0-6 with
  **Sunday = 0** (7 is rejected, unlike Vixie cron); months and days of the
  week also accept names and any case-insensitive prefix of them (``Jan``,
  ``sun``, ``Sunday``). Reversed ranges (``5-1``) are swapped. When both day
  and day-of-week are restricted, an occurrence must match **both** (NCrontab
  semantics, not Vixie cron's "either").
* ``TimeSpan`` such as ``00:00:30`` or ``1.00:00:00``: a fixed interval
  counted from the previous occurrence.

Parsing follows NCrontab (the library the host uses) so that a schedule the
real host rejects is rejected here too; computing occurrences is delegated to
croniter, given an explicit, already-validated expression.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from croniter import CroniterBadDateError, croniter  # type: ignore[import-untyped]

from devhost.timespan import parse_timespan

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "ScheduleError",
    "monitor_enabled",
    "parse_schedule",
    "resolve_app_settings",
]

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class _Field:
    kind: str
    minimum: int
    maximum: int
    names: tuple[str, ...] = ()


_SECOND = _Field("second", 0, 59)
_CRON_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 6, _DAYS),
)

_SETTING_REFERENCE = re.compile(r"%([^%\s]+)%")


class ScheduleError(ValueError):
    """The schedule is neither a valid NCRONTAB expression nor a TimeSpan."""


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB schedule; ``seconds`` etc. hold the expanded field values."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first occurrence strictly after ``moment`` (timezone-aware)."""
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        iterator = croniter(
            self._croniter_expression(),
            moment,
            second_at_beginning=True,
            day_or=False,
        )
        try:
            result: dt.datetime = iterator.get_next(dt.datetime)
        except CroniterBadDateError as error:  # e.g. February 30th
            raise ScheduleError(f"'{self.expression}' never occurs") from error
        return result

    def is_more_than_once_a_minute(self) -> bool:
        """The host's rule for turning the schedule monitor off by default."""
        fields = (
            (self.minutes, _CRON_FIELDS[0]),
            (self.hours, _CRON_FIELDS[1]),
            (self.days, _CRON_FIELDS[2]),
            (self.months, _CRON_FIELDS[3]),
            (self.days_of_week, _CRON_FIELDS[4]),
        )
        every_minute = all(_is_full(values, field) for values, field in fields)
        return every_minute and len(self.seconds) > 1

    def _croniter_expression(self) -> str:
        parts = [
            (self.seconds, _SECOND),  # croniter's second_at_beginning layout
            (self.minutes, _CRON_FIELDS[0]),
            (self.hours, _CRON_FIELDS[1]),
            (self.days, _CRON_FIELDS[2]),
            (self.months, _CRON_FIELDS[3]),
            (self.days_of_week, _CRON_FIELDS[4]),
        ]
        return " ".join(
            "*" if _is_full(values, field) else ",".join(map(str, values)) for values, field in parts
        )


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: a fixed interval after the previous occurrence."""

    expression: str
    interval: dt.timedelta

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        return moment + self.interval

    def is_more_than_once_a_minute(self) -> bool:
        return self.interval < dt.timedelta(minutes=1)


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    """Parse a resolved schedule, NCRONTAB first and then TimeSpan, like the host."""
    text = expression.strip()
    fields = text.split()
    if len(fields) in (5, 6):
        return _parse_ncrontab(text, fields)
    if ":" in text:
        return _parse_timespan(text)
    raise ScheduleError(
        f"'{expression}' is not a valid schedule: expected 6 NCRONTAB fields "
        "'{second} {minute} {hour} {day} {month} {day-of-week}' or a TimeSpan "
        "such as '00:05:00'"
    )


def resolve_app_settings(expression: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``%NAME%`` by the app setting (environment variable) NAME.

    Raises ScheduleError naming the setting when it is not defined, which is
    what the host reports as "'%NAME%' does not resolve to a value".
    """
    values = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is None:
            raise ScheduleError(f"'%{name}%' does not resolve to a value")
        return value

    return _SETTING_REFERENCE.sub(substitute, expression)


def monitor_enabled(schedule: Schedule, use_monitor: bool | None) -> bool:
    """Whether the schedule status is persisted (``useMonitor``).

    ``False`` turns it off. Otherwise (``None`` or ``True``) the host turns it
    off anyway for schedules that fire more than once a minute.
    """
    if use_monitor is False:
        return False
    return not schedule.is_more_than_once_a_minute()


def _parse_ncrontab(text: str, fields: Sequence[str]) -> CronSchedule:
    if len(fields) == 5:
        seconds: tuple[int, ...] = (0,)
        rest = fields
    else:
        seconds = _expand(fields[0], _SECOND, text)
        rest = fields[1:]
    minutes, hours, days, months, days_of_week = (
        _expand(part, field, text) for part, field in zip(rest, _CRON_FIELDS, strict=True)
    )
    return CronSchedule(text, seconds, minutes, hours, days, months, days_of_week)


def _expand(part: str, field: _Field, text: str) -> tuple[int, ...]:
    def fail(reason: str) -> ScheduleError:
        return ScheduleError(f"'{text}': '{part}' is not a valid [{field.kind}] field: {reason}")

    values: set[int] = set()
    for element in part.split(","):
        body, slash, step_text = element.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise fail(f"'{step_text}' is not a positive step")
            step = int(step_text)
        if body == "*":
            start, end = field.minimum, field.maximum
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(first, field, fail), _value(last, field, fail)
            start, end = min(start, end), max(start, end)
        else:
            start = _value(body, field, fail)
            end = field.maximum if slash else start
        values.update(range(start, end + 1, step))
    return tuple(sorted(values))


def _value(token: str, field: _Field, fail: Callable[[str], ScheduleError]) -> int:
    if not token:
        raise fail("a value cannot be empty")
    if token.isdigit():
        number = int(token)
        if not field.minimum <= number <= field.maximum:
            raise fail(f"{number} is outside {field.minimum}-{field.maximum}")
        return number
    if token.isalpha() and field.names:
        lowered = token.lower()
        for index, name in enumerate(field.names):
            if name.lower().startswith(lowered):
                return field.minimum + index
        raise fail(f"'{token}' is not one of {', '.join(field.names)}")
    raise fail(f"'{token}' must be a number from {field.minimum} to {field.maximum}")


def _is_full(values: tuple[int, ...], field: _Field) -> bool:
    return len(values) == field.maximum - field.minimum + 1


def _parse_timespan(text: str) -> IntervalSchedule:
    try:
        interval = parse_timespan(text)
    except ValueError as error:
        raise ScheduleError(str(error)) from error
    if interval <= dt.timedelta(0):
        raise ScheduleError(f"'{text}': a TimeSpan schedule must be positive")
    return IntervalSchedule(text, interval)
