"""The mail and audit pages in a real browser (headless Chromium via playwright), through devhost, the local
tenant and Azurite: the demo admin (who holds Mail.Read.All and Audit.Read) reads a mailbox whose newest
message carries hostile markup in its subject, sender and preview: it renders inert (no dialog, no script,
no element injected, the markup visible as text); the message page shows the body as text; out-of-scope and
mailbox-less answers are shown on the page; the audit page lists the page reads; the demo member (no role)
is refused, and the refusal is recorded. Screenshots go to the test's tmp dir (``screenshots/``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page

from tests.browser.app_kit import Shots, Watch, admin, browser_app, member, registered, through_tenant
from tests.devhost.fixtures import DevHostProcess
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser

HOSTILE_SUBJECT = "<script>window.__pwned=1;alert('subject')</script><img src=x onerror=alert('img')> Q4"
HOSTILE_SENDER = '"><svg onload=alert("sender")>'
HOSTILE_BODY = (
    "Hello <img src=x onerror=alert('preview')> {{7*7}} <b>bold</b> </pre><script>alert(9)</script>"
)


@pytest.fixture(scope="module")
def mail_app(
    browser_tenant: LocalTenant, azurite: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    overrides = {"MAILBOX_SCOPE": "*"}
    with browser_app(tmp_path_factory, browser_tenant, azurite, "browser-mail-app", overrides) as host:
        yield host


@pytest.fixture
def site(browser_tenant: LocalTenant, mail_app: DevHostProcess) -> Iterator[LocalTenant]:
    with registered(browser_tenant, mail_app) as tenant:
        yield tenant


def assert_inert(page: Page, watch: Watch) -> None:
    main = page.locator("main")
    assert watch.dialogs == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert main.locator("script, img, svg, iframe, b").count() == 0


def test_hostile_mail_renders_inert_and_reads_are_audited(
    site: LocalTenant, mail_app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    upn = site.env["DEMO_ADMIN_USERNAME"]
    site.control(
        "POST",
        f"/users/{upn}/messages",
        {
            "subject": HOSTILE_SUBJECT,
            "body": HOSTILE_BODY,
            "contentType": "text",
            "from": {"name": HOSTILE_SENDER, "address": "attacker@evil.example"},
            "isRead": False,
            "receivedDateTime": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat(),
        },
    )
    page = context.new_page()
    watch = Watch(page)
    page.goto(mail_app.url("/auth/login?next=/mail"))
    through_tenant(page, mail_app, *admin(site))
    assert page.url == mail_app.url("/mail")
    page.fill("#mailbox", upn)
    page.click("form.search button")
    rows = page.locator("tbody tr")
    assert rows.count() == 10
    first = rows.first.inner_text()
    assert HOSTILE_SUBJECT in first and HOSTILE_SENDER in first and "Unread" in first
    assert "Hello <img src=x onerror=alert('preview')> {{7*7}}" in first  # preview, as text
    assert_inert(page, watch)
    shots.take(page, "01-mail-hostile-inert")

    page.click("a[rel=next]")
    assert page.locator("tbody tr").count() >= 1 and HOSTILE_SUBJECT not in page.locator("tbody").inner_text()
    page.click("text=Newest")
    page.click("tbody tr >> nth=0 >> a")
    assert page.url.startswith(mail_app.url("/mail/message?"))
    assert page.locator("main h1").inner_text() == HOSTILE_SUBJECT
    assert page.locator("pre.body").inner_text().strip() == HOSTILE_BODY
    assert_inert(page, watch)
    shots.take(page, "02-message-as-text")

    page.goto(mail_app.url("/mail?mailbox=nolicense@contoso.onmicrosoft.com"))
    assert "mailbox_not_found" in page.locator("main [role=alert]").inner_text()
    page.goto(mail_app.url("/mail?mailbox=nobody-here@contoso.onmicrosoft.com"))
    assert "user_not_found" in page.locator("main [role=alert]").inner_text()
    page.goto(mail_app.url("/mail?mailbox=a/../b"))
    assert "invalid_parameter" in page.locator("main [role=alert]").inner_text()
    shots.take(page, "03-mail-problem")

    api = context.request.get(mail_app.url(f"/api/users/{upn}/messages?top=2"))  # the session cookie
    assert api.status == 200 and len(api.json()["value"]) == 2

    page.click("nav >> text=Audit")
    table = page.locator("tbody").inner_text()
    assert "messages.list" in table and "messages.get" in table and "mailbox_not_found" in table
    assert upn.lower() in table and HOSTILE_SUBJECT not in table
    assert_inert(page, watch)
    shots.take(page, "04-audit")


def test_a_member_without_the_role_is_refused_and_recorded(
    site: LocalTenant, mail_app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(mail_app.url("/auth/login?next=/mail"))
    through_tenant(page, mail_app, *member(site))
    assert (
        "forbidden" in page.locator("main").inner_text()
        and "Mail.Read.All" in page.locator("main").inner_text()
    )
    upn = site.env["DEMO_ADMIN_USERNAME"]
    response = page.goto(mail_app.url(f"/mail?mailbox={upn}"))
    assert response is not None and response.status == 403
    shots.take(page, "01-member-refused")
    assert context.request.get(mail_app.url(f"/api/users/{upn}/messages")).status == 403
    assert page.goto(mail_app.url("/audit")).status == 403  # type: ignore[union-attr]

    reader = Caller(site)
    try:
        records = requests.get(
            mail_app.url("/api/audit/mail"),
            params={"actor": site.env["DEMO_USER_USERNAME"]},
            headers={"Authorization": f"Bearer {reader.token()}"},
            timeout=30,
        ).json()["value"]
    finally:
        reader.close()
    records = [r for r in records if r["actor"]["kind"] == "person"]  # the table is the session's
    assert {(r["outcome"], r["errorCode"], r["actor"]["kind"]) for r in records} == {
        ("denied", "forbidden", "person")
    }
    assert {r["channel"] for r in records} == {"page", "api"}
