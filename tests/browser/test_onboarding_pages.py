"""Onboarding an organisation in a real browser (headless Debian Chromium via playwright), through devhost
(``ENTRA_TENANCY=multi``), the local tenant's pages (the registration made multi-tenant for the module;
a reset restores it) and Azurite: the customer administrator's walk to "onboarded" and then a member of
the customer signed in; a declined consent; a member who is not an administrator. Screenshots go to the
test's tmp dir (``screenshots/``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.app_kit import Shots, Watch, browser_app, session_id, through_tenant
from tests.devhost.fixtures import DevHostProcess
from tests.integration.tenants_kit import register
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(
    browser_tenant: LocalTenant, azurite: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    overrides = {"ENTRA_TENANCY": "multi", "TENANTS_TABLE": "browsertenants"}
    with browser_app(tmp_path_factory, browser_tenant, azurite, "browser-onboard", overrides) as host:
        yield host


@pytest.fixture
def site(browser_tenant: LocalTenant, app: DevHostProcess) -> Iterator[LocalTenant]:
    """The tenant with a multi-tenant registration and the host's URIs; reset (single-tenant again, the
    customer without the app) after the test."""
    register(browser_tenant, app)
    app_id = browser_tenant.env["ENTRA_CLIENT_ID"]
    browser_tenant.control("PATCH", f"/apps/{app_id}", {"signInAudience": "AzureADMultipleOrgs"})
    try:
        yield browser_tenant
    finally:
        browser_tenant.reset()


def start(page: Page, app: DevHostProcess, group: str = "") -> None:
    page.goto(app.url("/onboard"))
    assert page.locator("main h1").inner_text() == "Onboard your organisation"
    if group:
        page.fill("#mailbox_group", group)
    page.click("main form button")


def outcome(page: Page) -> str:
    return str(page.locator("[data-outcome]").get_attribute("data-outcome"))


def test_the_customer_admin_onboards_and_a_member_then_signs_in(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, chromium: Browser, shots: Shots
) -> None:
    env = site.env
    page = context.new_page()
    watch = Watch(page)
    start(page, app, env["CUSTOMER_MAIL_READERS_GROUP_ID"])
    seen = through_tenant(page, app, env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_ADMIN_PASSWORD"])
    assert "consent" in seen
    shots.take(page, "01-onboarded")
    assert page.url.startswith(app.url("/onboard/callback"))
    assert outcome(page) == "onboarded"
    text = page.locator("main").inner_text()
    assert env["CUSTOMER_DOMAIN"] in text and "User.Read.All" in text
    assert env["CUSTOMER_MAIL_READERS_GROUP_ID"] in text
    assert watch.dialogs == []

    other = chromium.new_context()  # another person's browser
    try:
        person = other.new_page()
        person.goto(app.url("/auth/login?next=/me"))
        through_tenant(person, app, env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"])
        assert person.url == app.url("/me")
        assert env["CUSTOMER_MEMBER_USERNAME"].lower() in person.content().lower()
        shots.take(person, "02-customer-member-profile")
        assert session_id(other) is not None
    finally:
        other.close()


def test_a_declined_consent_ends_on_its_page(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    env = site.env
    page = context.new_page()
    start(page, app)
    page.fill("#username", env["CUSTOMER_ADMIN_USERNAME"])
    page.fill("#password", env["CUSTOMER_ADMIN_PASSWORD"])
    page.click("#signin")
    page.wait_for_load_state()
    # The sign-in's own consent (the first consent page) is accepted; the organisation-wide admin consent
    # that follows is declined.
    page.wait_for_selector("#consent-form")
    page.click("#accept")
    page.wait_for_selector("#consent-form")
    shots.take(page, "03-admin-consent")
    page.click("#cancel")
    page.wait_for_url(lambda url: url.startswith(app.base_url))
    shots.take(page, "04-declined")
    assert outcome(page) == "declined"
    assert "Nothing was recorded" in page.locator("main").inner_text()
    assert page.locator("main form button").count() == 1  # start again


def test_a_member_is_told_only_an_administrator_can_onboard(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    env = site.env
    page = context.new_page()
    start(page, app)
    page.fill("#username", env["CUSTOMER_MEMBER_USERNAME"])
    page.fill("#password", env["CUSTOMER_MEMBER_PASSWORD"])
    page.click("#signin")
    page.wait_for_selector("#consent-form")
    assert page.locator("#admin-required").count() == 1  # Entra's "Need admin approval"
    shots.take(page, "05-need-admin-approval")
    page.click("#cancel")  # "Return to the application without granting consent"
    page.wait_for_url(lambda url: url.startswith(app.base_url))
    shots.take(page, "06-not-an-administrator")
    assert outcome(page) in ("not_admin", "declined")
    assert "administrator" in page.locator("main").inner_text()
