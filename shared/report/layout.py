"""Report dates and where one report's blobs live in the report container (``REPORT_CONTAINER``).

Per report date ``D`` (``YYYY-MM-DD``)::

    users/D/users.csv      every user (staged blocks, one commit)
    users/D/changes.csv    added / changed / removed since the previous report
    users/D/summary.json   the totals; written last and conditionally: THE commit point
    users/D/status.json    state and progress of the latest run for D
    users/D/delta.json     the deltaLink this report ends at (internal: never served)
    users/D/mail.json      the once-per-date mail marker
    users/D/lock           the blob whose lease one run holds at a time
    users/D/audit/...      one line per forced re-run
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.core.errors import BadRequest

PREFIX = "users/"
_DATE = r"^\d{4}-\d{2}-\d{2}$"


def parse_report_date(text: str) -> dt.date:
    """A ``YYYY-MM-DD`` report date from caller input.

    Raises:
        BadRequest: not exactly ``YYYY-MM-DD``, or not a calendar date.
    """
    if not re.fullmatch(_DATE, text):
        raise BadRequest("date must be a report date in the form YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest("date must be a calendar date in the form YYYY-MM-DD") from exc


def schedule_zone(time_zone: str | None) -> dt.tzinfo:
    """The zone the timer runs in: ``WEBSITE_TIME_ZONE`` (an IANA name on Linux plans), else UTC, as the
    Functions timer trigger does. An unknown name falls back to UTC (the host refuses to start with one)."""
    if not time_zone:
        return dt.UTC
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def blob(date: dt.date, name: str) -> str:
    """The blob name of ``name`` (``users.csv``, ``summary.json``, ...) in the report of ``date``."""
    return f"{PREFIX}{date.isoformat()}/{name}"


def date_of_prefix(prefix: str) -> dt.date | None:
    """The report date of a ``users/D/`` virtual directory name, None for anything else."""
    middle = prefix[len(PREFIX) :].strip("/") if prefix.startswith(PREFIX) else ""
    if not re.fullmatch(_DATE, middle):
        return None
    try:
        return dt.date.fromisoformat(middle)
    except ValueError:
        return None
