"""The audit trail's keys and listing query without storage: day partitions, newest-first row keys, the query
rules and the cursor's checks."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core.errors import BadRequest, InvalidCursor
from shared.mail.audit import AuditRow, day_key, row_key_bound
from shared.mail.audit_query import (
    CEILING,
    FLOOR,
    MAX_DAYS,
    AuditQuery,
    decode_audit_cursor,
    encode_audit_cursor,
    list_audit,
    parse_audit_query,
)

NOW = dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC)


def test_row_keys_sort_newest_first_within_a_day_partition() -> None:
    earlier, later = NOW - dt.timedelta(seconds=1), NOW
    assert day_key(earlier) == day_key(later) == "20261201"
    assert row_key_bound(later) < row_key_bound(earlier)
    assert len(row_key_bound(later)) == 17
    assert day_key(dt.datetime(2026, 12, 2, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == "20261201"


def test_defaults_are_the_last_seven_days() -> None:
    query = parse_audit_query({}, now=NOW)
    assert (query.end, query.start, query.top) == (NOW, NOW - dt.timedelta(days=7), 50)


def test_dates_cover_whole_days_and_filters_are_lower_cased() -> None:
    query = parse_audit_query(
        {"from": "2026-11-30", "to": "2026-12-01", "mailbox": "Ada@Contoso.com", "actor": "ADA@contoso.com"},
        now=NOW,
    )
    assert query.start == dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    assert query.end == dt.datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=dt.UTC)
    assert (query.mailbox, query.actor) == ("ada@contoso.com", "ada@contoso.com")
    offset = parse_audit_query({"from": "2026-12-01T08:00:00+02:00", "to": "2026-12-01t09:00:00.5z"}, now=NOW)
    assert offset.start == dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)
    assert offset.end == dt.datetime(2026, 12, 1, 9, 0, 0, 500000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("params", "start", "end"),
    [
        # Any range the document allows is accepted; instants are clamped to the years records can have.
        ({"from": "0001-01-01", "to": "9999-12-31"}, FLOOR, CEILING),
        ({"from": "0001-01-01T00:00:00+23:59", "to": "9999-12-31T23:59:59-23:59"}, FLOOR, CEILING),
        ({"from": "2026-12-01", "to": "2026-11-01"}, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), None),
    ],
)
def test_any_declared_range_is_accepted(
    params: dict[str, str], start: dt.datetime, end: dt.datetime | None
) -> None:
    query = parse_audit_query(params, now=NOW)
    assert query.start == start and (end is None or query.end == end)


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-02-30"},
        {"to": "tomorrow"},
        {"from": "2026-12-01T09:00:00"},  # a date-time has its offset (RFC 3339)
        {"from": "2026-12-01T09:00Z"},
        {"from": " 2026-12-01"},
        {"top": "101"},
        {"top": " 5"},
        {"mailbox": " ada@contoso.com"},
        {"mailbox": "x"},
        {"actor": "a@b@c"},
        {"order": "asc"},
    ],
)
def test_invalid_queries(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_audit_query(params, now=NOW)


def test_a_cursor_round_trips_and_holds_its_parameters() -> None:
    query = parse_audit_query({"mailbox": "ada@contoso.com", "top": "2"}, now=NOW)
    position = ("20261201", row_key_bound(NOW) + "-0123456789ab")
    cursor = encode_audit_cursor(query, position)
    continued = parse_audit_query({"cursor": cursor}, now=NOW + dt.timedelta(hours=1))
    assert continued == AuditQuery(
        start=query.start, end=query.end, mailbox=query.mailbox, actor=None, top=2, position=position
    )
    assert (
        parse_audit_query({"cursor": cursor, "top": "2", "mailbox": "ADA@contoso.com"}, now=NOW) == continued
    )
    with pytest.raises(BadRequest, match="top differs"):
        parse_audit_query({"cursor": cursor, "top": "3"}, now=NOW)


@pytest.mark.parametrize(
    "position",
    [("20261130x", "0" * 17 + "-0123456789ab"), ("20261201", "1"), ("20251201", "0" * 17 + "-0123456789ab")],
    ids=["partition", "row", "outside-the-range"],
)
def test_cursor_positions_are_checked(position: tuple[str, str]) -> None:
    query = parse_audit_query({}, now=NOW)
    with pytest.raises(InvalidCursor):
        decode_audit_cursor(encode_audit_cursor(query, position))


@pytest.mark.parametrize("cursor", ["", "!", "e30", "eyJ2IjoyfQ", "A" * 5000])
def test_forged_cursors(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_audit_cursor(cursor)


class EmptyStore:
    """An audit table without records that remembers the partitions it was asked for."""

    def __init__(self) -> None:
        self.scanned: list[str] = []

    def query(self, *, partition: str, **_: object) -> list[AuditRow]:
        self.scanned.append(partition)
        return []

    def rows(self, iterator: list[AuditRow], limit: int) -> list[AuditRow]:
        return iterator[:limit]


def test_a_wide_range_is_scanned_a_month_per_page_and_never_past_today() -> None:
    store = EmptyStore()
    today = NOW.date()
    params = {"from": "2026-01-01", "to": "2999-12-31"}
    page = list_audit(store, parse_audit_query(params, now=NOW), today=lambda: today)  # type: ignore[arg-type]
    pages = 1
    while page.next_cursor is not None:
        assert page.items == [] and len(store.scanned) == pages * MAX_DAYS
        query = parse_audit_query({**params, "cursor": page.next_cursor}, now=NOW)
        page = list_audit(store, query, today=lambda: today)  # type: ignore[arg-type]
        pages += 1
    days = (today - dt.date(2026, 1, 1)).days + 1
    assert store.scanned[0] == "20261201" and store.scanned[-1] == "20260101"
    assert len(store.scanned) == len(set(store.scanned)) == days and pages == -(-days // MAX_DAYS)


def test_an_inverted_range_selects_nothing() -> None:
    store = EmptyStore()
    query = parse_audit_query({"from": "2026-12-01", "to": "2026-11-01"}, now=NOW)
    assert list_audit(store, query).to_json() == {"value": [], "nextCursor": None}  # type: ignore[arg-type]
    assert store.scanned == []
