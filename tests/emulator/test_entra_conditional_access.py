"""Entra ID round 2: Conditional Access (block, MFA, sign-in frequency) and Continuous Access Evaluation,
driven through the control API and exercised with real msal and requests."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import msal
import requests

from tests.emulator.entra_flow import (
    JWT_BEARER,
    REDIRECT,
    Browser,
    app_certificate,
    assert_aadsts,
    assertion,
    claims,
    params_of,
    parse_page,
    token_post,
)
from tests.emulator.entra_flow import (
    ropc as ropc_form,
)
from tests.support.tenant import LocalTenant

SCOPES = ["User.Read"]


def web_app(tenant: LocalTenant, capabilities: list[str] | None = None) -> msal.ConfidentialClientApplication:
    cert = app_certificate(tenant)
    return msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=tenant.authority,
        instance_discovery=False,
        client_capabilities=capabilities,
    )


def sign_in(
    tenant: LocalTenant, app: msal.ConfidentialClientApplication, browser: Browser, **flow_args: Any
) -> dict[str, Any]:
    """The interactive path: authorize, sign in (and approve MFA when asked), redeem the code."""
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, **flow_args)
    page = browser.get(flow["auth_uri"])
    if page.status_code == 200 and "signin" in parse_page(page.text).ids:
        page = browser.sign_in(page, tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    if page.status_code == 200 and "mfa-approve" in parse_page(page.text).ids:
        page = browser.post_form(page, {"action": "approve"})
    result = app.acquire_token_by_auth_code_flow(flow, params_of(page))
    assert "access_token" in result, result
    return dict(result)


def graph_me(tenant: LocalTenant, token: str) -> requests.Response:
    return requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/me",
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.ca_cert,
        timeout=30,
    )


def ropc(tenant: LocalTenant) -> dict[str, str]:
    return ropc_form(tenant, scope="openid offline_access User.Read", client_info="<drop>")


def policy(tenant: LocalTenant, **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = tenant.control("POST", "/entra/conditional-access", body, expect=201)
    return created


def test_block_policy_refuses_tokens_with_53003_for_that_user_and_app_only(fresh: LocalTenant) -> None:
    member = fresh.env["DEMO_USER_USERNAME"]
    blocked = policy(fresh, control="block", userId=member, clientId=fresh.env["ENTRA_CLIENT_ID"])
    err = assert_aadsts(token_post(fresh, ropc(fresh)), 400, "interaction_required", 53003)
    assert err["suberror"] == "message_only"
    assert json.loads(err["claims"]) == {
        "access_token": {"capolids": {"essential": True, "values": [blocked["id"]]}}
    }
    other = {
        **ropc(fresh),
        "username": fresh.env["DEMO_ADMIN_USERNAME"],
        "password": fresh.env["DEMO_ADMIN_PASSWORD"],
    }
    assert token_post(fresh, other).status_code == 200  # the policy names one user
    # Interactive sign-in is refused too, back at the redirect URI.
    browser = Browser.open(fresh)
    page = browser.authorize(scope="User.Read")
    got = params_of(browser.sign_in(page, member, fresh.env["DEMO_USER_PASSWORD"]))
    assert got["error"] == "access_denied" and got["error_description"].startswith("AADSTS53003: ")
    fresh.control("DELETE", f"/entra/conditional-access/{blocked['id']}")
    assert token_post(fresh, ropc(fresh)).status_code == 200
    assert fresh.control("GET", "/entra/conditional-access")["value"] == []


def test_mfa_policy_makes_silent_acquisition_fail_and_interactive_sign_in_succeed(fresh: LocalTenant) -> None:
    app = web_app(fresh)
    browser = Browser.open(fresh)
    first = sign_in(fresh, app, browser)  # before the policy: password only
    assert claims(first["access_token"])["amr"] == ["pwd"]
    policy(fresh, control="mfa", userId=fresh.env["DEMO_USER_USERNAME"])
    account = app.get_accounts()[0]
    silent = app.acquire_token_silent_with_error(SCOPES, account=account, force_refresh=True)
    # The refresh of a password-only grant: invalid_grant AADSTS50076, suberror basic_action.
    assert silent is not None and silent["error"] == "invalid_grant" and silent["error_codes"] == [50076]
    assert silent["suberror"] == "basic_action"
    err = assert_aadsts(token_post(fresh, ropc(fresh)), 400, "interaction_required", 50076)
    assert err["suberror"] == "basic_action" and "capolids" in err["claims"]
    # prompt=none with the password-only session cannot satisfy it.
    none = params_of(browser.authorize(scope="User.Read", prompt="none"))
    assert none["error"] == "interaction_required" and none["error_description"].startswith("AADSTS50076: ")
    # The fallback: interactive sign-in asks for the second factor once, then tokens flow again.
    second = sign_in(fresh, app, browser)
    assert claims(second["access_token"])["amr"] == ["pwd", "mfa"]
    again = app.acquire_token_silent_with_error(SCOPES, account=app.get_accounts()[0], force_refresh=True)
    assert again is not None and "access_token" in again, again
    assert graph_me(fresh, again["access_token"]).status_code == 200


def test_mfa_registration_policy_answers_50079(fresh: LocalTenant) -> None:
    policy(fresh, control="mfaRegistration", clientId=fresh.env["ENTRA_CLIENT_ID"])
    err = assert_aadsts(token_post(fresh, ropc(fresh)), 400, "interaction_required", 50079)
    assert "enroll in multi-factor authentication" in err["error_description"]


def test_sign_in_frequency_policy_expires_refresh_tokens_with_70043(fresh: LocalTenant) -> None:
    body = token_post(fresh, ropc(fresh)).json()
    policy(fresh, control="signInFrequency", signInFrequency=0)
    data = {
        "grant_type": "refresh_token",
        "client_id": fresh.env["ENTRA_CLIENT_ID"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(fresh),
        "refresh_token": body["refresh_token"],
    }
    err = assert_aadsts(token_post(fresh, data), 400, "invalid_grant", 70043)
    assert "sign-in frequency checks by conditional access" in err["error_description"]
    bad = fresh.control("POST", "/entra/conditional-access", {"control": "signInFrequency"}, expect=400)
    assert "signInFrequency" in bad["error"]["message"]
    fresh.control("POST", "/entra/conditional-access", {"control": "sometimes"}, expect=400)
    fresh.control("POST", "/entra/conditional-access", {"control": "mfa", "userId": "nobody@x"}, expect=400)


def challenge_of(answer: requests.Response) -> str:
    """The decoded claims challenge of a Graph 401 (``WWW-Authenticate: Bearer ... claims="<base64>"``)."""
    header = answer.headers["WWW-Authenticate"]
    assert (
        'error="insufficient_claims"' in header
        and 'client_id="00000003-0000-0000-c000-000000000000"' in header
    )
    match = re.search(r'claims="([^"]+)"', header)
    assert match, header
    return base64.b64decode(match.group(1)).decode()


def test_cae_claims_challenge_with_real_msal(fresh: LocalTenant) -> None:
    app = web_app(fresh, capabilities=["CP1"])
    plain = web_app(fresh)
    browser = Browser.open(fresh)
    first = sign_in(fresh, app, browser)
    legacy = sign_in(fresh, plain, Browser.open(fresh))
    assert claims(first["access_token"])["xms_cc"] == ["cp1"] and "xms_cc" not in claims(
        legacy["access_token"]
    )
    assert graph_me(fresh, first["access_token"]).status_code == 200
    fresh.control("POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/cae-event", {})
    refused = graph_me(fresh, first["access_token"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    challenge = challenge_of(refused)
    assert json.loads(challenge)["access_token"]["nbf"]["essential"] is True
    # A token of a client that did not declare cp1 is not a CAE token: it lives to its expiry.
    assert graph_me(fresh, legacy["access_token"]).status_code == 200
    account = app.get_accounts()[0]
    cached = app.acquire_token_silent(SCOPES, account=account)
    assert (
        cached is not None and cached["access_token"] == first["access_token"]
    )  # msal's cache: refused still
    # Without the claims the token endpoint refuses to refresh the grant...
    bare = app.acquire_token_silent_with_error(SCOPES, account=account, force_refresh=True)
    assert bare is not None and bare["error"] == "interaction_required" and bare["error_codes"] == [50173]
    # ... and with them (msal bypasses its cache) the new token is accepted.
    fresh_token = app.acquire_token_silent(SCOPES, account=account, claims_challenge=challenge)
    assert fresh_token is not None and "access_token" in fresh_token, fresh_token
    assert graph_me(fresh, fresh_token["access_token"]).status_code == 200


def test_revoked_sessions_need_interactive_sign_in_with_the_claims(fresh: LocalTenant) -> None:
    app = web_app(fresh, capabilities=["CP1"])
    browser = Browser.open(fresh)
    first = sign_in(fresh, app, browser)
    fresh.control("POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/cae-event", {"revokeSessions": True})
    challenge = challenge_of(graph_me(fresh, first["access_token"]))
    account = app.get_accounts()[0]
    silent = app.acquire_token_silent_with_error(SCOPES, account=account, claims_challenge=challenge)
    assert silent is not None and silent["error"] == "invalid_grant" and silent["error_codes"] == [50173]
    # The SSO session died with the grant: the user signs in again, the claims travel with the request.
    again = sign_in(fresh, app, browser, claims_challenge=challenge)
    assert graph_me(fresh, again["access_token"]).status_code == 200
    fresh.control("POST", "/users/nobody@contoso.onmicrosoft.com/cae-event", {}, expect=404)
    fresh.control(
        "POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/cae-event", {"revokeSessions": 1}, expect=400
    )
