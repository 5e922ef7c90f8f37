"""Refresh tokens (MSAL silent refresh, multi-resource, revocation, expiry) and the password grant (ROPC)."""

from __future__ import annotations

import msal

from tests.emulator.entra_flow import (
    JWT_BEARER,
    REDIRECT,
    Browser,
    assert_aadsts,
    assertion,
    claims,
    graph_functions_app,
    params_of,
    ropc,
    token_post,
)
from tests.support.tenant import LocalTenant


def signed_in(tenant: LocalTenant, scopes: list[str]) -> tuple[msal.ConfidentialClientApplication, dict]:
    """The member signed in through the browser flow (consent already given by the seed for User.Read)."""
    app = graph_functions_app(tenant)
    flow = app.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT)
    browser = Browser.open(tenant)
    page = browser.get(flow["auth_uri"])
    redirect = browser.sign_in(page, tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    result = app.acquire_token_by_auth_code_flow(flow, params_of(redirect))
    assert "access_token" in result, result
    return app, result


def test_silent_refresh_returns_new_tokens_and_keeps_the_old_refresh_token(fresh: LocalTenant) -> None:
    app, first = signed_in(fresh, ["User.Read"])
    account = app.get_accounts()[0]
    cached = app.acquire_token_silent(["User.Read"], account=account)
    assert cached["token_source"] == "cache"
    refreshed = app.acquire_token_silent(["User.Read"], account=account, force_refresh=True)
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["refresh_token"] != first["refresh_token"]
    # Entra does not revoke a refresh token on use: the first one still works.
    again = token_post(
        fresh,
        {
            "grant_type": "refresh_token",
            "client_id": fresh.env["ENTRA_CLIENT_ID"],
            "refresh_token": first["refresh_token"],
            "scope": "User.Read",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(fresh),
        },
    )
    assert again.status_code == 200, again.text


def test_short_access_tokens_make_msal_refresh(fresh: LocalTenant) -> None:
    fresh.control("PUT", "/lifetimes", {"accessToken": 120})
    app, first = signed_in(fresh, ["User.Read"])
    assert first["expires_in"] <= 120
    silent = app.acquire_token_silent(["User.Read"], account=app.get_accounts()[0])
    assert silent["token_source"] == "identity_provider"  # < 5 minutes left: MSAL refreshed


def test_refresh_token_is_multi_resource(fresh: LocalTenant) -> None:
    app, _ = signed_in(fresh, ["User.Read"])
    sharepoint = f"{fresh.origin('sharepoint')}/AllSites.Read"
    result = app.acquire_token_silent([sharepoint], account=app.get_accounts()[0])
    assert result and "access_token" in result, result
    body = claims(result["access_token"])
    assert body["aud"] == fresh.origin("sharepoint") and body["scp"] == "AllSites.Read"
    assert result["scope"] == sharepoint
    api = app.acquire_token_silent_with_error(
        [f"api://{fresh.env['ENTRA_CLIENT_ID']}/.default"], account=app.get_accounts()[0]
    )
    assert api is not None and api.get("error") == "invalid_grant" and api["error_codes"] == [65001]


def test_revoked_refresh_tokens(fresh: LocalTenant) -> None:
    app, first = signed_in(fresh, ["User.Read"])
    fresh.control("POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/refresh-tokens/revoke")
    result = app.acquire_token_silent_with_error(
        ["User.Read"], account=app.get_accounts()[0], force_refresh=True
    )
    # revokeSignInSessions: AADSTS50173 (FreshTokenNeeded), naming the TokensValidFrom date.
    assert result is not None and result["error"] == "invalid_grant" and result["error_codes"] == [50173]
    assert "TokensValidFrom" in result["error_description"]
    data = {
        "grant_type": "refresh_token",
        "client_id": fresh.env["ENTRA_CLIENT_ID"],
        "refresh_token": first["refresh_token"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(fresh),
    }
    assert_aadsts(token_post(fresh, data), 400, "invalid_grant", 50173)
    assert_aadsts(token_post(fresh, {**data, "refresh_token": "nonsense"}), 400, "invalid_grant", 9002313)


def test_expired_refresh_token_and_other_client(fresh: LocalTenant) -> None:
    fresh.control("PUT", "/entra/settings", {"refreshTokenLifetime": 60})
    body = token_post(fresh, ropc(fresh)).json()
    other = {
        "grant_type": "refresh_token",
        "client_id": fresh.env["CALLER_CLIENT_ID"],
        "client_secret": fresh.env["CALLER_CLIENT_SECRET"],
        "refresh_token": body["refresh_token"],
    }
    assert_aadsts(token_post(fresh, other), 400, "invalid_grant", 70000)
    fresh.advance_clock(61)  # past the refresh-token lifetime, on the tenant's clock
    data = {
        "grant_type": "refresh_token",
        "client_id": fresh.env["ENTRA_CLIENT_ID"],
        "refresh_token": body["refresh_token"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(fresh),
    }
    err = assert_aadsts(token_post(fresh, data), 400, "invalid_grant", 700082)
    assert "inactive" in err["error_description"]


def test_password_grant(fresh: LocalTenant) -> None:
    resp = token_post(fresh, ropc(fresh))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert {"access_token", "refresh_token", "id_token", "client_info", "scope"} <= set(body)
    assert "nonce" not in claims(body["id_token"])
    at = claims(body["access_token"])
    assert (
        at["aud"] == "00000003-0000-0000-c000-000000000000" and at["upn"] == fresh.env["DEMO_USER_USERNAME"]
    )
    assert "offline_access" not in at["scp"].split()
    no_offline = token_post(fresh, ropc(fresh, scope="User.Read")).json()
    assert "refresh_token" not in no_offline and "id_token" not in no_offline


def test_password_grant_errors(fresh: LocalTenant) -> None:
    assert_aadsts(token_post(fresh, ropc(fresh, password="wrong")), 400, "invalid_grant", 50126)
    assert_aadsts(
        token_post(fresh, ropc(fresh, username="ghost@contoso.onmicrosoft.com")), 400, "invalid_grant", 50034
    )
    consent = assert_aadsts(token_post(fresh, ropc(fresh, scope="Mail.Send")), 400, "invalid_grant", 65001)
    assert consent["suberror"] == "consent_required"
    assert_aadsts(token_post(fresh, ropc(fresh, scope="<drop>")), 400, "invalid_request", 900144)
    assert_aadsts(token_post(fresh, ropc(fresh), tenant_segment="common"), 400, "invalid_request", 9001023)
    multi = f"User.Read {fresh.origin('sharepoint')}/AllSites.Read"
    assert_aadsts(token_post(fresh, ropc(fresh, scope=multi)), 400, "invalid_scope", 28000)
    created = fresh.control(
        "POST",
        "/users",
        {
            "displayName": "Soon Disabled",
            "password": "Pw!soon-disabled-1",
            "userPrincipalName": "soon@contoso.onmicrosoft.com",
        },
    )
    fresh.control("PATCH", f"/users/{created['id']}", {"accountEnabled": False})
    assert_aadsts(
        token_post(
            fresh, ropc(fresh, username="soon@contoso.onmicrosoft.com", password="Pw!soon-disabled-1")
        ),
        400,
        "invalid_grant",
        50057,
    )


def test_public_client_password_grant_and_organizations(fresh: LocalTenant) -> None:
    caller = fresh.env["CALLER_CLIENT_ID"]
    fresh.control("PATCH", f"/apps/{caller}", {"isPublicClient": True})
    # Public clients need no credential, but the user must have consented to this client for Graph.
    data = {
        "grant_type": "password",
        "client_id": caller,
        "username": fresh.env["DEMO_ADMIN_USERNAME"],
        "password": fresh.env["DEMO_ADMIN_PASSWORD"],
        "scope": "User.Read",
    }
    assert_aadsts(token_post(fresh, data), 400, "invalid_grant", 65001)
    own = fresh.env["ENTRA_CLIENT_ID"]
    fresh.control("PATCH", f"/apps/{own}", {"isPublicClient": True})
    # A single-tenant registration cannot use /organizations (AADSTS50194); a multi-tenant one can.
    single = token_post(fresh, {**data, "client_id": own}, tenant_segment="organizations")
    assert_aadsts(single, 400, "invalid_request", 50194)
    fresh.control("PATCH", f"/apps/{own}", {"signInAudience": "AzureADMultipleOrgs"})
    resp = token_post(fresh, {**data, "client_id": own}, tenant_segment="organizations")
    assert resp.status_code == 200, resp.text
    assert claims(resp.json()["access_token"])["appidacr"] == "0"


def test_delegated_token_for_the_apps_own_api_carries_user_roles(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    scope = f"api://{client}/access_as_user"
    assert_aadsts(
        token_post(
            fresh,
            ropc(
                fresh,
                username=fresh.env["DEMO_ADMIN_USERNAME"],
                password=fresh.env["DEMO_ADMIN_PASSWORD"],
                scope=scope,
            ),
        ),
        400,
        "invalid_grant",
        65001,
    )
    browser = Browser.open(fresh)
    page = browser.authorize(scope=f"{scope} openid")
    consent = browser.sign_in(page, fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_ADMIN_PASSWORD"])
    assert "access_as_user" in consent.text
    assert "code" in params_of(browser.consent(consent, org=True))
    for who in ("ADMIN", "USER"):
        resp = token_post(
            fresh,
            ropc(
                fresh,
                username=fresh.env[f"DEMO_{who}_USERNAME"],
                password=fresh.env[f"DEMO_{who}_PASSWORD"],
                scope=scope,
            ),
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["scope"] == scope
        at = claims(resp.json()["access_token"])
        assert at["aud"] == client and at["ver"] == "2.0" and at["scp"] == "access_as_user"
        assert at["azp"] == client and at["preferred_username"] == fresh.env[f"DEMO_{who}_USERNAME"]
        if who == "ADMIN":
            assert at["roles"] == [
                "Audit.Read",
                "Mail.Read.All",
                "Reports.Read",
                "Reports.Run",
                "Tenants.Manage",
                "Users.Read.All",
            ]
        else:
            assert "roles" not in at
