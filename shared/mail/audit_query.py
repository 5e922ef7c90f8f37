"""``GET /api/audit/mail``: the audit records of mailbox reads, newest first, filtered and paged.

Query: ``from`` and ``to`` (an RFC 3339 full-date, ``2026-12-01``, or date-time with its offset,
``2026-12-01T08:00:00Z``: the OpenAPI ``date`` and ``date-time`` formats; a date as ``to`` means the end of
that day; defaults: the last 7 days up to now), ``mailbox`` (an object id or UPN: records of that person's
mailbox, by object id, see :func:`list_audit`), ``actor`` (an app id, a user object id or a UPN), ``top``
(1-100, default 50), ``cursor``. A cursor encodes the query and where the previous page stopped; it may come
alone or with the same parameters (a differing one is 400 ``invalid_parameter``), like the users API's
cursors. Days are scanned newest first, one partition each, and at most :data:`MAX_DAYS` of them per page: a
wider range is continued through ``nextCursor`` (even by an empty page), so no request scans more than a month
of partitions. Any range is accepted (the OpenAPI document cannot relate two parameters, and nothing is wrong
with asking): ``from`` after ``to`` selects nothing; instants are clamped to the years the table can hold
(:data:`FLOOR`, :data:`CEILING`), and days after today are not scanned.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from shared.core.cursor import MAX_CURSOR_LENGTH, invalid_cursor
from shared.core.errors import BadRequest
from shared.core.patterns import GUID_PATTERN, UPN_PATTERN
from shared.core.records import Record
from shared.mail.audit import UTC, AuditRow, AuditStore, day_key

DEFAULT_TOP = 50
MAX_TOP = 100
DEFAULT_DAYS = 7
MAX_DAYS = 31
PARAMETERS = frozenset({"from", "to", "mailbox", "actor", "top", "cursor"})

_TOP = r"[0-9]{1,3}"
#: Partitions scanned per page at most (a wider range continues through nextCursor).
MAX_DAYS = 31
#: No record is older or newer than these: instants outside are clamped (and row keys stay 17 digits wide).
FLOOR = dt.datetime(2000, 1, 1, tzinfo=UTC)
CEILING = dt.datetime(3000, 1, 1, tzinfo=UTC)
#: RFC 3339 full-date and date-time (with its offset), as OpenAPI's ``date`` and ``date-time`` formats.
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
DATETIME_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_BASE64URL = r"[A-Za-z0-9_-]+"
_ROW = r"[0-9]{17}-[0-9a-f]{12}"
_PARTITION = r"[0-9]{8}"


class AuditQuery(Record):
    start: dt.datetime
    end: dt.datetime
    mailbox: str | None = None
    actor: str | None = None
    top: int = DEFAULT_TOP
    position: tuple[str, str] | None = None  # (partition, last row key) of the previous page


def _clamped(when: dt.datetime) -> dt.datetime:
    """``when`` in UTC within [FLOOR, CEILING] (an instant at the edge of the calendar cannot overflow)."""
    offset = when.utcoffset() or dt.timedelta()
    try:
        utc = (when.replace(tzinfo=None) - offset).replace(tzinfo=UTC)
    except OverflowError:  # before year 1 or after year 9999 in UTC
        return FLOOR if offset > dt.timedelta() else CEILING
    return min(max(utc, FLOOR), CEILING)


def _instant(name: str, value: str, *, end_of_day: bool) -> dt.datetime:
    try:
        if re.fullmatch(DATE_PATTERN, value):
            day = dt.date.fromisoformat(value)
            if end_of_day:
                return _clamped(dt.datetime.combine(day, dt.time.max, tzinfo=UTC))
            return _clamped(dt.datetime.combine(day, dt.time.min, tzinfo=UTC))
        if re.fullmatch(DATETIME_PATTERN, value):
            return _clamped(dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00")))
    except ValueError:
        pass
    raise BadRequest(
        f"{name} must be an RFC 3339 date (2026-12-01) or date-time with its offset (2026-12-01T08:00:00Z)"
    )


def _identity(name: str, value: str) -> str:
    text = value  # as sent: the document's pattern allows no surrounding spaces
    if len(text) > 113 or not (re.fullmatch(GUID_PATTERN, text) or re.fullmatch(UPN_PATTERN, text)):
        raise BadRequest(f"{name} must be an object id or app id (GUID) or a userPrincipalName")
    return text.lower()


def _iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).isoformat()


def parse_audit_query(params: Mapping[str, str], *, now: dt.datetime) -> AuditQuery:
    """Validate the listing's query (module docstring). Raises BadRequest / InvalidCursor."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise BadRequest(
            f"Unknown query parameter(s): {', '.join(unknown)[:200]}. "
            f"Allowed: {', '.join(sorted(PARAMETERS))}"
        )
    top = DEFAULT_TOP
    if "top" in params:
        raw = params["top"]
        if not re.fullmatch(_TOP, raw) or not 1 <= int(raw) <= MAX_TOP:
            raise BadRequest(f"top must be an integer from 1 to {MAX_TOP}")
        top = int(raw)
    end = _instant("to", params["to"], end_of_day=True) if "to" in params else _clamped(now)
    start = (
        _instant("from", params["from"], end_of_day=False)
        if "from" in params
        else max(FLOOR, end - dt.timedelta(days=DEFAULT_DAYS))
    )
    mailbox = _identity("mailbox", params["mailbox"]) if "mailbox" in params else None
    actor = _identity("actor", params["actor"]) if "actor" in params else None
    query = AuditQuery(start=start, end=end, mailbox=mailbox, actor=actor, top=top)
    if "cursor" not in params:
        return query
    continued = decode_audit_cursor(params["cursor"])
    given = {"from": _iso(start), "to": _iso(end), "mailbox": mailbox, "actor": actor, "top": top}
    encoded = {
        "from": _iso(continued.start),
        "to": _iso(continued.end),
        "mailbox": continued.mailbox,
        "actor": continued.actor,
        "top": continued.top,
    }
    for name in sorted(set(params) - {"cursor"}):
        if given[name] != encoded[name]:
            raise BadRequest(
                f"{name} differs from the query this cursor continues: send the cursor alone, or with the "
                "same parameters as the first page"
            )
    return continued


def encode_audit_cursor(query: AuditQuery, position: tuple[str, str]) -> str:
    document = {
        "v": 1,
        "f": _iso(query.start),
        "t": _iso(query.end),
        "m": query.mailbox,
        "a": query.actor,
        "n": query.top,
        "p": list(position),
    }
    raw = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_audit_cursor(text: str) -> AuditQuery:
    """The query a cursor continues. Raises InvalidCursor for anything but an unchanged nextCursor."""
    if not text or len(text) > MAX_CURSOR_LENGTH or not re.fullmatch(_BASE64URL, text):
        raise invalid_cursor()
    try:
        document = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
        if not isinstance(document, dict) or document.get("v") != 1:
            raise ValueError("version")
        start = dt.datetime.fromisoformat(str(document["f"]))
        end = dt.datetime.fromisoformat(str(document["t"]))
        mailbox, actor, top, position = document["m"], document["a"], document["n"], document["p"]
        if start.tzinfo is None or end.tzinfo is None or not FLOOR <= start <= end <= CEILING:
            raise ValueError("range")
        if not (isinstance(top, int) and 1 <= top <= MAX_TOP):
            raise ValueError("top")
        for value in (mailbox, actor):
            if value is not None and (not isinstance(value, str) or _identity("cursor", value) != value):
                raise ValueError("identity")
        if not (
            isinstance(position, list) and len(position) == 2 and all(isinstance(p, str) for p in position)
        ):
            raise ValueError("position")
        partition, row = position
        if not re.fullmatch(_PARTITION, partition) or not (row == "" or re.fullmatch(_ROW, row)):
            raise ValueError("position")  # "": the whole partition is still to scan
        if not day_key(start) <= partition <= day_key(end):
            raise ValueError("position")
    except (binascii.Error, ValueError, KeyError, TypeError, BadRequest) as exc:
        raise invalid_cursor() from exc
    return AuditQuery(start=start, end=end, mailbox=mailbox, actor=actor, top=top, position=(partition, row))


class AuditPage(Record):
    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.items, "nextCursor": self.next_cursor}


def _days(query: AuditQuery, today: dt.date) -> list[str]:
    """The day partitions of the range to scan for one page, newest first: from the cursor's day (or the
    range's last day, or today when that is later), at most :data:`MAX_DAYS` of them."""
    day = min(query.end.astimezone(UTC).date(), today)
    if query.position is not None:
        day = min(day, dt.datetime.strptime(query.position[0], "%Y%m%d").date())
    first = query.start.astimezone(UTC).date()
    days: list[str] = []
    while day >= first and len(days) < MAX_DAYS:
        days.append(day.strftime("%Y%m%d"))
        day -= dt.timedelta(days=1)
    return days


def list_audit(
    store: AuditStore,
    query: AuditQuery,
    owner_of: Callable[[str], str | None] = lambda upn: None,
    *,
    today: Callable[[], dt.date] = lambda: dt.datetime.now(UTC).date(),
) -> AuditPage:
    """One page of records for ``query``, newest first.

    ``mailbox`` selects by the owner's object id: an object id as given, a UPN resolved by ``owner_of``
    (the directory's object id of that UPN now, None when no user has it), so every read of a person's
    mail is found whichever form or former UPN the caller typed. A UPN no user has (any more) selects the
    records whose owner had it at read time, or that typed it.

    Raises:
        StorageUnavailable: the table cannot be read now (503).
        Whatever ``owner_of`` raises (Graph unavailable: a 503, rather than a silently partial answer).
    """
    filters: dict[str, str] = {}
    if query.mailbox is not None:
        if re.fullmatch(GUID_PATTERN, query.mailbox):
            filters["MailboxObjectId"] = query.mailbox
        else:
            filters["Mailbox"] = query.mailbox
            owner = owner_of(query.mailbox)
            if owner is not None:
                filters["MailboxObjectId"] = owner.lower()
    if query.actor is not None:
        filters["Actor"] = query.actor
    found: list[AuditRow] = []
    days = _days(query, today())
    for day in days:
        after = query.position[1] if query.position is not None and day == query.position[0] else None
        iterator = store.query(
            start=query.start, end=query.end, partition=day, after=after or None, filters=filters
        )
        found.extend(store.rows(iterator, query.top + 1 - len(found)))
        if len(found) > query.top:
            break
    page, more = found[: query.top], len(found) > query.top
    if more and page:
        cursor: str | None = encode_audit_cursor(query, (page[-1].partition, page[-1].row))
    else:
        # This page's scan budget ran out before the range did: continue from the next day, whole.
        next_day = dt.datetime.strptime(days[-1], "%Y%m%d").date() - dt.timedelta(days=1) if days else None
        rest = (
            len(days) == MAX_DAYS and next_day is not None and next_day >= query.start.astimezone(UTC).date()
        )
        cursor = encode_audit_cursor(query, (next_day.strftime("%Y%m%d"), "")) if rest and next_day else None
    return AuditPage(items=[row.document for row in page], next_cursor=cursor)
