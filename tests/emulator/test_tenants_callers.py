"""Callers of Graph Functions' API inside a customer organisation: a client app registered there (its token
for ``api://{app}/.default`` minted in that organisation) and people holding the app's roles there."""

from __future__ import annotations

from tests.emulator.entra_flow import REDIRECT, Browser, assert_aadsts, claims, params_of, token_post
from tests.emulator.tenants_kit import app_at, make_multi_tenant, onboard
from tests.support.tenant import LocalTenant


def test_a_customer_service_gets_tokens_for_the_api_in_its_own_organisation(fresh: LocalTenant) -> None:
    env, customer, ours = fresh.env, fresh.env["CUSTOMER_TENANT_ID"], fresh.env["ENTRA_CLIENT_ID"]
    make_multi_tenant(fresh)
    early = fresh.control("POST", f"/tenants/{customer}/apps", {"roles": ["Reports.Read"]}, expect=409)
    assert "consent first" in early["error"]["message"]
    onboard(fresh, customer)
    caller = fresh.control(
        "POST",
        f"/tenants/{customer}/apps",
        {"displayName": "Northwind scheduler", "roles": ["Reports.Read", "Mail.Read.All"]},
        expect=201,
    )
    assert (
        caller["roles"] == ["Mail.Read.All", "Reports.Read"] and caller["scope"] == f"api://{ours}/.default"
    )
    form = {
        "grant_type": "client_credentials",
        "client_id": caller["appId"],
        "client_secret": caller["secret"],
        "scope": caller["scope"],
    }
    answer = token_post(fresh, form, tenant_segment=customer)
    assert answer.status_code == 200, answer.text
    body = claims(answer.json()["access_token"])
    assert body["aud"] == ours and body["azp"] == caller["appId"] and body["tid"] == customer
    assert body["iss"] == f"{env['ENTRA_AUTHORITY_HOST']}/{customer}/v2.0"
    assert body["roles"] == ["Mail.Read.All", "Reports.Read"]
    # The same client is unknown to the home tenant, and a wrong secret is refused as usual.
    assert_aadsts(token_post(fresh, form), 400, "unauthorized_client", 700016)
    wrong = token_post(fresh, {**form, "client_secret": "nope"}, tenant_segment=customer)
    assert_aadsts(wrong, 401, "invalid_client", 7000215)
    fresh.control("POST", f"/tenants/{customer}/apps", {"roles": ["Not.A.Role"]}, expect=400)


def test_a_customer_person_holds_the_app_roles_assigned_in_their_organisation(fresh: LocalTenant) -> None:
    env, customer, ours = fresh.env, fresh.env["CUSTOMER_TENANT_ID"], fresh.env["ENTRA_CLIENT_ID"]
    make_multi_tenant(fresh)
    onboard(fresh, customer)
    member = fresh.control("GET", f"/tenants/{customer}")["member"]
    assigned = fresh.control(
        "PUT", f"/users/{member['id']}/app-roles/{ours}", {"roles": ["Mail.Read.All"]}, tenant=customer
    )
    assert assigned["roles"] == ["Mail.Read.All"]
    fresh.control("GET", f"/users/{member['id']}/app-roles/{ours}", expect=404)  # not a home user
    app = app_at(fresh, "organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    done = browser.sign_in(
        browser.get(flow["auth_uri"]), env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"]
    )
    result = app.acquire_token_by_auth_code_flow(flow, params_of(done))
    assert (
        result["id_token_claims"]["roles"] == ["Mail.Read.All"]
        and result["id_token_claims"]["tid"] == customer
    )


def test_sharepoint_profile_of_a_customer_person(fresh: LocalTenant) -> None:
    """SharePoint serves the organisation of the token's tid: the customer member's own site user and
    profile, their tenant id in the profile; a home person's token never shows a customer profile."""
    import requests

    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    onboard(fresh, customer)
    site = env["SHAREPOINT_SITE_URL"]
    origin = site.split("/sites/")[0]
    app = app_at(fresh, customer)
    username = env["CUSTOMER_MEMBER_USERNAME"]
    result = app.client.obtain_token_by_username_password(
        username, env["CUSTOMER_MEMBER_PASSWORD"], scope=[f"{origin}/AllSites.Read"]
    )
    assert "access_token" in result, result
    assert claims(result["access_token"])["tid"] == customer
    headers = {
        "Accept": "application/json;odata=nometadata",
        "Authorization": f"Bearer {result['access_token']}",
    }
    me = requests.get(f"{site}/_api/web/currentuser", headers=headers, timeout=10)
    assert me.status_code == 200 and me.json()["LoginName"] == f"i:0#.f|membership|{username}", me.text
    profile = requests.get(
        f"{site}/_api/SP.UserProfiles.PeopleManager/GetMyProperties", headers=headers, timeout=10
    )
    props = {p["Key"]: p["Value"] for p in profile.json()["UserProfileProperties"]}
    assert props["UserName"] == username
    assert customer in {str(v) for v in props.values()}, props  # the profile names the customer's tenant
