"""The local tenant's sign-in and consent pages in a real browser (headless Debian Chromium via playwright).

What ``requests`` cannot show (tests/emulator drives the same pages with it): that the shipped form_post page
auto-submits with its nonce-tagged script under the page's CSP, that Chromium accepts and sends back the
``ESTSAUTH`` cookie (``Secure; SameSite=None; HttpOnly``) so ``prompt=none`` succeeds silently, that the
``Origin`` header Chromium puts on the form posts passes the tenant's cross-site check (and a real cross-site
post is refused), and that hostile display names reach the DOM as text. The redirect target is a loopback
capture server registered as a redirect URI of Graph Functions; codes are redeemed with a certificate
client assertion (Graph Functions' secret lives only in the vault).
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.capture import CaptureServer
from tests.emulator.entra_flow import (
    JWT_BEARER,
    assertion,
    graph_token_claims,
    pkce_pair,
    token_post,
    verify_with_jwks,
)
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Consented for everyone in the seed (AllPrincipals): no consent page.
CONSENTED = "openid profile offline_access User.Read"
# Mail.Read is required by Graph Functions but not consented for members: a consent page.
WITH_MAIL = f"{CONSENTED} Mail.Read"
HOSTILE_APP = "<img src=x onerror=window.__pwned=1><script>window.__pwned=1</script>"
HOSTILE_USER = '"><script>window.__pwned=2</script><img src=x onerror="window.__pwned=2">'


def authorize_url(tenant: LocalTenant, capture: CaptureServer, **params: str) -> str:
    query = {
        "client_id": tenant.env["ENTRA_CLIENT_ID"],
        "response_type": "code",
        "redirect_uri": capture.url,
        "scope": CONSENTED,
        "state": secrets.token_urlsafe(12),
        **params,
    }
    return f"{tenant.authority}/oauth2/v2.0/authorize?{urlencode(query)}"


def at_capture(capture: CaptureServer) -> Callable[[str], bool]:
    return lambda url: url.startswith(capture.url)


def sign_in(page: Page, password: str, username: str | None = None) -> None:
    page.wait_for_selector("#signin-form")
    if username is not None:
        page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin")


def member(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]


def pwned(page: Page) -> object:
    return page.evaluate("() => window.__pwned")


def test_code_flow_with_pkce_consent_and_redeem(
    tenant: LocalTenant, capture: CaptureServer, context: BrowserContext
) -> None:
    username, password = member(tenant)
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    page = context.new_page()
    page.goto(
        authorize_url(
            tenant,
            capture,
            scope=WITH_MAIL,
            response_mode="query",
            state=state,
            nonce=nonce,
            code_challenge=challenge,
            code_challenge_method="S256",
            login_hint=username,
        )
    )
    assert page.inner_text("#app-name") == "Graph Functions"
    assert page.input_value("#username") == username  # login_hint prefills
    sign_in(page, password)

    page.wait_for_selector("#consent-form")
    assert page.inner_text("#app-name") == "Graph Functions"
    assert page.inner_text("#account-name")
    rows = page.locator("li.permission")
    asked = {
        (rows.nth(i).get_attribute("data-scope"), rows.nth(i).get_attribute("data-type"))
        for i in range(rows.count())
    }
    assert asked == {("Mail.Read", "Delegated")}  # only what members have not consented
    assert page.locator("#consent-org").count() == 0  # members cannot consent for the organization
    # Chromium kept the SSO cookie: Secure + SameSite=None + HttpOnly is a combination it accepts.
    cookie = next(c for c in context.cookies() if c["name"] == "ESTSAUTH")
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "None")
    assert cookie["domain"] == "127.0.0.1" and cookie["path"] == "/"

    page.click("#accept")
    page.wait_for_url(at_capture(capture))
    got = capture.only()
    assert got.method == "GET" and got.path == "/callback" and not got.form
    assert got.query["state"] == state and got.query["code"] and "error" not in got.query

    resp = token_post(
        tenant,
        {
            "grant_type": "authorization_code",
            "client_id": tenant.env["ENTRA_CLIENT_ID"],
            "code": got.query["code"],
            "redirect_uri": capture.url,
            "code_verifier": verifier,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(tenant),
        },
    )
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    id_token = verify_with_jwks(tenant, tokens["id_token"], tenant.env["ENTRA_CLIENT_ID"])
    assert id_token["nonce"] == nonce and id_token["preferred_username"] == username
    access = graph_token_claims(tenant, tokens["access_token"])
    assert access["aud"] == GRAPH_APP_ID
    assert "Mail.Read" in access["scp"].split() and access["upn"] == username
    assert tokens["refresh_token"]


def test_form_post_auto_submits(tenant: LocalTenant, capture: CaptureServer, context: BrowserContext) -> None:
    username, password = member(tenant)
    state = secrets.token_urlsafe(16)
    page = context.new_page()
    page.goto(authorize_url(tenant, capture, response_mode="form_post", state=state))
    sign_in(page, password, username=username)
    # The sign-in post answers with the form_post page; only its own script can move the browser on.
    page.wait_for_url(at_capture(capture))
    page.wait_for_selector("#captured")
    got = capture.only()
    assert got.method == "POST" and got.path == "/callback" and not got.query
    assert got.form["code"] and got.form["state"] == state and got.form["session_state"]
    assert "error" not in got.form


def test_wrong_password_stays_on_the_page(
    tenant: LocalTenant, capture: CaptureServer, context: BrowserContext
) -> None:
    username, password = member(tenant)
    login = tenant.env["ENTRA_AUTHORITY_HOST"]
    page = context.new_page()
    page.goto(authorize_url(tenant, capture, login_hint=username))
    sign_in(page, password + "-wrong")
    page.wait_for_selector("#error")
    assert page.inner_text("#error").startswith("AADSTS50126: Your account or password is incorrect.")
    assert page.url.startswith(f"{login}/") and urlsplit(page.url).path.endswith("/login")
    assert page.input_value("#username") == username and page.input_value("#password") == ""
    assert not capture.received
    assert not [c for c in context.cookies() if c["name"] == "ESTSAUTH"]
    # The re-rendered page carries the same flow: the right password now completes it.
    sign_in(page, password)
    page.wait_for_url(at_capture(capture))
    assert capture.only().query["code"]


def test_prompt_none_uses_the_browser_session(
    tenant: LocalTenant, capture: CaptureServer, chromium: Browser, context: BrowserContext
) -> None:
    username, password = member(tenant)
    page = context.new_page()
    page.goto(authorize_url(tenant, capture))
    sign_in(page, password, username=username)
    page.wait_for_url(at_capture(capture))
    first = capture.only().query
    assert first["code"]
    capture.clear()

    state = secrets.token_urlsafe(16)
    page.goto(authorize_url(tenant, capture, prompt="none", state=state, login_hint=username))
    page.wait_for_url(at_capture(capture))
    silent = capture.only().query
    assert silent["state"] == state and silent["code"] and silent["code"] != first["code"]
    assert silent["session_state"] == first["session_state"] and "error" not in silent
    capture.clear()

    other = chromium.new_context()
    try:
        page = other.new_page()
        page.goto(authorize_url(tenant, capture, prompt="none", state=state))
        page.wait_for_url(at_capture(capture))
        denied = capture.only().query
    finally:
        other.close()
    assert denied["error"] == "login_required" and "code" not in denied
    assert denied["error_description"].startswith("AADSTS50058: ") and denied["state"] == state


def test_hostile_names_render_as_text(tenant: LocalTenant, capture: CaptureServer, chromium: Browser) -> None:
    username, password = member(tenant)
    tenant.control("PATCH", f"/apps/{tenant.env['ENTRA_CLIENT_ID']}", {"displayName": HOSTILE_APP})
    tenant.control("PATCH", f"/users/{username}", {"displayName": HOSTILE_USER})
    # bypass_csp: the page's CSP would stop injected scripts too; with it off, escaping is the only defence.
    context = chromium.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(authorize_url(tenant, capture, scope=WITH_MAIL, login_hint=username))
        assert page.inner_text("#app-name") == HOSTILE_APP
        assert page.locator("img, #app-name *").count() == 0
        assert pwned(page) is None
        sign_in(page, password)

        page.wait_for_selector("#consent-form")
        assert page.inner_text("#app-name") == HOSTILE_APP
        assert page.inner_text("#account-name") == HOSTILE_USER
        assert page.locator("img, script, #app-name *, #account-name *").count() == 0
        assert pwned(page) is None
        page.click("#accept")
        page.wait_for_url(at_capture(capture))
        assert capture.only().query["code"]
        capture.clear()

        # A hostile state reflected into the form_post page's hidden input must survive byte for byte.
        state = f'x"><script>window.__pwned=3</script>&amp;{HOSTILE_APP}'
        page.goto(authorize_url(tenant, capture, response_mode="form_post", state=state))
        page.wait_for_url(at_capture(capture))
        assert capture.only().form["state"] == state
        assert pwned(page) is None
    finally:
        context.close()


def test_cancel_on_the_consent_page(
    tenant: LocalTenant, capture: CaptureServer, context: BrowserContext
) -> None:
    username, password = member(tenant)
    state = secrets.token_urlsafe(16)
    page = context.new_page()
    page.goto(authorize_url(tenant, capture, scope=WITH_MAIL, state=state, login_hint=username))
    sign_in(page, password)
    page.wait_for_selector("#consent-form")
    page.click("#cancel")
    page.wait_for_url(at_capture(capture))
    got = capture.only().query
    assert got["error"] == "access_denied" and got["error_subcode"] == "cancel" and got["state"] == state
    assert got["error_description"].startswith("AADSTS65004: ") and "code" not in got
    grants = tenant.control("GET", f"/apps/{tenant.env['ENTRA_CLIENT_ID']}")["oauth2PermissionGrants"]
    assert not [g for g in grants if "Mail.Read" in g["scope"].split()]


def test_cross_origin_form_post_is_refused(
    tenant: LocalTenant, capture: CaptureServer, context: BrowserContext
) -> None:
    """A page on another origin posting the sign-in form (even with a live flow id) gets the 403 page."""
    username, password = member(tenant)
    page = context.new_page()
    page.goto(authorize_url(tenant, capture))
    flow = page.input_value("#flow")
    action = f"{tenant.authority}/login"
    fields = {"flow": flow, "username": username, "password": password}
    inputs = "".join(f'<input name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
    capture.pages["/attack"] = (
        "<!DOCTYPE html><title>elsewhere</title>"
        f'<form method="post" action="{html.escape(action)}">{inputs}<button id="go">go</button></form>'
    )
    attacker = context.new_page()
    attacker.goto(f"{capture.origin}/attack")
    with attacker.expect_navigation() as nav:
        attacker.click("#go")
    response = nav.value
    assert response is not None and response.status == 403
    assert response.request.header_value("origin") == capture.origin
    assert attacker.inner_text("#error").startswith("AADSTS90023:")
    assert not [c for c in context.cookies() if c["name"] == "ESTSAUTH"]
    # The flow was untouched: the real page still signs in (its post carries the tenant's own Origin).
    sign_in(page, password, username=username)
    page.wait_for_url(at_capture(capture))
    assert capture.only().query["code"]


def test_localhost_alias_signs_in(
    tenant: LocalTenant, capture: CaptureServer, context: BrowserContext
) -> None:
    """The tenant's certificate and instance discovery name ``localhost`` as an alias of 127.0.0.1; a page
    loaded there posts to its own origin, which is not a cross-site post."""
    username, password = member(tenant)
    url = authorize_url(tenant, capture).replace("https://127.0.0.1:", "https://localhost:", 1)
    page = context.new_page()
    page.goto(url)
    sign_in(page, password, username=username)
    page.wait_for_url(at_capture(capture))
    assert capture.only().query["code"]


def test_screenshots(
    tenant: LocalTenant, capture: CaptureServer, context: BrowserContext, tmp_path: Path
) -> None:
    username, password = member(tenant)
    page = context.new_page()
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(authorize_url(tenant, capture, scope=WITH_MAIL, login_hint=username))
    page.wait_for_selector("#signin-form")
    signin_png = tmp_path / "signin.png"
    page.screenshot(path=str(signin_png), full_page=True)
    sign_in(page, password)
    page.wait_for_selector("#consent-form")
    consent_png = tmp_path / "consent.png"
    page.screenshot(path=str(consent_png), full_page=True)
    for png in (signin_png, consent_png):
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), png
        assert len(data) > 5 * 1024, (png, len(data))
    print(f"screenshots: {signin_png} {consent_png}")
