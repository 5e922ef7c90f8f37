"""Entra ID round 2: single-tenant registrations under /common and /organizations (AADSTS50194),
delegated ``/.default`` semantics and incremental consent, and the admin-consent success response."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import msal

from tests.emulator.entra_flow import (
    JWT_BEARER,
    REDIRECT,
    Browser,
    app_certificate,
    assert_aadsts,
    assertion,
    graph_functions_app,
    graph_token_claims,
    params_of,
    parse_page,
    token_post,
)
from tests.support.tenant import LocalTenant

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def app_under(tenant: LocalTenant, segment: str) -> msal.ConfidentialClientApplication:
    cert = app_certificate(tenant)
    return msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=f"{tenant.env['ENTRA_AUTHORITY_HOST']}/{segment}",
        instance_discovery=False,
    )


def member_code(tenant: LocalTenant, browser: Browser, **params: str) -> dict[str, str]:
    page = browser.authorize(**params)
    return params_of(
        browser.sign_in(page, tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    )


def test_single_tenant_app_is_refused_under_common_and_organizations(fresh: LocalTenant) -> None:
    for segment in ("common", "organizations"):
        app = app_under(fresh, segment)
        flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
        answer = Browser.open(fresh).get(flow["auth_uri"])
        got = params_of(answer)  # after the client is trusted the error goes back to the redirect URI
        assert got["error"] == "invalid_request", got
        assert got["error_description"].startswith("AADSTS50194: "), got
        assert "is not configured as a multi-tenant application" in got["error_description"]
    # A code obtained under the tenant cannot be redeemed under /organizations either.
    browser = Browser.open(fresh)
    code = member_code(fresh, browser, scope="User.Read")["code"]
    data = {
        "grant_type": "authorization_code",
        "client_id": fresh.env["ENTRA_CLIENT_ID"],
        "code": code,
        "redirect_uri": REDIRECT,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(fresh),
    }
    assert_aadsts(token_post(fresh, data, tenant_segment="organizations"), 400, "invalid_request", 50194)


def test_multi_tenant_app_signs_in_under_organizations(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    assert fresh.control("GET", f"/apps/{client}")["signInAudience"] == "AzureADMyOrg"
    fresh.control("PATCH", f"/apps/{client}", {"signInAudience": "AzureADMultipleOrgs"})
    app = app_under(fresh, "organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    page = browser.get(flow["auth_uri"])
    redirect = browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    result = app.acquire_token_by_auth_code_flow(flow, params_of(redirect))
    assert "access_token" in result, result
    bad = fresh.control("PATCH", f"/apps/{client}", {"signInAudience": "Everyone"}, expect=400)
    assert "signInAudience" in bad["error"]["message"]


def test_default_scope_with_existing_consent_does_not_prompt_and_carries_only_granted_scopes(
    fresh: LocalTenant,
) -> None:
    """scopes-oidc, ".default when the user has already given consent": the seed granted User.Read (and the
    OIDC scopes) for everyone; the registration also requires Mail.Read and User.ReadBasic.All."""
    app = graph_functions_app(fresh)
    flow = app.initiate_auth_code_flow([GRAPH_DEFAULT], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    page = browser.get(flow["auth_uri"])
    redirect = browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    assert redirect.status_code == 302, redirect.text[:300]  # no consent page
    result = app.acquire_token_by_auth_code_flow(flow, params_of(redirect))
    assert "access_token" in result, result
    scp = set(graph_token_claims(fresh, result["access_token"])["scp"].split())
    assert scp == {"User.Read", "openid", "profile", "email"}  # not Mail.Read, not User.ReadBasic.All
    # The refresh for /.default is not a 65001 either.
    refreshed = app.acquire_token_silent([GRAPH_DEFAULT], account=app.get_accounts()[0], force_refresh=True)
    assert refreshed is not None and "access_token" in refreshed, refreshed
    # An explicit scope not yet granted prompts (incremental consent), for that scope only.
    more = app.initiate_auth_code_flow(["Mail.Read"], redirect_uri=REDIRECT)
    consent = browser.get(more["auth_uri"])
    rows = [r for r in consent.text.split('data-scope="')[1:]]
    assert "permissions" in parse_page(consent.text).ids and [r.split('"')[0] for r in rows] == ["Mail.Read"]
    # prompt=consent with /.default asks for every permission the registration requires, for all its APIs.
    forced = app.initiate_auth_code_flow([GRAPH_DEFAULT], redirect_uri=REDIRECT, prompt="consent")
    page = browser.get(forced["auth_uri"])
    asked = {r.split('"')[0] for r in page.text.split('data-scope="')[1:]}
    assert {"User.Read", "User.ReadBasic.All", "Mail.Read", "AllSites.Read"} <= asked, asked


def test_default_scope_without_any_consent_prompts_for_all_required_permissions(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    fresh.control(
        "POST", f"/apps/{client}/consent/revoke", {"resource": "00000003-0000-0000-c000-000000000000"}
    )
    member = Browser.open(fresh)
    page = member.authorize(scope=GRAPH_DEFAULT)
    consent = member.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    asked = {r.split('"')[0] for r in consent.text.split('data-scope="')[1:]}
    assert {"User.Read", "User.ReadBasic.All", "Mail.Read", "openid", "profile", "offline_access"} <= asked
    # ... and for the other APIs in the list: SharePoint's User.Read.All needs an administrator.
    assert "User.Read.All" in asked and "admin-required" in parse_page(consent.text).ids
    admin = Browser.open(fresh)
    page = admin.authorize(scope=GRAPH_DEFAULT)
    consent = admin.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    assert "code" in params_of(admin.consent(consent, org=True))
    data = {
        "grant_type": "password",
        "client_id": client,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(fresh),
        "username": fresh.env["DEMO_USER_USERNAME"],
        "password": fresh.env["DEMO_USER_PASSWORD"],
        "scope": GRAPH_DEFAULT,
    }
    body = token_post(fresh, data).json()
    granted = {s.rpartition("/")[2] for s in body["scope"].split()}
    assert granted >= {"User.Read", "Mail.Read", "User.ReadBasic.All"}, body


def test_admin_consent_response_lists_each_granted_permission_once(fresh: LocalTenant) -> None:
    """v2-admin-consent.md, successful response:
    ``?admin_consent=True&tenant=…&state=…&scope=https://graph.microsoft.com/Calendars.Read …``."""
    browser = Browser.open(fresh)
    page = browser.get(
        f"{fresh.authority}/v2.0/adminconsent",
        client_id=fresh.env["ENTRA_CLIENT_ID"],
        redirect_uri=REDIRECT,
        scope=GRAPH_DEFAULT,
        state="once",
    )
    consent = browser.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    redirect = browser.consent(consent)
    assert redirect.status_code == 302
    pairs = parse_qsl(urlsplit(redirect.headers["Location"]).query)
    assert [k for k, _ in pairs] == ["admin_consent", "tenant", "state", "scope"]
    granted = dict(pairs)["scope"].split()
    assert len(granted) == len(set(granted)), granted  # Mail.Read is delegated and application: once
    assert all(s.startswith("https://graph.microsoft.com/") for s in granted), granted
    names = {s.rpartition("/")[2] for s in granted}
    assert {"Mail.Read", "User.Read.All", "GroupMember.Read.All", "User.Read", "User.ReadBasic.All"} <= names
