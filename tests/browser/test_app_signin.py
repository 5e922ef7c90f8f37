"""Graph Functions' own sign-in in a real browser (headless Debian Chromium via playwright), through devhost,
the local tenant's pages and Azurite: sign in as the demo member and land on ``next``, the profile, paging and
searching people, the SharePoint title, sign-out (the session row gone, ``/api/me`` 401); admin consent as
the demo admin; a member without the role refused; an MFA step-up; a CAE revocation sending the person
through sign-in and back. Screenshots of each page go to the test's tmp dir (``screenshots/``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext

from tests.browser.app_kit import Shots, admin, browser_app, member, registered, session_id, through_tenant
from tests.devhost.fixtures import DevHostProcess
from tests.integration.test_signin_kit import SESSION_COOKIE, session_row_exists
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(
    browser_tenant: LocalTenant, azurite: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    with browser_app(tmp_path_factory, browser_tenant, azurite, "browser-app") as host:
        yield host


@pytest.fixture
def site(browser_tenant: LocalTenant, app: DevHostProcess) -> Iterator[LocalTenant]:
    with registered(browser_tenant, app) as tenant:
        yield tenant


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
