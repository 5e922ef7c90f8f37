"""The single-page client and the ``spa`` redirect platform: its registration, the token it gets for the API
(``api://{client id}/access_as_user``), cross-origin redemption with PKCE, CORS, 24-hour refresh tokens."""

from __future__ import annotations

import requests

from tests.emulator.entra_flow import (
    JWT_BEARER,
    REDIRECT,
    Browser,
    assert_aadsts,
    assertion,
    claims,
    graph_functions_app,
    params_of,
    verify_with_jwks,
)
from tests.emulator.obo_kit import (
    SPA_ORIGIN,
    SPA_REDIRECT,
    api_scope,
    person_token,
    post_token,
    redeem,
    spa_code,
)
from tests.support.tenant import LocalTenant


def test_spa_is_registered_public_and_pre_authorized_for_the_api(tenant: LocalTenant) -> None:
    spa_id = tenant.env["SPA_CLIENT_ID"]
    assert spa_id and spa_id != tenant.env["ENTRA_CLIENT_ID"]
    described = tenant.control("GET", f"/apps/{spa_id}")
    assert described["isPublicClient"] is True
    assert SPA_REDIRECT in described["redirectUris"] and SPA_REDIRECT in described["spaRedirectUris"]
    api = tenant.control("GET", f"/apps/{tenant.env['ENTRA_CLIENT_ID']}")
    assert api["accessTokenAcceptedVersion"] == 2 and api["spaRedirectUris"] == []


def test_spa_code_redeemed_cross_origin_gives_a_v2_api_token_and_a_24h_refresh_token(
    tenant: LocalTenant,
) -> None:
    browser = Browser.open(tenant)
    # No consent page: the SPA is pre-authorized for access_as_user and its sign-in scopes.
    code = spa_code(browser)
    resp = redeem(tenant, code)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    body = resp.json()
    assert body["scope"].split() == [api_scope(tenant)] or api_scope(tenant) in body["scope"].split()
    assert 86390 <= body["refresh_token_expires_in"] <= 86400
    at = verify_with_jwks(tenant, body["access_token"], tenant.env["ENTRA_CLIENT_ID"])
    assert at["aud"] == tenant.env["ENTRA_CLIENT_ID"] and at["ver"] == "2.0"
    assert at["iss"] == f"{tenant.authority}/v2.0"
    assert at["scp"] == "access_as_user"
    assert at["azp"] == tenant.env["SPA_CLIENT_ID"] and at["azpacr"] == "0"
    assert at["tid"] == tenant.env["ENTRA_TENANT_ID"]
    assert at["preferred_username"] == tenant.env["DEMO_USER_USERNAME"]
    assert at["oid"] and at["sub"] and "idtyp" not in at and "xms_cc" not in at
    assert claims(body["id_token"])["aud"] == tenant.env["SPA_CLIENT_ID"]


def test_spa_code_without_origin_is_refused_with_9002327(tenant: LocalTenant) -> None:
    code = spa_code(Browser.open(tenant))
    resp = redeem(tenant, code, origin=None)
    assert_aadsts(resp, 400, "invalid_request", 9002327)
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_spa_code_without_pkce_is_refused_with_9002325(tenant: LocalTenant) -> None:
    code = spa_code(Browser.open(tenant), pkce=False)
    resp = redeem(tenant, code, code_verifier="<drop>")
    body = assert_aadsts(resp, 400, "invalid_request", 9002325)
    assert "Proof Key for Code Exchange" in body["error_description"]


def test_web_platform_code_and_refresh_token_redeemed_cross_origin_are_refused_with_9002326(
    tenant: LocalTenant,
) -> None:
    app = graph_functions_app(tenant)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(tenant)
    page = browser.sign_in(
        browser.get(flow["auth_uri"]), tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]
    )
    web_code = {
        "grant_type": "authorization_code",
        "client_id": tenant.env["ENTRA_CLIENT_ID"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(tenant),
        "code": params_of(page)["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": flow["code_verifier"],
    }
    assert_aadsts(post_token(tenant, web_code, origin=SPA_ORIGIN), 400, "invalid_request", 9002326)
    refresh = {
        "grant_type": "refresh_token",
        "client_id": tenant.env["SPA_CLIENT_ID"],
        "refresh_token": spa_refresh_token_by_password(tenant),
    }
    assert_aadsts(post_token(tenant, refresh, origin=SPA_ORIGIN), 400, "invalid_request", 9002326)
    assert post_token(tenant, refresh).status_code == 200  # the same token, server to server


def spa_refresh_token_by_password(tenant: LocalTenant) -> str:
    """A refresh token of the SPA that is not spa-bound (the password grant has no redirect URI)."""
    resp = post_token(
        tenant,
        {
            "grant_type": "password",
            "client_id": tenant.env["SPA_CLIENT_ID"],
            "username": tenant.env["DEMO_USER_USERNAME"],
            "password": tenant.env["DEMO_USER_PASSWORD"],
            "scope": f"offline_access {api_scope(tenant)}",
        },
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["refresh_token"])


def test_spa_refresh_token_needs_origin_and_keeps_its_fixed_24h_expiry(fresh: LocalTenant) -> None:
    fresh.freeze_clock()
    first = redeem(fresh, spa_code(Browser.open(fresh))).json()
    form = {
        "grant_type": "refresh_token",
        "client_id": fresh.env["SPA_CLIENT_ID"],
        "refresh_token": first["refresh_token"],
        "scope": api_scope(fresh),
    }
    assert_aadsts(post_token(fresh, form), 400, "invalid_request", 9002327)
    fresh.advance_clock(20 * 3600)
    second = post_token(fresh, form, origin=SPA_ORIGIN)
    assert second.status_code == 200, second.text
    # Non-sliding: the new refresh token carries the first one's expiry over (4 hours left).
    assert 4 * 3600 - 10 <= second.json()["refresh_token_expires_in"] <= 4 * 3600
    fresh.advance_clock(4 * 3600 + 1)
    for token in (first["refresh_token"], second.json()["refresh_token"]):
        late = post_token(fresh, {**form, "refresh_token": token}, origin=SPA_ORIGIN)
        body = assert_aadsts(late, 400, "invalid_grant", 700084)
        assert "single page app" in body["error_description"]


def test_token_endpoint_cors_only_for_registered_spa_origins(tenant: LocalTenant) -> None:
    url = f"{tenant.authority}/oauth2/v2.0/token"
    for origin, allowed in (
        (SPA_ORIGIN, True),
        ("http://127.0.0.1:7071", True),
        ("https://evil.example", False),
    ):
        pre = requests.options(
            url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            verify=tenant.ca_cert,
            timeout=30,
        )
        assert pre.status_code == 204
        assert pre.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
        if allowed:
            assert "POST" in pre.headers["Access-Control-Allow-Methods"]
            assert pre.headers["Access-Control-Allow-Headers"] == "content-type"
        # An error answer carries the header too (the browser must be able to read it).
        err = post_token(tenant, {"grant_type": "password"}, origin=origin)
        assert err.status_code == 400
        assert err.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


def test_xms_cc_in_the_api_token_only_when_the_client_declares_cp1(tenant: LocalTenant) -> None:
    capable = claims(person_token(tenant, capabilities=["CP1"]))
    assert capable["xms_cc"] == ["cp1"]
    assert "xms_cc" not in claims(person_token(tenant))


def test_client_credentials_are_refused_from_a_browser_in_every_grant(tenant: LocalTenant) -> None:
    app_only = {
        "grant_type": "client_credentials",
        "client_id": tenant.env["CALLER_CLIENT_ID"],
        "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
        "scope": f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default",
    }
    assert_aadsts(post_token(tenant, app_only, origin=SPA_ORIGIN), 400, "invalid_request", 9002326)
    assert post_token(tenant, app_only).status_code == 200
    exchange = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "requested_token_use": "on_behalf_of",
        "assertion": person_token(tenant),
        "scope": "User.Read",
        "client_id": tenant.env["ENTRA_CLIENT_ID"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(tenant),
    }
    assert_aadsts(post_token(tenant, exchange, origin=SPA_ORIGIN), 400, "invalid_request", 9002326)


def test_spa_redirect_uris_added_through_the_control_api_follow_the_spa_rules(fresh: LocalTenant) -> None:
    spa_id = fresh.env["SPA_CLIENT_ID"]
    current = fresh.control("GET", f"/apps/{spa_id}")["spaRedirectUris"]
    uri = "http://127.0.0.1:41999/spa/"  # e.g. a test host on a free port
    updated = fresh.control("PATCH", f"/apps/{spa_id}", {"spaRedirectUris": [*current, uri]})
    assert uri in updated["spaRedirectUris"] and uri in updated["redirectUris"]
    code = spa_code(Browser.open(fresh), redirect_uri=uri)
    assert_aadsts(redeem(fresh, code, origin=None, redirect_uri=uri), 400, "invalid_request", 9002327)
    code = spa_code(Browser.open(fresh), redirect_uri=uri)
    answer = redeem(fresh, code, origin="http://127.0.0.1:41999", redirect_uri=uri)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:41999"
    bad = fresh.control("PATCH", f"/apps/{spa_id}", {"spaRedirectUris": ["not a uri"]}, expect=400)
    assert "spaRedirectUris" in bad["error"]["message"]
