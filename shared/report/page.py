"""The ``/reports`` page's data and HTML: the latest summary, the 30-day chart and the changes list.

Server-rendered from ``templates/reports.html`` with autoescaping; no script, no inline style (the chart
is an SVG with presentation attributes, :mod:`shared.report.chart`), so the page fits a strict CSP.
:func:`render_page` returns the report's part of the page (escaped markup); the route
(:mod:`blueprints.report_pages`, people holding ``Reports.Read``) puts it in the page framework's
``shared/web/templates/reports.html``. This module only needs the
:class:`~shared.report.service.ReportService`.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from markupsafe import Markup

from shared.core.errors import NotFound
from shared.core.records import Record
from shared.report import layout
from shared.report.chart import points_from_summaries, render_svg
from shared.report.layout import parse_report_date
from shared.report.service import HISTORY_DAYS, ReportService
from shared.report.store import _storage
from shared.report.templating import render

#: Changes listed on the page; the CSV has them all.
MAX_CHANGES_SHOWN = 200


class PageModel(Record):
    summary: dict[str, Any] | None
    history: list[dict[str, Any]]
    changes: list[dict[str, str]]
    more_changes: bool


def build_model(service: ReportService, date: dt.date | None = None) -> PageModel:
    """The report of ``date`` (default: the latest), the last 30 days and the report's first changes
    (streamed, at most MAX_CHANGES_SHOWN). Before the first report: an empty model (the page's empty
    state), not an error.

    Raises:
        NotFound: ``date`` was given and has no completed report (404 ``report_not_found``).
        StorageUnavailable: the report container is unreachable (503 ``storage_unavailable``).
    """
    if date is not None:
        summary = service.summary(date)
    else:
        try:
            summary = service.latest()
        except NotFound:
            return PageModel(None, [], [], False)
    date = parse_report_date(str(summary["reportDate"]))
    name = layout.report_blob(date, summary, "changes.csv")
    rows, more = _storage("reading the changes", lambda: _first_changes(service, name))
    return PageModel(summary, service.history(HISTORY_DAYS), rows, more)


def _first_changes(service: ReportService, name: str) -> tuple[list[dict[str, str]], bool]:
    rows: list[dict[str, str]] = []
    for row in _changes(service, name):
        if len(rows) == MAX_CHANGES_SHOWN:
            return rows, True
        rows.append(row)
    return rows, False


def _changes(service: ReportService, name: str) -> Iterator[dict[str, str]]:
    """changes.csv rows, read chunk by chunk (the file is never loaded whole)."""
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    try:
        chunks = service.store.blob(name).download_blob().chunks()
    except ResourceNotFoundError:
        return
    lines = _lines(chunks)
    yield from csv.DictReader(lines)


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    pending = b""
    first = True
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            text = line.decode("utf-8")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            yield text + "\n"
    if pending:
        yield pending.decode("utf-8").removeprefix("\ufeff" if first else "")


def render_page(model: PageModel) -> Markup:
    """The report's part of the page: HTML, every directory value escaped (safe to embed as is)."""
    summary = model.summary
    totals: list[tuple[str, int]] = []
    links: dict[str, str] = {}
    if summary is not None:
        t = summary["totals"]
        totals = [
            ("Users", t["users"]),
            ("Enabled", t["enabled"]),
            ("Disabled", t["disabled"]),
            ("Members", t["members"]),
            ("Guests", t["guests"]),
            ("Created in the last 24 hours", t["createdLast24h"]),
            ("Created in the last 7 days", t["createdLast7d"]),
        ]
        base = f"/api/reports/users/{summary['reportDate']}"
        links = {"users": f"{base}/users.csv", "changes": f"{base}/changes.csv"}
    # Links to the other reports of the chart's window, newest first.
    earlier = [
        {"date": str(day["reportDate"]), "href": f"/reports?date={day['reportDate']}"}
        for day in reversed(model.history)
        if summary is None or day.get("reportDate") != summary["reportDate"]
    ]
    chart = Markup(render_svg(points_from_summaries(model.history)))  # noqa: S704 - built escaped
    return Markup(  # noqa: S704 - rendered by an autoescaping environment
        render(
            "reports.html",
            summary=summary,
            totals=totals,
            chart=chart,
            days=HISTORY_DAYS,
            changes=model.changes,
            more_changes=model.more_changes,
            links=links,
            earlier=earlier,
        )
    )
