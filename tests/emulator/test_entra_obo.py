"""The on-behalf-of grant, exercised with the real MSAL Python ``acquire_token_on_behalf_of``: the exchange of
a person's token for Graph, its documented failures, the step-up through the claims challenge, ``xms_cc``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from msal.exceptions import MsalServiceError

from tests.emulator.entra_flow import Browser, assert_aadsts, claims, graph_token_claims, token_post
from tests.emulator.obo_kit import (
    SPA_ORIGIN,
    middle_tier,
    obo_form,
    person_token,
    post_token,
    redeem,
    spa_code,
)
from tests.support.tenant import LocalTenant

GRAPH_ID = "00000003-0000-0000-c000-000000000000"


def graph(tenant: LocalTenant, token: str, path: str) -> requests.Response:
    return requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.ca_cert,
        timeout=30,
    )


def obo(tenant: LocalTenant, assertion: str, scopes: list[str], **cca: Any) -> dict[str, Any]:
    return dict(middle_tier(tenant, **cca).acquire_token_on_behalf_of(assertion, scopes))


def assert_error(result: dict[str, Any], error: str, code: int) -> None:
    assert result.get("error") == error, result
    assert result["error_codes"] == [code], result
    assert result["error_description"].startswith(f"AADSTS{code}: "), result


def policy(tenant: LocalTenant, control: str) -> dict[str, Any]:
    body = {
        "control": control,
        "userId": tenant.env["DEMO_USER_USERNAME"],
        "clientId": tenant.env["ENTRA_CLIENT_ID"],
    }
    created: dict[str, Any] = tenant.control("POST", "/entra/conditional-access", body, expect=201)
    return created


def test_msal_obo_exchanges_the_person_token_for_a_delegated_graph_token(tenant: LocalTenant) -> None:
    incoming = person_token(tenant)
    result = obo(tenant, incoming, ["User.Read"])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer" and "refresh_token" in result and "id_token" in result
    at = graph_token_claims(tenant, result["access_token"])
    person = claims(incoming)
    assert at["aud"] == GRAPH_ID and at["oid"] == person["oid"] and at["tid"] == person["tid"]
    assert at["appid"] == tenant.env["ENTRA_CLIENT_ID"] and at["appidacr"] == "2"
    assert at["idtyp"] == "user" and "roles" not in at  # delegated only, never the app's roles
    assert "User.Read" in at["scp"].split() and "Mail.Read" not in at["scp"].split()
    assert "xms_cc" not in at
    me = graph(tenant, result["access_token"], "/me")
    no_mail = graph(tenant, result["access_token"], "/me/messages?$top=1")
    assert no_mail.status_code == 403 and no_mail.json()["error"]["code"] == "ErrorAccessDenied"
    assert me.status_code == 200 and me.json()["userPrincipalName"] == tenant.env["DEMO_USER_USERNAME"]
    # MSAL cached the account from client_info: the silent path finds the same token, no new request.
    app = middle_tier(tenant)
    again = app.acquire_token_on_behalf_of(incoming, ["User.Read"])
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{person['oid']}.{tenant.env['ENTRA_TENANT_ID']}"
    silent = app.acquire_token_silent(["User.Read"], account=account)
    assert silent["access_token"] == again["access_token"]


def test_obo_with_a_client_secret_and_mail_read_reads_the_persons_own_mailbox(fresh: LocalTenant) -> None:
    app_id = fresh.env["ENTRA_CLIENT_ID"]
    form = obo_form(fresh, person_token(fresh), "https://graph.microsoft.com/Mail.Read", **app_secret(fresh))
    refused = token_post(fresh, form)
    body = assert_aadsts(refused, 400, "invalid_grant", 65001)
    assert body["suberror"] == "consent_required"
    granted = fresh.control(
        "POST",
        f"/apps/{app_id}/consent/grant",
        {
            "resource": "https://graph.microsoft.com",
            "scopes": ["Mail.Read"],
            "userId": fresh.env["DEMO_USER_USERNAME"],
        },
        expect=201,
    )
    assert granted["consentType"] == "Principal" and "Mail.Read" in granted["scopes"]
    answer = token_post(fresh, form)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert {"Mail.Read", "User.Read"} <= set(claims(token)["scp"].split())
    default = token_post(fresh, {**form, "scope": "https://graph.microsoft.com/.default"})
    assert default.status_code == 200, default.text  # .default: every consented delegated Graph scope
    assert {"Mail.Read", "User.Read"} <= set(claims(default.json()["access_token"])["scp"].split())
    mail = graph(fresh, token, "/me/messages?$top=3&$select=subject,receivedDateTime")
    assert mail.status_code == 200, mail.text
    assert len(mail.json()["value"]) == 3
    newest = graph(
        fresh, token, "/me/messages?$top=2&$orderby=receivedDateTime desc&$select=receivedDateTime"
    )
    dates = [m["receivedDateTime"] for m in newest.json()["value"]]
    assert newest.status_code == 200 and dates == sorted(dates, reverse=True)
    # Another person's mailbox stays closed to a delegated Mail.Read token.
    other = graph(fresh, token, f"/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages?$top=1")
    assert other.status_code == 403 and other.json()["error"]["code"] == "ErrorAccessDenied"


def test_obo_without_mail_read_consent_gives_65001_consent_required_through_msal(tenant: LocalTenant) -> None:
    result = obo(tenant, person_token(tenant), ["Mail.Read"])
    assert_error(result, "invalid_grant", 65001)
    assert result["suberror"] == "consent_required"


def test_assertion_for_another_audience_is_refused_with_500131(tenant: LocalTenant) -> None:
    # The caller (another confidential client) presents a token whose audience is Graph Functions.
    form = obo_form(
        tenant,
        person_token(tenant),
        client_id=tenant.env["CALLER_CLIENT_ID"],
        client_secret=tenant.env["CALLER_CLIENT_SECRET"],
    )
    body = assert_aadsts(token_post(tenant, form), 400, "invalid_grant", 500131)
    assert tenant.env["ENTRA_CLIENT_ID"] in body["error_description"]


def test_graph_token_app_token_and_garbage_are_refused_as_assertions(tenant: LocalTenant) -> None:
    graph_token = obo(tenant, person_token(tenant), ["User.Read"])["access_token"]
    assert_error(obo(tenant, graph_token, ["User.Read"]), "invalid_grant", 50013)
    caller_app_token = token_post(
        tenant,
        {
            "grant_type": "client_credentials",
            "client_id": tenant.env["CALLER_CLIENT_ID"],
            "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
            "scope": f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default",
        },
    ).json()["access_token"]
    assert claims(caller_app_token)["aud"] == tenant.env["ENTRA_CLIENT_ID"]
    result = obo(tenant, caller_app_token, ["User.Read"])
    assert_error(result, "invalid_grant", 50013)
    assert "user principals" in result["error_description"]
    assert_error(obo(tenant, "not.a.jwt", ["User.Read"]), "invalid_request", 50027)


def app_secret(tenant: LocalTenant) -> dict[str, str]:
    """Client-secret authentication of Graph Functions (a secret added through the control API: its own
    lives in the vault); unlike MSAL's certificate assertion it does not age with the tenant's clock."""
    app_id = tenant.env["ENTRA_CLIENT_ID"]
    secret = tenant.control("POST", f"/apps/{app_id}/secrets/rotate", {"returnValue": True}, expect=201)
    return {"client_id": app_id, "client_secret": secret["secretText"]}


def test_expired_assertion_is_refused_with_500133(fresh: LocalTenant) -> None:
    credentials = app_secret(fresh)
    incoming = person_token(fresh)
    fresh.advance_clock(3600 + 301)  # the token's lifetime and the five minutes of tolerated skew
    body = assert_aadsts(
        token_post(fresh, obo_form(fresh, incoming, **credentials)), 400, "invalid_grant", 500133
    )
    assert "valid time range" in body["error_description"]


def test_obo_needs_a_confidential_client_the_parameters_and_a_tenant(fresh: LocalTenant) -> None:
    incoming = person_token(fresh)
    public = token_post(fresh, obo_form(fresh, incoming, client_id=fresh.env["SPA_CLIENT_ID"]))
    assert_aadsts(public, 401, "invalid_client", 7000218)
    credentials = app_secret(fresh)
    common = token_post(fresh, obo_form(fresh, incoming, **credentials), tenant_segment="common")
    assert_aadsts(common, 400, "invalid_request", 9001023)
    for name in ("requested_token_use", "assertion", "scope"):
        form = {k: v for k, v in obo_form(fresh, incoming, **credentials).items() if k != name}
        missing = token_post(fresh, form)
        body = assert_aadsts(missing, 400, "invalid_request", 900144)
        assert f"'{name}'" in body["error_description"]
    wrong_use = token_post(fresh, obo_form(fresh, incoming, requested_token_use="assertion", **credentials))
    assert_aadsts(wrong_use, 400, "invalid_request", 90023)
    assert token_post(fresh, obo_form(fresh, incoming, **credentials)).status_code == 200


def test_mfa_policy_for_the_middle_tier_answers_50076_with_claims(fresh: LocalTenant) -> None:
    created = policy(fresh, "mfa")
    result = obo(fresh, person_token(fresh), ["User.Read"])
    assert_error(result, "invalid_grant", 50076)
    assert result["suberror"] == "basic_action"
    challenge = json.loads(result["claims"])
    assert challenge == {"access_token": {"capolids": {"essential": True, "values": [created["id"]]}}}


def test_mfa_registration_and_block_answer_50079_and_53003_with_claims(fresh: LocalTenant) -> None:
    incoming = person_token(fresh)
    registration = policy(fresh, "mfaRegistration")
    result = obo(fresh, incoming, ["User.Read"])
    assert_error(result, "interaction_required", 50079)
    assert registration["id"] in result["claims"]
    fresh.control("DELETE", "/entra/conditional-access")
    block = policy(fresh, "block")
    result = obo(fresh, incoming, ["User.Read"])
    assert_error(result, "interaction_required", 53003)
    assert result["suberror"] == "message_only" and block["id"] in result["claims"]


def test_step_up_with_the_claims_challenge_gives_a_token_the_exchange_accepts(fresh: LocalTenant) -> None:
    policy(fresh, "mfa")
    browser = Browser.open(fresh)
    first = redeem(fresh, spa_code(browser)).json()  # the policy targets the middle tier: no MFA yet
    failed = obo(fresh, first["access_token"], ["User.Read"])
    assert_error(failed, "invalid_grant", 50076)
    # The SPA sends the challenge back interactively: the same SSO session now needs the second factor.
    page = browser.authorize(
        client_id=fresh.env["SPA_CLIENT_ID"],
        redirect_uri="http://localhost:7071/spa/",
        scope="openid " + f"api://{fresh.env['ENTRA_CLIENT_ID']}/access_as_user",
        claims=failed["claims"],
        code_challenge="x" * 43,
        code_challenge_method="plain",
    )
    assert page.status_code == 200 and 'id="mfa-approve"' in page.text
    stepped = redeem(fresh, spa_code(browser, claims=failed["claims"])).json()
    result = obo(fresh, stepped["access_token"], ["User.Read"])
    assert "access_token" in result, result
    # Silent paths cannot answer the challenge: a refresh token of the single-factor sign-in (MSAL.js's
    # acquireTokenSilent({claims}) tries it first) and the password grant get 50076, so the client goes
    # interactive; the refresh token of the stepped-up sign-in answers it.
    api = f"api://{fresh.env['ENTRA_CLIENT_ID']}/access_as_user"
    refresh = {
        "grant_type": "refresh_token",
        "client_id": fresh.env["SPA_CLIENT_ID"],
        "scope": api,
        "claims": failed["claims"],
    }
    old_rt = post_token(fresh, {**refresh, "refresh_token": first["refresh_token"]}, origin=SPA_ORIGIN)
    body = assert_aadsts(old_rt, 400, "invalid_grant", 50076)
    assert body["suberror"] == "basic_action" and body["claims"] == failed["claims"]
    new_rt = post_token(fresh, {**refresh, "refresh_token": stepped["refresh_token"]}, origin=SPA_ORIGIN)
    assert new_rt.status_code == 200, new_rt.text
    password = {
        "grant_type": "password",
        "client_id": fresh.env["SPA_CLIENT_ID"],
        "username": fresh.env["DEMO_USER_USERNAME"],
        "password": fresh.env["DEMO_USER_PASSWORD"],
        "scope": api,
        "claims": failed["claims"],
    }
    assert_aadsts(token_post(fresh, password), 400, "interaction_required", 50076)


def test_revoked_sessions_refuse_tokens_issued_before(fresh: LocalTenant) -> None:
    fresh.freeze_clock()
    incoming = person_token(fresh)
    fresh.advance_clock(2)
    fresh.control("POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/refresh-tokens/revoke")
    result = obo(fresh, incoming, ["User.Read"])
    assert_error(result, "invalid_grant", 50173)
    fresh.advance_clock(2)
    assert "access_token" in obo(fresh, person_token(fresh), ["User.Read"])


def test_xms_cc_follows_the_middle_tiers_declared_capabilities(tenant: LocalTenant) -> None:
    incoming = person_token(tenant, capabilities=["CP1"])
    assert claims(incoming)["xms_cc"] == ["cp1"]
    capable = obo(tenant, incoming, ["User.Read"], capabilities=["CP1"])
    assert claims(capable["access_token"])["xms_cc"] == ["cp1"]
    plain = obo(tenant, incoming, ["User.Read"])
    assert "xms_cc" not in claims(plain["access_token"])


def test_cae_event_after_the_assertion_needs_the_nbf_claims_for_a_cp1_middle_tier(fresh: LocalTenant) -> None:
    fresh.freeze_clock()
    incoming = person_token(fresh)
    fresh.advance_clock(2)
    fresh.control("POST", f"/users/{fresh.env['DEMO_USER_USERNAME']}/cae-event", {})
    capable = middle_tier(fresh, capabilities=["CP1"])
    refused = capable.acquire_token_on_behalf_of(incoming, ["User.Read"])
    assert_error(refused, "interaction_required", 50173)
    challenge = json.loads(refused["claims"])
    assert challenge["access_token"]["nbf"]["essential"] is True
    answered = capable.acquire_token_on_behalf_of(incoming, ["User.Read"], claims_challenge=refused["claims"])
    assert "access_token" in answered, answered
    token = claims(answered["access_token"])
    assert token["xms_cc"] == ["cp1"] and token["nbf"] >= int(challenge["access_token"]["nbf"]["value"])
    # A middle tier that handles no claims challenge is not asked for one (its tokens are not CAE tokens).
    assert "access_token" in obo(fresh, incoming, ["User.Read"])


def test_a_login_fault_for_the_middle_tier_fails_its_exchange_until_removed(fresh: LocalTenant) -> None:
    incoming = person_token(fresh)
    rule = fresh.control(
        "POST",
        "/faults",
        {
            "service": "login",
            "path": r"/oauth2/v2.0/token$",
            "status": 503,
            "retryAfter": 3,
            "clientId": fresh.env["ENTRA_CLIENT_ID"],
        },
        expect=201,
    )
    with pytest.raises(MsalServiceError, match="HTTP Error: 503"):  # MSAL raises on a 5xx
        obo(fresh, incoming, ["User.Read"])
    fresh.control("DELETE", f"/faults/{rule['id']}")
    assert "access_token" in obo(fresh, incoming, ["User.Read"])
