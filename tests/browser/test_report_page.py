"""The ``/reports`` page in Chromium under a strict Content-Security-Policy (no script, no inline style
allowed): the server-rendered SVG chart draws, nothing is blocked, and a screenshot of the chart is kept.

The page comes from ``shared.report.page.render_page`` (30 days of summaries with hostile directory values),
served over loopback by a small stdlib server that adds the CSP header the app's pages send.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from shared.report.page import PageModel, render_page
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, MISSING_CHROMIUM

CSP = "default-src 'none'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def _summary(day: int) -> dict[str, Any]:
    return {
        "reportDate": f"2026-11-{day:02d}",
        "generatedAt": f"2026-11-{day:02d}T06:00:04Z",
        "totals": {
            "users": 24_000 + 35 * day,
            "enabled": 23_000 + 30 * day,
            "disabled": 1_000 + 5 * day,
            "members": 23_000 + 30 * day,
            "guests": 1_000 + 5 * day,
            "createdLast24h": 20 + (day * 7) % 30,
            "createdLast7d": 150,
        },
        "changes": {
            "since": None,
            "mode": "delta",
            "added": 3,
            "changed": 5,
            "removed": 1,
            "disabled": 2,
            "note": None,
        },
        "files": {"users.csv": {"rows": 24_000}, "changes.csv": {"rows": 9}},
    }


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    history = [_summary(day) for day in range(1, 31)]
    changes = [
        {
            "change": "changed",
            "id": "1",
            "userPrincipalName": "a@contoso.com",
            "displayName": "<script>alert(1)</script>",
            "changedFields": "department",
        },
        {
            "change": "added",
            "id": "2",
            "userPrincipalName": "b@contoso.com",
            "displayName": '"><img src=x onerror=alert(1)>',
            "changedFields": "",
        },
    ]
    html = render_page(PageModel(history[-1], history, changes, more_changes=False)).encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/reports"
    finally:
        server.shutdown()
        server.server_close()


def test_the_chart_renders_under_a_strict_csp(page_server: str, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), MISSING_CHROMIUM
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1400})
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(page_server)
            chart = page.locator("#chart svg")
            box = chart.bounding_box()
            assert box is not None and box["width"] >= 700 and box["height"] >= 500
            assert page.locator("#chart svg circle").count() == 30
            assert page.locator("#chart svg rect").count() >= 90
            assert (
                page.locator("#changes td", has_text="<script>alert(1)</script>").count() == 1
            )  # shown as text
            assert page.locator("img").count() == 0 and dialogs == []
            assert not [text for text in console if "Content Security Policy" in text], console
            shot = tmp_path / "report-chart.png"  # kept in the test's tmp dir (pytest keeps the last runs)
            chart.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            browser.close()
