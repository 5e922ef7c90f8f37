"""The report's fast paths equal their plain definitions: a page's cells (column by column) are
``user_row`` per user, ``write_columns`` writes the bytes ``csv`` writes, ``Totals.add_page`` counts as
``Totals.add`` per user; and the listing thread hands over every page once, in order, raises a failure after
the pages before it, and stops when the writer stops."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.errors import UpstreamError
from shared.graph.client import GraphPage
from shared.report.cells import page_cells, page_rows, user_columns, user_row
from shared.report.csv_blob import BlockCsvWriter
from shared.report.listing import (
    CSV_COLUMNS,
    SIGN_IN_COLUMNS,
    SIGN_IN_FIELD,
    USER_FIELDS,
    SignInAvailability,
    iter_user_pages,
)
from shared.report.summary import Totals

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)

# Values Graph could send, and some it should not: formula starts, CSV specials, non-text types.
_text = st.text(alphabet=st.sampled_from(list("ab =+-@\t\r\n,\"'é漢 ")), max_size=6)
_value = st.one_of(
    st.none(),
    _text,
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["2026-11-30T06:00:00Z", "2020-01-01T00:00:00Z", "Guest", "Member", "garbage"]),
)
_NO_SIGN_IN = object()  # the user carries no sign-in field at all
# A user, with or without a sign-in field (absent, null, text or a partial object). Built from fixed
# strategies: a flatmap made a new strategy per example, which Hypothesis validated each time (~10 CPU-s).
_user = st.builds(
    lambda user, sign_in: user if sign_in is _NO_SIGN_IN else {**user, SIGN_IN_FIELD: sign_in},
    st.dictionaries(st.sampled_from([*USER_FIELDS, "extra"]), _value),
    st.one_of(
        st.just(_NO_SIGN_IN),
        st.none(),
        _text,
        st.dictionaries(st.sampled_from(SIGN_IN_COLUMNS), _value),
    ),
)


class _Blob:
    """Collects staged blocks and the committed list (what Azure would assemble)."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}
        self.data = b""

    def stage_block(self, block_id: str, data: bytes, *, length: int) -> None:
        assert len(data) == length
        self.blocks[block_id] = data

    def commit_block_list(self, blocks: list[Any], **_: Any) -> None:
        self.data = b"".join(self.blocks[block.id] for block in blocks)


def _writer(blob: _Blob) -> BlockCsvWriter:
    return BlockCsvWriter(blob, CSV_COLUMNS, run_id="r", block_bytes=64)  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None)
@given(st.lists(_user, max_size=8))
def test_page_cells_are_user_row_per_user_and_write_the_same_bytes(users: list[dict[str, Any]]) -> None:
    expected = [user_row(user) for user in users]
    rows = page_rows(users)
    assert [["" if value is None else value for value in row] for row in rows] == expected
    by_rows, by_columns = _Blob(), _Blob()
    plain, fast = _writer(by_rows), _writer(by_columns)
    plain.write_rows(expected)
    fast.write_columns(page_cells(users, user_columns(users)))
    assert plain.commit() == fast.commit() and by_rows.data == by_columns.data
    assert plain.rows == fast.rows == len(users)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), _text), min_size=3, max_size=3), min_size=1, max_size=6))
def test_write_columns_is_csv_for_any_text(rows: list[list[str | None]]) -> None:
    header = ("a", "b", "c")
    by_rows, by_columns = _Blob(), _Blob()
    plain = BlockCsvWriter(by_rows, header, run_id="r")  # type: ignore[arg-type]
    fast = BlockCsvWriter(by_columns, header, run_id="r")  # type: ignore[arg-type]
    plain.write_rows([["" if v is None else v for v in row] for row in rows])
    fast.write_columns([list(column) for column in zip(*rows, strict=True)])
    plain.commit()
    fast.commit()
    assert by_rows.data == by_columns.data


def test_a_plain_page_takes_the_join_and_a_quoted_one_still_matches_csv() -> None:
    users = [
        {"id": "1", "displayName": "Doe, Jane", "accountEnabled": True, "userType": "Member"},
        {"id": "2", "displayName": 'The "Boss"', "accountEnabled": False, "jobTitle": "=cmd"},
        {"id": "3", "displayName": "two\r\nlines", "department": 7},
    ]
    by_rows, by_columns = _Blob(), _Blob()
    plain, fast = _writer(by_rows), _writer(by_columns)
    plain.write_rows([user_row(user) for user in users])
    fast.write_columns(page_cells(users))
    plain.commit()
    fast.commit()
    assert by_rows.data == by_columns.data
    assert b'"Doe, Jane"' in by_columns.data and b"'=cmd" in by_columns.data


@settings(max_examples=120, deadline=None)
@given(st.lists(_user, max_size=8))
def test_add_page_counts_as_add_per_user(users: list[dict[str, Any]]) -> None:
    one_by_one, by_page = Totals(now=NOW), Totals(now=NOW)
    for user in users:
        one_by_one.add(user)
    by_page.add_page(user_columns(users))
    assert by_page == one_by_one


def test_add_page_counts_an_unhashable_department_as_none() -> None:
    by_page, one_by_one = Totals(now=NOW), Totals(now=NOW)
    users: list[dict[str, Any]] = [{"department": ["x"]}, {"department": "Ops"}, {"department": " "}]
    by_page.add_page(user_columns(users))
    for user in users:
        one_by_one.add(user)
    assert by_page == one_by_one and by_page.departments == {"(none)": 2, "Ops": 1}


class _Pages:
    """A fetcher over numbered pages; ``fail_at`` raises on that page; records the fetching threads."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.fetched: list[int] = []
        self.threads: set[str] = set()

    def page(self, path_or_url: str, params: dict[str, str] | None = None) -> GraphPage:
        number = 0 if params is not None else int(path_or_url.rsplit("=", 1)[1])
        self.threads.add(threading.current_thread().name)
        if number == self.fail_at:
            raise UpstreamError("Microsoft Graph is unreachable or timed out")
        self.fetched.append(number)
        link = f"https://graph.example/v1.0/users?page={number + 1}" if number + 1 < self.count else None
        return GraphPage(items=[{"id": f"{number}-{i}"} for i in range(3)], next_link=link)


def _listing(pages: _Pages) -> Any:
    return iter_user_pages(pages, SignInAvailability(included=False))  # type: ignore[arg-type]


def test_every_page_once_in_order_fetched_by_the_listing_thread() -> None:
    pages = _Pages(12)
    ids = [user["id"] for items in _listing(pages) for user in items]
    assert ids == [f"{n}-{i}" for n in range(12) for i in range(3)]
    assert pages.fetched == list(range(12)) and "report-prefetch" in pages.threads
    assert not [t for t in threading.enumerate() if t.name == "report-prefetch"]


def test_a_failed_page_is_raised_after_the_pages_before_it() -> None:
    pages = _Pages(10, fail_at=6)
    seen: list[str] = []
    with pytest.raises(UpstreamError):
        for items in _listing(pages):
            seen.extend(user["id"] for user in items)
    assert seen == [f"{n}-{i}" for n in range(6) for i in range(3)]
    assert not [t for t in threading.enumerate() if t.name == "report-prefetch"]


def test_stopping_early_stops_the_listing_thread_within_a_few_pages() -> None:
    pages = _Pages(1000)
    listing = _listing(pages)
    next(listing)
    next(listing)
    listing.close()
    assert not [t for t in threading.enumerate() if t.name == "report-prefetch"]
    assert len(pages.fetched) <= 6  # two written, two waiting, one in flight: it did not read on


def test_a_single_page_is_not_fetched_ahead() -> None:
    pages = _Pages(1)
    assert [len(items) for items in _listing(pages)] == [3]
    assert pages.threads == {threading.current_thread().name}
