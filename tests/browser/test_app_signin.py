"""Graph Functions' own sign-in in a real browser (headless Debian Chromium via playwright), through devhost,
the local tenant's pages and Azurite: sign in as the demo member and land on ``next``, the profile, paging and
searching people, the SharePoint title, sign-out (the session row gone, ``/api/me`` 401); admin consent as
the demo admin; a member without the role refused; an MFA step-up; a CAE revocation sending the person
through sign-in and back. Screenshots of each page go to the test's tmp dir (``screenshots/``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.devhost.fixtures import DevHostProcess
from tests.integration.test_signin_kit import SESSION_COOKIE, register_app_host, session_row_exists
from tests.support.apphost import start_app_host
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(
    browser_tenant: LocalTenant, azurite: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    host = start_app_host(
        tmp_path_factory.mktemp("browser-app"),
        browser_tenant.env,
        azurite.connection_string,  # type: ignore[attr-defined]
    )
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def site(browser_tenant: LocalTenant, app: DevHostProcess) -> Iterator[LocalTenant]:
    register_app_host(browser_tenant, app)
    try:
        yield browser_tenant
    finally:
        browser_tenant.reset()


class Shots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.directory / f"{name}.png"), full_page=True)


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path / "screenshots")


def through_tenant(page: Page, app: DevHostProcess, username: str, password: str) -> list[str]:
    """Sign in (and consent, approve MFA) on the tenant's pages until the browser is back on the app;
    returns the tenant pages passed through."""
    seen: list[str] = []
    for _ in range(6):
        page.wait_for_load_state()
        if page.url.startswith(app.base_url):
            return seen
        if page.locator("#signin-form").count():
            seen.append("signin")
            if page.locator("#username").is_editable():
                page.fill("#username", username)
            page.fill("#password", password)
            page.click("#signin")
        elif page.locator("#consent-form").count():
            seen.append("consent")
            page.click("#accept")
        elif page.locator("#mfa-form").count():
            seen.append("mfa")
            page.click("#mfa-approve")
        else:
            raise AssertionError(f"unexpected page {page.url}: {page.content()[:400]}")
        page.wait_for_load_state()
    assert page.url.startswith(app.base_url), page.url
    return seen


def member(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]


def admin(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"]


def session_id(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE), None)


def test_member_signs_in_browses_and_signs_out(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(app.url("/"))
    shots.take(page, "01-home-signed-out")
    page.goto(app.url("/auth/login?next=/me"))
    through_tenant(page, app, *member(site))
    assert page.url == app.url("/me")
    assert page.locator("main h1").inner_text() == "Your profile"
    assert site.env["DEMO_USER_USERNAME"].lower() in page.content().lower()
    shots.take(page, "02-profile")
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and len(cookie["value"]) < 100

    page.click("nav >> text=Users")
    first_rows = page.locator("tbody tr").all_inner_texts()
    assert first_rows
    page.click("a[rel=next]")
    assert page.locator("tbody tr").all_inner_texts() != first_rows
    shots.take(page, "03-users-page-2")
    page.click("a[rel=prev]")
    assert page.locator("tbody tr").all_inner_texts() == first_rows
    page.fill("#search", "Morgan")
    page.click("form.search button")
    assert "search=Morgan" in page.url
    assert any("Morgan" in row for row in page.locator("tbody tr").all_inner_texts())
    shots.take(page, "04-users-search")

    page.click("nav >> text=SharePoint")
    through_tenant(page, app, *member(site))  # no-op unless the tenant asks for consent
    assert page.locator("#sp-title").inner_text().strip() not in ("", "—")
    shots.take(page, "05-sharepoint")

    sid = session_id(context)
    assert sid is not None and session_row_exists(site, app, sid)
    page.click("header form button")  # Sign out (POST, same origin, CSRF token)
    page.wait_for_url(lambda url: url.startswith(app.base_url))
    shots.take(page, "06-signed-out")
    assert session_id(context) is None
    assert not session_row_exists(site, app, sid)
    api = context.request.get(app.url("/api/me"))
    assert api.status == 401


def test_admin_consent_as_the_demo_admin(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(app.url("/auth/login?next=/auth/admin-consent"))
    through_tenant(page, app, *admin(site))
    assert page.url == app.url("/auth/admin-consent")
    shots.take(page, "01-admin-consent")
    page.click("main form button")
    through_tenant(page, app, *admin(site))
    assert page.url.startswith(app.url("/auth/admin-consent/callback"))
    assert "Consent was granted" in page.locator("main").inner_text()
    shots.take(page, "02-admin-consent-granted")


def test_member_without_the_role_is_refused_admin_consent(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(app.url("/auth/login?next=/auth/admin-consent"))
    through_tenant(page, app, *member(site))
    assert "forbidden" in page.locator("main").inner_text()
    assert "Reports.Run" in page.locator("main").inner_text()
    shots.take(page, "01-refused")


def test_mfa_step_up_and_cae_revocation_come_back_to_the_page(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(app.url("/auth/login?next=/me"))
    through_tenant(page, app, *member(site))
    oid = context.request.get(app.url("/api/me")).json()["id"]

    # CAE: the person's sessions are revoked; Graph challenges; sign-in again and back to /me.
    site.control("POST", f"/users/{oid}/cae-event", {"revokeSessions": True})
    site.control("POST", "/entra/conditional-access", {"control": "mfa", "userId": oid})
    page.goto(app.url("/users"))
    assert not page.url.startswith(app.base_url)  # at the tenant: sign in again
    shots.take(page, "01-sign-in-again")
    seen = through_tenant(page, app, *member(site))
    assert "mfa" in seen, seen
    assert page.url == app.url("/users")
    assert page.locator("tbody tr").count() > 0
    shots.take(page, "03-back-on-users")
