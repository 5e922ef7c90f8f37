"""The single-page client at /spa/ in a real browser (headless Debian Chromium via playwright) with the real
MSAL.js: sign-in through the local tenant's pages, the profile and the newest mail through the API acting
for the person (on-behalf-of), the API refusing a token for another audience, and an MFA step-up through
the API's claims challenge. Screenshots go to the test's tmp dir (``screenshots/``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.app_kit import Shots, Watch, admin, browser_app, member, through_tenant
from tests.devhost.fixtures import DevHostProcess
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser

GRAPH = "https://graph.microsoft.com"


@pytest.fixture(scope="module")
def app(
    browser_tenant: LocalTenant, azurite: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    with browser_app(tmp_path_factory, browser_tenant, azurite, "browser-spa") as host:
        yield host


@pytest.fixture
def site(browser_tenant: LocalTenant, app: DevHostProcess) -> Iterator[LocalTenant]:
    """The tenant with this host's /spa/ on the client's spa platform and the member's consent to mail;
    reset afterwards (sessions, policies, consent)."""
    tenant = browser_tenant
    spa_id = tenant.env["SPA_CLIENT_ID"]
    registered = tenant.control("GET", f"/apps/{spa_id}")["spaRedirectUris"]
    tenant.control("PATCH", f"/apps/{spa_id}", {"spaRedirectUris": [*registered, app.url("/spa/")]})
    for person in ("DEMO_USER_USERNAME", "DEMO_ADMIN_USERNAME"):
        tenant.control(
            "POST",
            f"/apps/{tenant.env['ENTRA_CLIENT_ID']}/consent/grant",
            {"resource": GRAPH, "scopes": ["Mail.Read"], "userId": tenant.env[person]},
            expect=201,
        )
    try:
        yield tenant
    finally:
        tenant.reset()


def signed_in(page: Page, app: DevHostProcess, account: tuple[str, str]) -> list[str]:
    page.goto(app.url("/spa/"))
    page.click("#sign-in")
    page.wait_for_url(lambda url: not url.startswith(app.base_url))
    return through_tenant(page, app, *account)


def test_sign_in_profile_mail_and_a_token_for_another_audience(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    watch = Watch(page)
    page.goto(app.url("/spa/"))
    page.wait_for_selector("#sign-in:not([hidden])")
    shots.take(page, "01-signed-out")
    assert "signin" in signed_in(page, app, member(site))
    page.wait_for_selector("#profile:not([hidden])")
    page.wait_for_selector("#mail-list li")
    shots.take(page, "02-profile-and-mail")
    assert page.inner_text("#profile-upn").lower() == site.env["DEMO_USER_USERNAME"].lower()
    assert page.inner_text("#who").lower() == site.env["DEMO_USER_USERNAME"].lower()
    assert page.locator("#mail-list li").count() == 5
    assert page.locator("#error").is_hidden()
    # Hostile subjects and names stay text: nothing ran, no element was injected.
    assert page.locator("#mail-list img, #mail-list script").count() == 0 and watch.dialogs == []

    page.click("#wrong-audience")
    # A locator, not wait_for_function: a string predicate is an eval, which the page's CSP refuses.
    expect(page.locator("#wrong-audience-result")).not_to_be_empty(timeout=30_000)
    result = page.inner_text("#wrong-audience-result")
    assert result.startswith("Refused as it must be: 401 unauthenticated"), result
    shots.take(page, "03-wrong-audience-refused")
    assert not [line for line in watch.console if "Content Security Policy" in line], watch.console


def test_an_mfa_step_up_through_the_claims_challenge(
    site: LocalTenant, app: DevHostProcess, context: BrowserContext, shots: Shots
) -> None:
    # MFA required for the admin, for the app's exchanges only: the sign-in itself needs none. (The admin,
    # not the member: the host keeps the member's Graph token from the other test, rightly.)
    site.control(
        "POST",
        "/entra/conditional-access",
        {
            "control": "mfa",
            "userId": site.env["DEMO_ADMIN_USERNAME"],
            "clientId": site.env["ENTRA_CLIENT_ID"],
        },
        expect=201,
    )
    page = context.new_page()
    seen = signed_in(page, app, admin(site))
    assert "mfa" not in seen
    # The API answered 401 insufficient_claims; the client goes back to the tenant with the claims.
    page.wait_for_url(lambda url: not url.startswith(app.base_url))
    shots.take(page, "04-step-up")
    assert "mfa" in through_tenant(page, app, *admin(site))
    page.wait_for_selector("#profile:not([hidden])")
    page.wait_for_selector("#mail-list li")
    shots.take(page, "05-after-step-up")
    assert page.inner_text("#profile-upn").lower() == site.env["DEMO_ADMIN_USERNAME"].lower()
    assert page.locator("#error").is_hidden()


def test_the_client_is_served_with_a_strict_csp(app: DevHostProcess, context: BrowserContext) -> None:
    response = context.request.get(app.url("/spa/"))
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in response.text() and "style=" not in response.text()
    assert context.request.get(app.url("/spa/vendor/versions.json")).json()["@azure/msal-browser"] == "5.29.0"
    for bad in ("/spa/../host.json", "/spa/vendor/../../spa.py", "/spa/missing.js", "/spa/app.py"):
        assert context.request.get(app.url(bad)).status == 404, bad
