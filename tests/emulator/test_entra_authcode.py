"""Authorization code flow driven like a browser (requests) and redeemed by the real MSAL: sign-in page,
consent page, PKCE, response modes, prompt handling, SSO, and the error pages/redirects."""

from __future__ import annotations

import time

import pytest
import requests

from tests.emulator.entra_flow import (
    JWT_BEARER,
    REDIRECT,
    Browser,
    assert_aadsts,
    assertion,
    claims,
    graph_functions_app,
    graph_token_claims,
    params_of,
    parse_page,
    pkce_pair,
    token_post,
)
from tests.support.tenant import LocalTenant


def sign_in_to(browser: Browser, auth_uri: str, username: str, password: str) -> requests.Response:
    page = browser.get(auth_uri)
    assert page.status_code == 200 and "signin" in parse_page(page.text).ids, page.text[:300]
    return browser.sign_in(page, username, password)


def test_msal_auth_code_flow_with_pkce_consent_and_nonce(fresh: LocalTenant) -> None:
    app = graph_functions_app(fresh)
    flow = app.initiate_auth_code_flow(["User.Read", "Mail.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    consent_page = sign_in_to(
        browser, flow["auth_uri"], fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"]
    )
    page = parse_page(consent_page.text)
    assert {"permissions", "accept", "cancel", "app-name"} <= page.ids and "consent-org" not in page.ids
    assert "Mail.Read" in consent_page.text  # only what is not yet consented is asked
    assert "ESTSAUTH" in browser.session.cookies
    redirect = browser.consent(consent_page)
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith(REDIRECT + "?")
    result = app.acquire_token_by_auth_code_flow(flow, params_of(redirect))
    assert "access_token" in result, result
    member = fresh.env["DEMO_USER_USERNAME"]
    assert result["id_token_claims"]["preferred_username"] == member
    assert result["id_token_claims"]["nonce"]  # MSAL checked it equals the hash it sent
    assert "refresh_token" in result and "client_info" in result
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{result['id_token_claims']['oid']}.{fresh.env['ENTRA_TENANT_ID']}"
    at = graph_token_claims(fresh, result["access_token"])
    assert at["aud"] == "00000003-0000-0000-c000-000000000000"
    assert set(at["scp"].split()) == {"email", "Mail.Read", "openid", "profile", "User.Read"}
    assert at["idtyp"] == "user"
    assert at["appidacr"] == "2" and at["upn"] == member
    assert set(result["scope"].split()) >= {"User.Read", "Mail.Read"}
    # The consent is remembered: the same request later goes straight back to the app.
    again = app.initiate_auth_code_flow(["User.Read", "Mail.Read"], redirect_uri=REDIRECT)
    sso = browser.get(again["auth_uri"])
    assert sso.status_code == 302
    assert "access_token" in app.acquire_token_by_auth_code_flow(again, params_of(sso))


def test_form_post_and_fragment_modes(tenant: LocalTenant) -> None:
    app = graph_functions_app(tenant)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, response_mode="form_post")
    browser = Browser.open(tenant)
    page = sign_in_to(
        browser, flow["auth_uri"], tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]
    )
    assert page.status_code == 200 and 'id="hiddenform"' in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    form = parse_page(page.text).forms[0]
    assert form["action"] == REDIRECT and set(form["fields"]) >= {"code", "state", "session_state"}
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, params_of(page))
    _verifier, challenge = pkce_pair()
    frag = browser.authorize(
        scope="openid User.Read",
        response_mode="fragment",
        state="s1",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert frag.status_code == 302 and "#code=" in frag.headers["Location"]
    assert params_of(frag)["state"] == "s1"


def test_raw_redemption_with_plain_pkce_and_errors(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    verifier = "p" * 50
    page = browser.authorize(
        scope="openid offline_access User.Read", state="xyz", nonce="n-0", code_challenge=verifier
    )  # method omitted = plain
    redirect = browser.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    got = params_of(redirect)
    assert got["state"] == "xyz" and got["session_state"]

    def redeem(**over: str) -> requests.Response:
        data = {
            "grant_type": "authorization_code",
            "client_id": fresh.env["ENTRA_CLIENT_ID"],
            "code": got["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(fresh),
        }
        data.update(over)
        return token_post(fresh, {k: v for k, v in data.items() if v != "<drop>"})

    assert_aadsts(redeem(code_verifier="q" * 50), 400, "invalid_grant", 501481)
    assert_aadsts(redeem(code_verifier="<drop>"), 400, "invalid_grant", 501481)
    assert_aadsts(redeem(redirect_uri="http://127.0.0.1:7071/auth/callback"), 400, "invalid_grant", 500112)
    assert_aadsts(redeem(redirect_uri="<drop>"), 400, "invalid_request", 900144)
    assert_aadsts(redeem(code="garbage"), 400, "invalid_grant", 9002313)
    caller = {
        "client_id": fresh.env["CALLER_CLIENT_ID"],
        "client_secret": fresh.env["CALLER_CLIENT_SECRET"],
        "client_assertion_type": "<drop>",
        "client_assertion": "<drop>",
    }
    assert_aadsts(redeem(**caller), 400, "invalid_grant", 70000)
    ok = redeem()
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert list(body)[:5] == ["token_type", "scope", "expires_in", "ext_expires_in", "access_token"]
    assert {"refresh_token", "id_token"} <= set(body) and "client_info" not in body
    assert claims(body["id_token"])["nonce"] == "n-0"
    assert claims(body["id_token"])["roles"] == [
        "Audit.Read",
        "Mail.Read.All",
        "Reports.Read",
        "Reports.Run",
        "Tenants.Manage",
        "Users.Read.All",
    ]
    assert_aadsts(redeem(), 400, "invalid_grant", 54005)


def test_expired_code(fresh: LocalTenant) -> None:
    fresh.control("PUT", "/entra/settings", {"authCodeLifetime": 0})
    browser = Browser.open(fresh)
    page = browser.authorize(scope="User.Read")
    code = params_of(browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"]))[
        "code"
    ]
    time.sleep(0.05)
    resp = token_post(
        fresh,
        {
            "grant_type": "authorization_code",
            "client_id": fresh.env["ENTRA_CLIENT_ID"],
            "code": code,
            "redirect_uri": REDIRECT,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(fresh),
        },
    )
    assert_aadsts(resp, 400, "invalid_grant", 70008)


def test_sign_in_page_errors_and_escaping(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    page = browser.authorize(scope="User.Read", login_hint='"><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"].startswith("no-store")
    for username, password, code in (
        ("member@contoso.onmicrosoft.com", "wrong", "AADSTS50126"),
        ("ghost@contoso.onmicrosoft.com", "x", "AADSTS50034"),
        ("disabled@contoso.onmicrosoft.com", "x", "AADSTS50126"),
    ):
        again = browser.sign_in(page, username, password)
        assert again.status_code == 200 and code in again.text and "signin" in parse_page(again.text).ids
    assert "ESTSAUTH" not in browser.session.cookies


def test_hostile_names_are_escaped_and_disabled_accounts_refused(fresh: LocalTenant) -> None:
    hostile = "<img src=x onerror=alert(1)>\"'><script>alert(2)</script>"
    created = fresh.control(
        "POST",
        "/users",
        {
            "displayName": hostile,
            "password": "Pw!correct-horse-1",
            "userPrincipalName": "hostile@contoso.onmicrosoft.com",
        },
    )
    fresh.control("PATCH", f"/apps/{fresh.env['ENTRA_CLIENT_ID']}", {"displayName": hostile})
    browser = Browser.open(fresh)
    page = browser.authorize(scope="User.Read Mail.Read")
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    consent = browser.sign_in(page, "hostile@contoso.onmicrosoft.com", "Pw!correct-horse-1")
    assert "accept" in parse_page(consent.text).ids
    assert "<img src=x" not in consent.text and "<script>alert(2)" not in consent.text
    fresh.control("PATCH", f"/users/{created['id']}", {"accountEnabled": False})
    again = Browser.open(fresh)
    refused = again.sign_in(
        again.authorize(scope="User.Read"), "hostile@contoso.onmicrosoft.com", "Pw!correct-horse-1"
    )
    assert "AADSTS50057" in refused.text and "ESTSAUTH" not in again.session.cookies


def test_stale_flow_and_cross_site_post(tenant: LocalTenant) -> None:
    browser = Browser.open(tenant)
    login = f"{tenant.authority}/login"
    stale = browser.session.post(
        login,
        data={"flow": "forged", "username": "a@b.c", "password": "x"},
        allow_redirects=False,
        timeout=30,
    )
    assert stale.status_code == 400 and "AADSTS50089" in stale.text
    page = browser.authorize(scope="User.Read")
    flow_id = parse_page(page.text).forms[0]["fields"]["flow"]
    cross = browser.session.post(
        login,
        data={"flow": flow_id, "username": "a@b.c", "password": "x"},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=30,
    )
    assert cross.status_code == 403
    # The localhost alias of the login origin is the same page (tests/browser signs in there); another
    # port on localhost (the Graph origin) is not.
    for origin, status in (
        (f"https://localhost:{tenant.port}", 200),
        (f"https://localhost:{tenant.port + 1}", 403),
    ):
        answer = browser.session.post(
            login,
            data={"flow": flow_id, "username": "a@b.c", "password": "x"},
            headers={"Origin": origin},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == status, (origin, answer.status_code)


def test_error_pages_never_redirect(tenant: LocalTenant) -> None:
    browser = Browser.open(tenant)
    mismatch = browser.authorize(scope="User.Read", redirect_uri="https://evil.example/cb")
    assert (
        mismatch.status_code == 400 and "AADSTS50011" in mismatch.text and "Location" not in mismatch.headers
    )
    unknown = browser.authorize(scope="User.Read", client_id="11111111-2222-3333-4444-555555555555")
    assert unknown.status_code == 400 and "AADSTS700016" in unknown.text
    no_redirect = browser.authorize(scope="User.Read", redirect_uri="")
    assert "AADSTS900971" in no_redirect.text
    bad_tenant = browser.get(
        f"{tenant.env['ENTRA_AUTHORITY_HOST']}/fabrikam.com/oauth2/v2.0/authorize",
        client_id=tenant.env["ENTRA_CLIENT_ID"],
    )
    assert bad_tenant.status_code == 400 and "AADSTS90002" in bad_tenant.text


@pytest.mark.parametrize(
    "params,error,code",
    [
        ({"response_type": "token"}, "unsupported_response_type", 700051),
        ({"response_type": "id_token"}, "unsupported_response_type", 700054),
        ({"response_type": "code id_token"}, "unsupported_response_type", 700054),
        ({"response_type": "banana"}, "unsupported_response_type", 70005),
        ({"scope": ""}, "invalid_request", 900144),
        ({"scope": "Calendars.Explode"}, "invalid_client", 650053),
        ({"scope": "https://nothing.example/read"}, "invalid_resource", 500011),
        ({"scope": "https://graph.microsoft.com/.default User.Read"}, "invalid_scope", 70011),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request", 501491),
        ({"code_challenge_method": "S512", "code_challenge": "a" * 43}, "invalid_request", 90023),
        ({"code_challenge_method": "S256"}, "invalid_request", 50147),
        ({"prompt": "sometimes"}, "invalid_request", 90023),
        ({"resource": "https://graph.microsoft.com"}, "invalid_request", 901002),
    ],
)
def test_authorize_error_redirects(
    tenant: LocalTenant, params: dict[str, str], error: str, code: int
) -> None:
    base = {"scope": "User.Read", "state": "st-1"}
    base.update(params)
    resp = Browser.open(tenant).authorize(**base)
    assert resp.status_code == 302, resp.text[:300]
    got = params_of(resp)
    assert got["error"] == error and got["error_description"].startswith(f"AADSTS{code}: ")
    assert got["state"] == "st-1" and "Trace ID:" in got["error_description"]


def test_prompt_none_with_and_without_session(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    silent = browser.authorize(scope="User.Read", prompt="none", state="p")
    got = params_of(silent)
    assert got["error"] == "login_required" and got["error_description"].startswith("AADSTS50058")
    page = browser.authorize(scope="User.Read")
    browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    assert "code" in params_of(browser.authorize(scope="User.Read", prompt="none"))
    missing = params_of(browser.authorize(scope="User.Read Mail.Send", prompt="none"))
    assert missing["error"] == "consent_required" and missing["error_description"].startswith("AADSTS65001")
    other = params_of(
        browser.authorize(scope="User.Read", prompt="none", login_hint="admin@contoso.onmicrosoft.com")
    )
    assert other["error"] == "login_required"
    fresh.control("POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/refresh-tokens/revoke")
    assert params_of(browser.authorize(scope="User.Read", prompt="none"))["error"] == "login_required"


def test_prompt_login_select_account_and_consent(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    member, password = fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"]
    browser.sign_in(browser.authorize(scope="User.Read"), member, password)
    forced = browser.authorize(scope="User.Read", prompt="login")
    assert "signin" in parse_page(forced.text).ids
    picker = browser.authorize(scope="User.Read", prompt="select_account")
    assert parse_page(picker.text).forms[0]["fields"]["username"] == member
    consent = browser.authorize(scope="User.Read", prompt="consent")
    assert "accept" in parse_page(consent.text).ids and "User.Read" in consent.text
    assert "code" in params_of(browser.consent(consent))


def test_cancel_consent_is_access_denied(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    page = browser.authorize(scope="User.Read Mail.Send", state="c")
    consent = browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    got = params_of(browser.consent(consent, accept=False))
    assert got["error"] == "access_denied" and got["error_description"].startswith("AADSTS65004")
    assert got["error_subcode"] == "cancel" and got["state"] == "c"


def test_member_needs_admin_approval_for_admin_only_scopes(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    page = browser.authorize(scope="User.Read.All")
    consent = browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    ids = parse_page(consent.text).ids
    assert "admin-required" in ids and "accept" not in ids and "AADSTS90094" in consent.text
    forged = browser.post_form(consent, {"action": "accept"})
    assert params_of(forged)["error"] == "access_denied"  # accept cannot be forced


def test_admin_consents_for_the_organization(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    admin = Browser.open(fresh)
    page = admin.authorize(scope="User.Read Mail.Send")
    consent = admin.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    assert "consent-org" in parse_page(consent.text).ids
    assert "code" in params_of(admin.consent(consent, org=True))
    grants = fresh.control("GET", f"/apps/{client}")["oauth2PermissionGrants"]
    assert any(g["consentType"] == "AllPrincipals" and "Mail.Send" in g["scope"] for g in grants)
    member = Browser.open(fresh)  # no consent page for anyone now
    redirect = member.sign_in(
        member.authorize(scope="User.Read Mail.Send"),
        fresh.env["DEMO_USER_USERNAME"],
        fresh.env["DEMO_USER_PASSWORD"],
    )
    assert redirect.status_code == 302 and "code" in params_of(redirect)
