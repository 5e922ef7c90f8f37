"""The daily user report: a streamed users.csv, a changes.csv from the users delta query, and summary.json.

Modules, one concern each:

* :mod:`.layout`: report dates and the blob names of one report.
* :mod:`.listing`: every user, page by page, through :meth:`shared.graph.client.GraphClient.iter_pages`.
* :mod:`.csv_blob`: a CSV written to a block blob in staged blocks and one commit.
* :mod:`.delta`: what changed since the previous report (users delta query, deltaLink kept per report).
* :mod:`.summary`: the totals, accumulated row by row in constant memory.
* :mod:`.store`: the report container: JSON blobs, conditional writes, the run lease.
* :mod:`.run`: one run: coordination across instances, progress, the commit point.
* :mod:`.mail`: the summary mailed once per report date.
* :mod:`.links`: short-lived read-only SAS URLs of the CSVs.
* :mod:`.chart`, :mod:`.page`: the 30-day SVG chart and the ``/reports`` page's HTML.
"""

from shared.report.layout import parse_report_date, schedule_zone
from shared.report.page import build_model, render_page
from shared.report.run import RunRequest, RunResult
from shared.report.service import ReportService, timer_report_date

__all__ = [
    "ReportService",
    "RunRequest",
    "RunResult",
    "build_model",
    "parse_report_date",
    "render_page",
    "schedule_zone",
    "timer_report_date",
]
