"""After onboarding, the customer disables, revokes or deletes the service principal (control API): new
token requests fail with the documented codes (7000112, no roles, 7000229) in that organisation only, and
tokens already issued stay valid until they expire. One managed-identity assertion serves every
organisation."""

from __future__ import annotations

import requests

from tests.emulator.entra_flow import JWT_BEARER, assert_aadsts, claims, token_post
from tests.emulator.tenants_kit import GRAPH_APP, app_token, graph, make_multi_tenant, onboard
from tests.support.tenant import LocalTenant


def sp_path(tenant: LocalTenant, tenant_id: str) -> str:
    return f"/tenants/{tenant_id}/service-principals/{tenant.env['ENTRA_CLIENT_ID']}"


def test_disable_revoke_delete_then_reconsent(fresh: LocalTenant) -> None:
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    other = fresh.create_organization(name="bystander")["tenantId"]
    onboard(fresh, customer)
    onboard(fresh, other)
    issued = app_token(fresh, customer)["access_token"]
    assert graph(fresh, issued, "/users?$top=1").status_code == 200

    disabled = fresh.control("PATCH", sp_path(fresh, customer), {"enabled": False})
    assert disabled["enabled"] is False
    refused = app_token(fresh, customer)
    assert refused["error"] == "unauthorized_client" and refused["error_codes"] == [7000112], refused
    assert "access_token" in app_token(fresh, other)  # the other organisation is unaffected
    assert graph(fresh, issued, "/users?$top=1").status_code == 200  # issued tokens live until exp
    fresh.control("PATCH", sp_path(fresh, customer), {"enabled": True})

    revoked = fresh.control("POST", sp_path(fresh, customer) + "/revoke", {})
    assert revoked["removedAppRoleAssignments"] == 5  # four Graph roles and SharePoint's Sites.Read.All
    assert revoked["appRoleAssignments"] == []
    bare = app_token(fresh, customer)["access_token"]  # still issued, without roles
    assert "roles" not in claims(bare)
    assert graph(fresh, bare, "/users?$top=1").json()["error"]["code"] == "Authorization_RequestDenied"
    member = env["CUSTOMER_MEMBER_USERNAME"]
    assert graph(fresh, bare, f"/users/{member}/messages").json()["error"]["code"] == "ErrorAccessDenied"
    assert graph(fresh, issued, f"/users/{member}/messages?$top=1").status_code == 200

    fresh.control("DELETE", sp_path(fresh, customer), expect=204)
    fresh.control("GET", sp_path(fresh, customer), expect=404)
    gone = app_token(fresh, customer)
    assert gone["error"] == "invalid_client" and gone["error_codes"] == [7000229], gone
    assert graph(fresh, issued, "/users?$top=1").status_code == 200

    again = onboard(fresh, customer, roles={GRAPH_APP: ["User.Read.All"]})  # a partial re-grant
    assert [a["role"] for a in again["appRoleAssignments"] if a["resourceAppId"] == GRAPH_APP] == [
        "User.Read.All"
    ]
    token = claims(app_token(fresh, customer)["access_token"])
    assert token["roles"] == ["User.Read.All"] and token["oid"] == again["servicePrincipalId"]
    assert token["oid"] != claims(issued)["oid"]  # a new service principal object
    # (Last: MSAL dates its client assertions by this machine's clock, which the tenant's now runs ahead of.)
    fresh.advance_clock(3600 + 301)  # past exp and the five minutes of skew Graph tolerates
    expired = graph(fresh, issued, "/users?$top=1")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_deleting_an_organisation_and_a_single_tenant_registration(fresh: LocalTenant) -> None:
    make_multi_tenant(fresh)
    org = fresh.create_organization(name="shortlived")
    onboard(fresh, org["tenantId"])
    assert "access_token" in app_token(fresh, org["tenantId"])
    # Back to single tenant: the service principal stays, but the app is not found there any more.
    fresh.control("PATCH", f"/apps/{fresh.env['ENTRA_CLIENT_ID']}", {"signInAudience": "AzureADMyOrg"})
    assert app_token(fresh, org["tenantId"])["error_codes"] == [700016]
    fresh.control("DELETE", f"/tenants/{org['tenantId']}", expect=204)
    gone = token_post(fresh, {"grant_type": "client_credentials"}, tenant_segment=org["tenantId"])
    assert_aadsts(gone, 400, "invalid_request", 90002)
    fresh.control("DELETE", f"/tenants/{fresh.env['ENTRA_TENANT_ID']}", expect=400)  # not the home tenant


def test_one_managed_identity_assertion_serves_every_onboarded_organisation(fresh: LocalTenant) -> None:
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    answer = requests.get(
        env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": "api://AzureADTokenExchange"},
        headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
        verify=fresh.ca_cert,
        timeout=30,
    )
    assertion = answer.json()["access_token"]
    form = {
        "grant_type": "client_credentials",
        "client_id": env["ENTRA_CLIENT_ID"],
        "scope": "https://graph.microsoft.com/.default",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    assert_aadsts(token_post(fresh, form, tenant_segment=customer), 401, "invalid_client", 7000229)
    onboard(fresh, customer)
    for segment in (customer, env["ENTRA_TENANT_ID"]):
        got = token_post(fresh, form, tenant_segment=segment)
        assert got.status_code == 200, got.text
        assert claims(got.json()["access_token"])["tid"] == segment
