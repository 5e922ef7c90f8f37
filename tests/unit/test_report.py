"""The report's core pieces without the network: CSV cells, totals, staged blocks, dates, the run budget,
delta rows, the mail body, the chart and the page (as HTML)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import pytest

from shared.core.errors import BadRequest, UpstreamError, UpstreamThrottled
from shared.graph.client import GraphPage
from shared.report import delta
from shared.report.cells import cell, user_row
from shared.report.chart import DayPoint, points_from_summaries, render_svg
from shared.report.csv_blob import BlockCsvWriter
from shared.report.layout import date_of_prefix, parse_report_date, schedule_zone
from shared.report.listing import CSV_COLUMNS, PageFetcher, RunBudgetExhaustedError
from shared.report.mail import html_body, subject
from shared.report.page import PageModel, render_page
from shared.report.service import timer_report_date
from shared.report.summary import Totals

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def summary(date: str = "2026-12-01", **totals: int) -> dict[str, Any]:
    base = {
        "users": 10,
        "enabled": 9,
        "disabled": 1,
        "members": 8,
        "guests": 2,
        "createdLast24h": 1,
        "createdLast7d": 3,
    } | totals
    return {
        "reportDate": date,
        "generatedAt": "2026-12-01T06:00:05Z",
        "durationSeconds": 1.5,
        "totals": base,
        "departments": [{"name": "<script>alert(1)</script>", "users": 6}, {"name": "other", "users": 4}],
        "signInActivity": {"included": False, "reason": "refused <b>"},
        "changes": {
            "since": "2026-11-30",
            "mode": "delta",
            "added": 1,
            "changed": 2,
            "removed": 0,
            "disabled": 1,
            "enabled": 0,
            "note": None,
        },
        "graph": {"pages": 1, "requests": 2, "retries": 0},
        "files": {"users.csv": {"rows": 10, "bytes": 100}, "changes.csv": {"rows": 3, "bytes": 50}},
    }


def test_cells_neutralise_spreadsheet_formulas_and_spell_booleans() -> None:
    assert [cell(v) for v in ("=SUM(A1)", "+1", "-x", "@cmd", "\tx", "plain", None, True, False, 3)] == [
        "'=SUM(A1)",
        "'+1",
        "'-x",
        "'@cmd",
        "'\tx",
        "plain",
        "",
        "true",
        "false",
        "3",
    ]
    row = user_row(
        {"id": "1", "accountEnabled": False, "signInActivity": {"lastSignInDateTime": "2026-01-01"}}
    )
    assert len(row) == len(CSV_COLUMNS) and row[0] == "1" and row[6] == "false" and row[9] == "2026-01-01"


def test_totals_count_every_kind_and_rank_departments() -> None:
    totals = Totals(now=NOW)
    users: list[dict[str, Any]] = [
        {
            "accountEnabled": True,
            "userType": "Member",
            "department": "Sales",
            "createdDateTime": "2026-12-01T01:00:00Z",
        },
        {
            "accountEnabled": False,
            "userType": "Guest",
            "department": " Sales ",
            "createdDateTime": "2026-11-27T00:00:00Z",
        },
        {
            "accountEnabled": True,
            "userType": "Member",
            "department": "Ops",
            "createdDateTime": "2020-01-01T00:00:00Z",
        },
        {"accountEnabled": None, "userType": None, "department": None, "createdDateTime": "garbage"},
        {
            "accountEnabled": True,
            "userType": "Member",
            "department": "Zeta",
            "createdDateTime": "2027-01-01T00:00:00Z",
        },
    ]
    for user in users:
        totals.add(user)
    assert totals.to_json() == {
        "users": 5,
        "enabled": 4,
        "disabled": 1,
        "members": 4,
        "guests": 1,
        "createdLast24h": 1,
        "createdLast7d": 2,
    }
    assert totals.top_departments(2) == [
        {"name": "Sales", "users": 2},
        {"name": "(none)", "users": 1},
        {"name": "other", "users": 2, "departments": 2},
    ]
    assert totals.top_departments(10)[-1] == {"name": "Zeta", "users": 1}


class FakeBlob:
    def __init__(self) -> None:
        self.staged: dict[str, bytes] = {}
        self.committed: list[str] | None = None
        self.content_type: str | None = None

    def stage_block(self, block_id: str, data: bytes, length: int) -> None:
        assert len(data) == length
        self.staged[block_id] = data

    def commit_block_list(self, blocks: list[Any], content_settings: Any) -> None:
        self.committed = [block.id for block in blocks]
        self.content_type = content_settings.content_type

    def content(self) -> bytes:
        assert self.committed is not None
        return b"".join(self.staged[block_id] for block_id in self.committed)


def test_csv_goes_out_in_staged_blocks_and_one_commit() -> None:
    blob = FakeBlob()
    writer = BlockCsvWriter(blob, ("id", "name"), run_id="run-1", block_bytes=200)  # type: ignore[arg-type]
    rows = [[str(i), f'Name, with comma and "quotes" {i} é'] for i in range(100)]
    for row in rows:
        writer.write(row)
        assert blob.committed is None  # nothing visible before the commit
    assert len(blob.staged) > 5  # memory held one small block at a time
    size = writer.commit()
    text = blob.content().decode("utf-8")
    assert size == len(blob.content()) and text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text[1:]))) == [["id", "name"], *rows]
    assert blob.content_type == "text/csv; charset=utf-8"
    ids = [base64.b64decode(block_id).decode() for block_id in blob.committed or []]
    assert len(set(map(len, ids))) == 1 and all(
        i.startswith("run1-") for i in ids
    )  # Azure wants equal lengths


def test_report_dates_are_strict() -> None:
    assert parse_report_date("2026-02-28") == dt.date(2026, 2, 28)
    for bad in ("2026-02-30", "2026-2-1", "20260201", " 2026-02-01", "2026-02-01\n", "latest"):
        with pytest.raises(BadRequest):
            parse_report_date(bad)
    assert date_of_prefix("users/2026-02-01/") == dt.date(2026, 2, 1)
    assert date_of_prefix("users/2026-02-31/") is None and date_of_prefix("other/2026-02-01/") is None
    assert schedule_zone(None) is dt.UTC and schedule_zone("Not/AZone") is dt.UTC
    assert str(schedule_zone("Europe/Paris")) == "Europe/Paris"


def test_a_past_due_timer_produces_the_missed_day() -> None:
    now = dt.datetime(2026, 12, 2, 1, 30, tzinfo=dt.UTC)
    missed = {"Last": "2026-11-30T06:00:00+00:00", "Next": "2026-12-01T06:00:00+00:00"}
    assert timer_report_date(True, missed, now, dt.UTC) == dt.date(2026, 12, 1)
    assert timer_report_date(False, missed, now, dt.UTC) == dt.date(2026, 12, 2)
    assert timer_report_date(True, {"Next": "garbage"}, now, dt.UTC) == dt.date(2026, 12, 2)
    assert timer_report_date(True, None, now, dt.UTC) == dt.date(2026, 12, 2)
    paris = schedule_zone("Europe/Paris")
    assert timer_report_date(False, None, dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC), paris) == dt.date(
        2026, 12, 2
    )


class ScriptedGraph:
    """get_page / get_json answer from a script: an exception to raise, or a page / body to return."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, Mapping[str, str] | None]] = []

    def _next(self, url: str, params: Mapping[str, str] | None) -> Any:
        self.calls.append((url, params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_page(self, url: str, *, params: Mapping[str, str] | None = None) -> Any:
        return self._next(url, params)

    def get_json(self, url: str, *, params: Mapping[str, str] | None = None) -> Any:
        return self._next(url, params)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def fetcher(graph: ScriptedGraph, clock: Clock, budget: float = 10, deadline: float = 1000) -> PageFetcher:
    return PageFetcher(graph, budget_seconds=budget, deadline=deadline, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]


def test_the_run_retries_a_page_after_retry_after_within_its_budget() -> None:
    page = GraphPage(items=[{"id": "1"}], next_link=None)
    graph = ScriptedGraph(UpstreamThrottled("busy", retry_after=3), UpstreamError("down"), page)
    clock = Clock()
    fetch = fetcher(graph, clock)
    assert fetch.page("/users", {"$top": "999"}) is page
    assert clock.slept == [3.0, 1.0] and fetch.stats.run_retries == 2 and fetch.stats.pages == 1
    assert [url for url, _ in graph.calls] == ["/users"] * 3  # the same page, asked again


def test_a_run_out_of_budget_fails_and_permanent_errors_are_not_retried() -> None:
    clock = Clock()
    graph = ScriptedGraph(*[UpstreamThrottled("busy", retry_after=4)] * 4)
    with pytest.raises(RunBudgetExhaustedError) as raised:
        fetcher(graph, clock, budget=10).page("/users")
    assert clock.slept == [4.0, 4.0] and raised.value.code == "upstream_throttled"
    forbidden = ScriptedGraph(UpstreamError("no", code="upstream_forbidden"))
    with pytest.raises(UpstreamError):
        fetcher(forbidden, Clock()).page("/users")
    assert len(forbidden.calls) == 1
    late = Clock()
    late.now = 2000
    with pytest.raises(RunBudgetExhaustedError):
        fetcher(ScriptedGraph(), late).page("/users")  # past the host's functionTimeout: no call at all


def test_delta_rows_classify_added_changed_removed_and_resync_on_expiry() -> None:
    body = {
        "value": [
            {
                "id": "a",
                "displayName": "New",
                "userPrincipalName": "new@x",
                "createdDateTime": "2026-12-01T00:00:00Z",
            },
            {"id": "b", "department": "Ops", "jobTitle": "Lead"},
            {"id": "c", "accountEnabled": False},
            {"id": "d", "@removed": {"reason": "deleted"}},
        ],
        "@odata.deltaLink": "https://graph/v1.0/users/delta?$deltatoken=next",
    }
    names = GraphPage(
        items=[{"id": "b", "userPrincipalName": "b@x"}, {"id": "c", "userPrincipalName": "c@x"}],
        next_link=None,
    )
    graph = ScriptedGraph(body, names)
    blob = FakeBlob()

    def writer() -> BlockCsvWriter:
        return BlockCsvWriter(blob, delta.CHANGE_COLUMNS, run_id="r")  # type: ignore[arg-type]

    outcome, out = delta.record_changes(
        fetcher(graph, Clock()), "https://graph/v1.0/users/delta?$deltatoken=old", writer
    )
    out.commit()
    rows = list(csv.DictReader(io.StringIO(blob.content().decode("utf-8")[1:])))
    assert [(r["change"], r["id"], r["userPrincipalName"], r["changedFields"]) for r in rows] == [
        ("removed", "d", "", ""),
        ("added", "a", "new@x", ""),
        ("changed", "b", "b@x", "department;jobTitle"),
        ("changed", "c", "c@x", "accountEnabled"),
    ]
    assert (outcome.added, outcome.changed, outcome.removed, outcome.disabled) == (1, 2, 1, 1)
    assert outcome.delta_link.endswith("next") and "id in ('b','c')" in str(graph.calls[1][1])

    expired = UpstreamError("bad", code="upstream_bad_request", graph_code="syncStateNotFound")
    latest = {"value": [], "@odata.deltaLink": "https://graph/v1.0/users/delta?$deltatoken=fresh"}
    graph = ScriptedGraph(expired, latest)
    outcome, _ = delta.record_changes(fetcher(graph, Clock()), "https://graph/old", writer)
    assert (
        outcome.mode == "resync"
        and outcome.delta_link.endswith("fresh")
        and "syncStateNotFound" in (outcome.note or "")
    )
    assert graph.calls[1][1] == {"$deltatoken": "latest", "$select": ",".join(delta.TRACKED)}


def test_the_mail_body_escapes_directory_values_and_has_no_remote_content() -> None:
    body = html_body(summary(), "https://app.example/reports?date=2026-12-01")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script" not in body
    assert "refused &lt;b&gt;" in body
    assert "<img" not in body and "<style" not in body and "src=" not in body
    assert 'href="https://app.example/reports?date=2026-12-01"' in body
    assert subject(summary()) == "Daily user report 2026-12-01: 10 users, 1 added, 2 changed, 0 removed"


def _assert_csp_safe(markup: str) -> None:
    lowered = markup.lower()
    assert "<script" not in lowered and "style=" not in lowered and "<style" not in lowered
    assert not re.search(r"<[^>]*\son\w+=", lowered)  # no event-handler attributes


def test_the_chart_is_a_static_svg_with_presentation_attributes_only() -> None:
    history = [
        summary(f"2026-11-{day:02d}", users=100 + day, guests=day, members=100, createdLast24h=day % 3)
        for day in range(1, 31)
    ]
    svg = render_svg(points_from_summaries(history))
    root = ET.fromstring(svg)  # noqa: S314 - our own output: well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    _assert_csp_safe(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert len(root.findall("s:circle", ns)) == 30 and len(root.findall("s:rect", ns)) >= 90
    assert "2026-11-30: 130 users" in svg
    assert "No report yet" in render_svg([])
    hostile = render_svg([DayPoint("<x>&", 1, 1, 1, 0)])
    ET.fromstring(hostile)  # noqa: S314 - our own output
    assert "<x>" not in hostile


def test_the_page_renders_escaped_data_the_chart_and_links() -> None:
    latest = summary()
    changes = [
        {
            "change": "changed",
            "id": "b",
            "userPrincipalName": "b@x",
            "displayName": "<img src=x onerror=1>",
            "changedFields": "department",
        }
    ]
    html = render_page(PageModel(latest, [summary("2026-11-30"), latest], changes, more_changes=True))
    _assert_csp_safe(html.replace("<svg", "").replace("</svg>", ""))
    assert "&lt;img src=x onerror=1&gt;" in html and "<img" not in html
    assert "<svg" in html and 'href="/api/reports/users/2026-12-01/users.csv"' in html
    assert 'id="more-changes"' in html
    empty = render_page(PageModel(None, [], [], False))
    assert 'id="no-report"' in empty and "<svg" not in empty


def test_the_chart_axis_labels_are_distinct_whole_numbers_even_for_tiny_counts() -> None:
    ns = {"s": "http://www.w3.org/2000/svg"}
    for top in (0, 1, 2, 3, 7, 1000):
        root = ET.fromstring(render_svg([DayPoint("2026-11-30", top, top, top, 0)]))  # noqa: S314
        labels = [t.text for t in root.findall("s:text", ns) if t.get("text-anchor") == "end"]
        for panel in (labels[i : i + 3] for i in range(0, len(labels), 3)):
            numbers = [int(text or "") for text in panel]
            assert numbers[0] < numbers[1] < numbers[2] and numbers[2] >= top, (top, panel)
