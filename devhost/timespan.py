""".NET ``TimeSpan`` text (``TimeSpan.Parse`` with the invariant culture), as host.json uses it.

Accepted: ``hh:mm``, ``hh:mm:ss``, ``hh:mm:ss.fffffff``, each optionally prefixed by
``d.`` (days), and a bare ``d`` (whole days). Hours must be 0-23, minutes and seconds
0-59, as .NET requires. Used for TimeSpan timer schedules and ``functionTimeout``.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["format_timespan", "parse_timespan"]

_TIMESPAN = re.compile(
    r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})"
    r"(?::(?P<seconds>\d{1,2})(?:\.(?P<fraction>\d{1,7}))?)?$"
)
_DAYS_ONLY = re.compile(r"^\d+$")


def parse_timespan(text: str) -> dt.timedelta:
    """The interval ``text`` denotes; ``ValueError`` if it is not a TimeSpan."""
    text = text.strip()
    if _DAYS_ONLY.match(text):
        return dt.timedelta(days=int(text))
    match = _TIMESPAN.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a TimeSpan such as 00:05:00")
    hours, minutes = int(match["hours"]), int(match["minutes"])
    seconds = int(match["seconds"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"'{text}' is not a valid TimeSpan (hours 0-23, minutes and seconds 0-59)")
    fraction = match["fraction"] or "0"
    return dt.timedelta(
        days=int(match["days"] or 0),
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        microseconds=round(int(fraction) * 10 ** (6 - len(fraction))),
    )


def format_timespan(interval: dt.timedelta) -> str:
    """``hh:mm:ss`` (``d.hh:mm:ss`` from one day), as the host prints a TimeSpan in its logs."""
    total = int(interval.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{clock}" if days else clock
