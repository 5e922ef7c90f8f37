"""Report dates and where one report's blobs live in the report container (``REPORT_CONTAINER``).

Per report date ``D`` (``YYYY-MM-DD``)::

    users/D/runs/R/users.csv      every user (staged blocks, one commit), written by run R
    users/D/runs/R/changes.csv    added / changed / removed since the previous report
    users/D/runs/R/delta.json     the deltaLink this report ends at (internal: never served)
    users/D/summary.json   the totals and ``blobPrefix`` (``users/D/runs/R/``, whose files are the report);
                           written last and conditionally: THE commit point
    users/D/status.json    state and progress of the latest run for D
    users/D/mail.json      the once-per-date mail marker
    users/D/lock           the blob whose lease one run holds at a time
    users/D/audit/...      one line per forced re-run

Each run writes its files under its own prefix and the summary names it, so the summary switches a date's
report from one run's files to another's in one conditional write: a run that fails (or a re-run of today
that fails) never mixes its files with the report's. Reports written before run prefixes existed have their
files in ``users/D/`` itself and no ``blobPrefix`` (:func:`report_blob`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.core.errors import BadRequest

PREFIX = "users/"
#: A report date as the OpenAPI document declares it (``format: date`` too: a calendar date).
REPORT_DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE = REPORT_DATE_PATTERN
_RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_RUN_DIR = _RUN_ID + "/"


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


def run_prefix(date: dt.date, run_id: str) -> str:
    """``users/D/runs/R/``: where run ``run_id`` (a lower-case uuid, checked) writes the report of ``date``.

    Raises:
        ValueError: ``run_id`` is not a lower-case uuid (it names a blob prefix: nothing else may).
    """
    if not re.fullmatch(_RUN_ID, run_id):
        raise ValueError("a run id is a lower-case uuid")
    return f"{PREFIX}{date.isoformat()}/runs/{run_id}/"


def report_blob(date: dt.date, summary: dict[str, Any], name: str) -> str:
    """The blob name of ``name`` (``users.csv``, ``changes.csv``, ``delta.json``) of the completed report of
    ``date`` whose summary is ``summary``: under its ``blobPrefix`` when it is one of this date's run
    prefixes, else (a report older than run prefixes) in ``users/D/``."""
    prefix = summary.get("blobPrefix")
    runs = f"{PREFIX}{date.isoformat()}/runs/"
    if isinstance(prefix, str) and prefix.startswith(runs) and re.fullmatch(_RUN_DIR, prefix[len(runs) :]):
        return prefix + name
    return blob(date, name)


def date_of_prefix(prefix: str) -> dt.date | None:
    """The report date of a ``users/D/`` virtual directory name, None for anything else."""
    middle = prefix[len(PREFIX) :].strip("/") if prefix.startswith(PREFIX) else ""
    if not re.fullmatch(_DATE, middle):
        return None
    try:
        return dt.date.fromisoformat(middle)
    except ValueError:
        return None
