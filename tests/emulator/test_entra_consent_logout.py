"""Admin consent (v2 and v1), logout, and the Entra control routes (rotation into the vault, revocation)."""

from __future__ import annotations

import msal
import requests

from tests.emulator.entra_flow import (
    REDIRECT,
    Browser,
    app_certificate,
    assert_aadsts,
    claims,
    params_of,
    parse_page,
    token_post,
)
from tests.support.tenant import LocalTenant

GRAPH_APP = "00000003-0000-0000-c000-000000000000"


def app_token_roles(tenant: LocalTenant, scope: str) -> list[str]:
    cert = app_certificate(tenant)
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=tenant.authority,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([scope])
    assert "access_token" in result, result
    return list(claims(result["access_token"]).get("roles", []))


def admin_consent(browser: Browser, v1: bool = False, **params: str) -> requests.Response:
    tenant = browser.tenant
    params.setdefault("client_id", tenant.env["ENTRA_CLIENT_ID"])
    params.setdefault("redirect_uri", REDIRECT)
    path = "adminconsent" if v1 else "v2.0/adminconsent"
    return browser.get(f"{tenant.authority}/{path}", **params)


def test_v2_admin_consent_grants_application_permissions(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    graph = "https://graph.microsoft.com/.default"
    revoked = fresh.control(
        "POST", f"/apps/{client}/consent/revoke", {"resource": GRAPH_APP, "applicationPermissions": True}
    )
    assert revoked["removedAppRoleAssignments"] == 4 and revoked["removedGrants"] == 1
    assert app_token_roles(fresh, graph) == []  # no roles claim at all
    browser = Browser.open(fresh)
    page = admin_consent(browser, scope=graph, state="ac-1")
    consent = browser.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    ids = parse_page(consent.text).ids
    assert {"accept", "cancel", "permissions"} <= ids and "consent-org" not in ids
    assert 'data-type="Application"' in consent.text and "User.Read.All" in consent.text
    got = params_of(browser.consent(consent))
    assert got["admin_consent"] == "True" and got["tenant"] == fresh.env["ENTRA_TENANT_ID"]
    assert got["state"] == "ac-1" and "https://graph.microsoft.com/User.Read.All" in got["scope"].split()
    roles = ["GroupMember.Read.All", "Mail.Read", "Mail.Send", "User.Read.All"]
    assert app_token_roles(fresh, graph) == roles
    grants = fresh.control("GET", f"/apps/{client}")["oauth2PermissionGrants"]
    graph_grant = next(g for g in grants if g["resourceAppId"] == GRAPH_APP)
    assert graph_grant["consentType"] == "AllPrincipals" and "Mail.Read" in graph_grant["scope"].split()


def test_v2_admin_consent_refusals(fresh: LocalTenant) -> None:
    member = Browser.open(fresh)
    page = admin_consent(member, scope="https://graph.microsoft.com/.default", state="m")
    got = params_of(member.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"]))
    assert got["error"] == "consent_required" and got["error_description"].startswith("AADSTS90094")
    admin = Browser.open(fresh)
    page = admin_consent(admin, scope="https://graph.microsoft.com/.default", state="c")
    consent = admin.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    cancelled = params_of(admin.consent(consent, accept=False))
    assert cancelled["admin_consent"] == "True" and cancelled["error"] == "access_denied"
    assert "tenant" not in cancelled
    assert cancelled["error_description"].startswith("AADSTS65004") and cancelled["state"] == "c"
    missing = params_of(admin_consent(admin, state="x"))
    assert missing["error"] == "invalid_request" and missing["error_description"].startswith("AADSTS900144")
    unlisted = params_of(admin_consent(admin, scope="https://vault.azure.net/.default"))
    assert unlisted["error_description"].startswith("AADSTS650057")
    wrong = admin_consent(
        admin, scope="https://graph.microsoft.com/.default", redirect_uri="https://evil.example/"
    )
    assert wrong.status_code == 400 and "AADSTS50011" in wrong.text and "Location" not in wrong.headers


def test_v1_admin_consent(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    fresh.control("POST", f"/apps/{client}/consent/revoke", {"applicationPermissions": True})
    assert app_token_roles(fresh, f"{fresh.origin('sharepoint')}/.default") == []
    browser = Browser.open(fresh)
    page = admin_consent(browser, v1=True, state="v1")
    consent = browser.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    redirect = browser.consent(consent)
    location = redirect.headers["Location"]
    assert location.startswith(
        f"{REDIRECT}?tenant={fresh.env['ENTRA_TENANT_ID']}&state=v1&admin_consent=True"
    )
    assert app_token_roles(fresh, f"{fresh.origin('sharepoint')}/.default") == ["Sites.Read.All"]
    again = admin_consent(browser, v1=True, state="v1b")  # SSO: straight to the consent page
    got = params_of(browser.consent(again, accept=False))
    assert got == {
        "error": "permission_denied",
        "error_description": "The admin canceled the request",
        "state": "v1b",
    }


def test_logout(fresh: LocalTenant) -> None:
    browser = Browser.open(fresh)
    page = browser.authorize(scope="openid User.Read", nonce="n")
    code = params_of(browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"]))
    assert "code" in code and "ESTSAUTH" in browser.session.cookies
    logout = f"{fresh.authority}/oauth2/v2.0/logout"
    registered = browser.get(
        logout,
        post_logout_redirect_uri="http://localhost:7071/",
        client_id=fresh.env["ENTRA_CLIENT_ID"],
        state="bye",
    )
    assert (
        registered.status_code == 302 and registered.headers["Location"] == "http://localhost:7071/?state=bye"
    )
    assert "ESTSAUTH" not in browser.session.cookies
    assert params_of(browser.authorize(scope="User.Read", prompt="none"))["error"] == "login_required"
    unregistered = browser.get(
        logout, post_logout_redirect_uri="https://evil.example/", client_id=fresh.env["ENTRA_CLIENT_ID"]
    )
    assert unregistered.status_code == 200 and "signed-out" in parse_page(unregistered.text).ids
    assert "Location" not in unregistered.headers
    anonymous_unregistered = browser.get(logout, post_logout_redirect_uri="https://evil.example/")
    assert anonymous_unregistered.status_code == 200 and "Location" not in anonymous_unregistered.headers


def test_logout_without_client_redirects_to_a_registered_uri(fresh: LocalTenant) -> None:
    """The v2 docs' canonical sign-out URL names neither client_id nor id_token_hint: a
    post_logout_redirect_uri registered in the tenant is still honoured (with state)."""
    browser = Browser.open(fresh)
    page = browser.authorize(scope="openid User.Read", nonce="n")
    assert "code" in params_of(
        browser.sign_in(page, fresh.env["DEMO_USER_USERNAME"], fresh.env["DEMO_USER_PASSWORD"])
    )
    logout = f"{fresh.authority}/oauth2/v2.0/logout"
    answer = browser.get(logout, post_logout_redirect_uri="http://localhost:7071/", state="s1")
    assert answer.status_code == 302 and answer.headers["Location"] == "http://localhost:7071/?state=s1"
    assert "ESTSAUTH" not in browser.session.cookies
    # A registered redirect URI (reply URL) also qualifies; an unregistered one never redirects.
    assert browser.get(logout, post_logout_redirect_uri=REDIRECT).headers["Location"] == REDIRECT
    fresh.control("PATCH", f"/apps/{fresh.env['ENTRA_CLIENT_ID']}", {"enabled": False})
    disabled = browser.get(logout, post_logout_redirect_uri="http://localhost:7071/")
    assert disabled.status_code == 200 and "signed-out" in parse_page(disabled.text).ids


def test_logout_with_id_token_hint(fresh: LocalTenant) -> None:
    data = {
        "grant_type": "password",
        "client_id": fresh.env["CALLER_CLIENT_ID"],
        "client_secret": fresh.env["CALLER_CLIENT_SECRET"],
        "username": fresh.env["DEMO_ADMIN_USERNAME"],
        "password": fresh.env["DEMO_ADMIN_PASSWORD"],
        "scope": "openid",
    }
    fresh.control(
        "PATCH",
        f"/apps/{fresh.env['CALLER_CLIENT_ID']}",
        {"postLogoutRedirectUris": ["https://caller.example/signed-out"]},
    )
    browser = Browser.open(fresh)
    # The caller has no consent for openid yet: an admin grants it through the consent page first.
    page = browser.authorize(
        client_id=fresh.env["CALLER_CLIENT_ID"],
        scope="openid",
        redirect_uri="https://caller.example/signed-out",
    )
    assert page.status_code == 400  # not a registered redirect URI of the caller
    fresh.control("PATCH", f"/apps/{fresh.env['CALLER_CLIENT_ID']}", {"redirectUris": [REDIRECT]})
    page = browser.authorize(client_id=fresh.env["CALLER_CLIENT_ID"], scope="openid")
    consent = browser.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    browser.consent(consent)
    id_token = token_post(fresh, data).json()["id_token"]
    hinted = browser.get(
        f"{fresh.authority}/oauth2/v2.0/logout",
        id_token_hint=id_token,
        post_logout_redirect_uri="https://caller.example/signed-out",
    )
    assert hinted.status_code == 302 and hinted.headers["Location"] == "https://caller.example/signed-out"
    forged = browser.get(
        f"{fresh.authority}/oauth2/v2.0/logout",
        id_token_hint=id_token[:-4] + "AAAA",
        post_logout_redirect_uri="https://caller.example/signed-out",
    )
    assert forged.status_code == 200


def test_app_registration_never_shows_secret_values(tenant: LocalTenant) -> None:
    caller = tenant.env["CALLER_CLIENT_ID"]
    resp = requests.get(
        f"{tenant.env['EMULATOR_URL']}/_emulator/apps/{caller}", verify=tenant.ca_cert, timeout=30
    )
    assert resp.status_code == 200 and tenant.env["CALLER_CLIENT_SECRET"] not in resp.text
    body = resp.json()
    assert body["passwordCredentials"][0]["hint"] == tenant.env["CALLER_CLIENT_SECRET"][:3]
    own = tenant.control("GET", f"/apps/{tenant.env['ENTRA_CLIENT_ID']}")
    assert own["keyCredentials"][0]["customKeyIdentifier"] == app_certificate(tenant).sha1_hex.upper()
    assert len(own["federatedIdentityCredentials"]) == 2
    assert tenant.control("GET", "/apps/nope", expect=404)["error"]["code"] == "NotFound"


def read_vault_secret(tenant: LocalTenant, name: str, version: str = "") -> dict:
    """Read a secret the way the function app's identity does, over plain REST (the SDK keeps a
    process-wide challenge cache that other tests of the vault observe, so it is not used here)."""
    token = requests.get(
        tenant.env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
        headers={"X-IDENTITY-HEADER": tenant.env["IDENTITY_HEADER"]},
        verify=tenant.ca_cert,
        timeout=30,
    ).json()["access_token"]
    resp = requests.get(
        f"{tenant.env['KEY_VAULT_URL']}secrets/{name}/{version}",
        params={"api-version": "7.5"},
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.ca_cert,
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_rotation_into_the_vault(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    name = "graph-functions-client-secret"
    old = read_vault_secret(fresh, name)["value"]
    rotated = fresh.control(
        "POST", f"/apps/{client}/secrets/rotate", {"vaultSecret": name, "revokeOld": True}
    )
    assert "secretText" not in rotated and rotated["vaultSecret"]["version"]
    secret = read_vault_secret(fresh, name)
    assert secret["id"].endswith(f"/{rotated['vaultSecret']['version']}")
    assert secret["value"][:3] == rotated["hint"] and secret["value"] != old
    app = msal.ConfidentialClientApplication(
        client, client_credential=secret["value"], authority=fresh.authority, instance_discovery=False
    )
    assert "access_token" in app.acquire_token_for_client([f"{fresh.env['GRAPH_ENDPOINT']}/.default"])
    stale = token_post(
        fresh,
        {
            "grant_type": "client_credentials",
            "client_id": client,
            "client_secret": old,
            "scope": f"{fresh.env['GRAPH_ENDPOINT']}/.default",
        },
    )
    assert_aadsts(stale, 401, "invalid_client", 7000215)


def test_control_validation(tenant: LocalTenant) -> None:
    caller = tenant.env["CALLER_CLIENT_ID"]
    tenant.control("PATCH", f"/apps/{caller}", {"enabled": "yes"}, expect=400)
    tenant.control("PATCH", f"/apps/{caller}", {"redirectUris": ["not a uri"]}, expect=400)
    tenant.control(
        "POST", f"/apps/{caller}/consent/revoke", {"resource": "https://nothing.example"}, expect=400
    )
    tenant.control("POST", "/users/nobody@contoso.onmicrosoft.com/refresh-tokens/revoke", expect=404)
    settings = tenant.control("GET", "/entra/settings")
    assert settings["rejectAssertionReplay"] is False and settings["authCodeLifetime"] is None
