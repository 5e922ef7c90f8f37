"""The ``/reports`` page in a real browser (headless Chromium via playwright), through devhost, the local
tenant's sign-in pages and Azurite, under the app's own strict Content-Security-Policy (no script, no
inline style): the demo admin (who holds Reports.Read and Reports.Run) signs in, sees the totals, the
server-rendered SVG chart (drawn, nothing blocked) and the changes (a new user whose name is markup shows as
text), downloads changes.csv by following the page's link (the API's 303 to a SAS URL, with the session
cookie), and starts a forced re-run with the "run now" form, whose status the page shows until it
completes. The demo member (no role) gets the 403 page. Screenshots (the chart on its own, and each page)
are kept as artifacts in the test's tmp dir (``screenshots/``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.browser.app_kit import Shots, Watch, admin, member, registered, through_tenant
from tests.devhost.fixtures import DevHostProcess
from tests.integration.test_report import NEVER, run_on_demand
from tests.support.apphost import Caller, start_app_host
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser

HOSTILE_NAME = "<script>window.__pwned=1</script><img src=x onerror=alert(1)> Zoë"


@pytest.fixture(scope="module")
def report_app(
    browser_tenant: LocalTenant, azurite: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DevHostProcess, str]]:
    """A host with two reports (yesterday's baseline, today's delta with one added user); returns the
    host and today's date."""
    tag = uuid.uuid4().hex[:10]
    host = start_app_host(
        tmp_path_factory.mktemp("browser-report-app"),
        browser_tenant.env,
        azurite.connection_string,
        overrides={"REPORT_CONTAINER": f"rep{tag}", "REPORT_QUEUE": f"runs-{tag}", "REPORT_SCHEDULE": NEVER},
    )
    caller = Caller(browser_tenant)
    try:
        today = dt.datetime.now(dt.UTC).date()
        run_on_demand(host, caller.token(), (today - dt.timedelta(days=1)).isoformat())
        browser_tenant.control("POST", "/users", {"displayName": HOSTILE_NAME}, expect=201)
        run_on_demand(host, caller.token(), today.isoformat())
        yield host, today.isoformat()
    finally:
        caller.close()
        browser_tenant.reset()
        host.stop()


@pytest.fixture
def site(browser_tenant: LocalTenant, report_app: tuple[DevHostProcess, str]) -> Iterator[LocalTenant]:
    with registered(browser_tenant, report_app[0]) as tenant:
        yield tenant


def assert_clean(page: Page, watch: Watch) -> None:
    """No script ran, nothing was injected, the CSP blocked nothing."""
    assert watch.dialogs == [] and page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main script, main img, main iframe").count() == 0
    assert not [text for text in watch.console if "Content Security Policy" in text], watch.console


def test_the_admin_sees_the_chart_and_changes_downloads_a_csv_and_runs_now(
    site: LocalTenant, report_app: tuple[DevHostProcess, str], context: BrowserContext, shots: Shots
) -> None:
    app, today = report_app
    page = context.new_page()
    watch = Watch(page)
    page.goto(app.url("/auth/login?next=/reports"))
    through_tenant(page, app, *admin(site))
    assert page.url == app.url("/reports")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Reports"
    assert today in page.locator("#report-date").inner_text()
    assert page.locator("#totals").inner_text().count("\n") >= 6

    chart = page.locator("#chart svg")
    box = chart.bounding_box()
    assert box is not None and box["width"] >= 700 and box["height"] >= 500  # drawn at its size
    assert page.locator("#chart svg circle").count() == 2  # users over time: two reports
    assert page.locator("#chart svg rect").count() >= 4 + 2  # created bars, stacked members/guests
    changes = page.locator("#changes tbody tr")
    assert changes.count() == 1 and HOSTILE_NAME in changes.first.inner_text()  # markup shown as text
    assert "added" in changes.first.inner_text()
    assert_clean(page, watch)
    chart_shot = shots.directory / "report-chart.png"
    chart.screenshot(path=str(chart_shot))
    assert chart_shot.stat().st_size > 10_000 and chart_shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shots.take(page, "01-reports")

    with page.expect_download() as download_info:
        page.click("#files a >> text=changes.csv")
    download = download_info.value
    assert download.suggested_filename == f"changes-{today}.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("change,") and HOSTILE_NAME in text
    assert download.url.startswith("http://127.0.0.1:") and "sig=" in download.url  # the SAS URL

    # A forced re-run of today's completed report (a completed past date is refused: 409).
    page.fill("#run-date", today)
    page.check("#run-form input[name=force]")
    page.click("#run-form button")
    assert page.url == app.url(f"/reports?run={today}")
    assert "(forced re-run)" in page.locator("#run-status").inner_text()
    deadline = time.monotonic() + 60
    while page.locator("#run-state").inner_text() != "completed":
        assert page.locator("#run-state").inner_text() in ("queued", "running"), page.content()[:800]
        assert time.monotonic() < deadline, "the forced run did not complete"
        assert page.locator("#run-status a", has_text="Refresh the status").count() == 1
        page.wait_for_timeout(500)
        page.reload()
    assert_clean(page, watch)
    shots.take(page, "02-run-completed")
    page.click(f"#run-status >> text=Show the report of {today}")
    assert today in page.locator("#report-date").inner_text()
    assert_clean(page, watch)
    assert "AUDIT forced re-run of report " + today + " by person " in app.log()


def test_a_member_without_the_role_is_refused(
    site: LocalTenant, report_app: tuple[DevHostProcess, str], context: BrowserContext, shots: Shots
) -> None:
    app, today = report_app
    page = context.new_page()
    page.goto(app.url("/auth/login?next=/reports"))
    through_tenant(page, app, *member(site))
    main = page.locator("main").inner_text()
    assert "forbidden" in main and "Reports.Read" in main and today not in main
    response = page.goto(app.url("/reports"))
    assert response is not None and response.status == 403
    assert context.request.get(app.url("/api/reports/users/latest")).status == 403  # the cookie, no role
    shots.take(page, "01-member-refused")
