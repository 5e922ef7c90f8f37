"""Onboarding another organisation by admin consent: ``/{tenant}/v2.0/adminconsent`` creates the service
principal and the app-role grants in that organisation only; a decline, a non-admin, an administrator of
another organisation and a single-tenant registration each end as documented
(emulator/docs/multi-tenant.md)."""

from __future__ import annotations

import requests

from tests.emulator.entra_flow import Browser, assert_aadsts, claims, params_of, parse_page, token_post
from tests.emulator.tenants_kit import (
    ADMIN_CONSENT_REDIRECT,
    GRAPH_DEFAULT,
    app_token,
    graph,
    make_multi_tenant,
)
from tests.support.tenant import LocalTenant

GRAPH_ROLES = ["GroupMember.Read.All", "Mail.Read", "Mail.Send", "User.Read.All"]


def admin_consent(browser: Browser, tenant_segment: str, **params: str) -> requests.Response:
    env = browser.tenant.env
    params.setdefault("client_id", env["ENTRA_CLIENT_ID"])
    params.setdefault("redirect_uri", ADMIN_CONSENT_REDIRECT)
    params.setdefault("scope", GRAPH_DEFAULT)
    return browser.get(f"{env['ENTRA_AUTHORITY_HOST']}/{tenant_segment}/v2.0/adminconsent", **params)


def service_principals(tenant: LocalTenant, tenant_id: str) -> list[str]:
    return list(tenant.control("GET", f"/tenants/{tenant_id}")["servicePrincipals"])


def test_admin_consent_creates_the_service_principal_and_grants_in_that_organisation(
    fresh: LocalTenant,
) -> None:
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    before = app_token(fresh, customer)
    assert before["error"] == "invalid_client" and before["error_codes"] == [7000229], before
    assert f"missing service principal in the tenant {customer}" in before["error_description"]

    browser = Browser.open(fresh)
    page = admin_consent(browser, customer, state="onboard-1")
    assert "Northwind Traders" in page.text  # the customer's sign-in page, not the home tenant's
    consent = browser.sign_in(page, env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_ADMIN_PASSWORD"])
    assert 'data-type="Application"' in consent.text and "User.Read.All" in consent.text
    assert service_principals(fresh, customer) == []  # nothing is created before the admin accepts
    got = params_of(browser.consent(consent))
    assert got["admin_consent"] == "True" and got["tenant"] == customer and got["state"] == "onboard-1"
    assert "https://graph.microsoft.com/User.Read.All" in got["scope"].split()

    assert service_principals(fresh, customer) == [env["ENTRA_CLIENT_ID"]]
    sp = fresh.control("GET", f"/tenants/{customer}/service-principals/{env['ENTRA_CLIENT_ID']}")
    assert sorted(a["role"] for a in sp["appRoleAssignments"]) == GRAPH_ROLES and sp["enabled"] is True
    token = app_token(fresh, customer)["access_token"]
    body = claims(token)
    assert body["tid"] == customer and body["iss"] == f"https://sts.windows.net/{customer}/"
    assert body["roles"] == GRAPH_ROLES and body["oid"] == sp["servicePrincipalId"]
    assert graph(fresh, token, "/users?$top=1").status_code == 200
    # The home tenant's own grants are untouched, and its service principal is another object.
    home = claims(app_token(fresh, env["ENTRA_TENANT_ID"])["access_token"])
    assert home["tid"] == env["ENTRA_TENANT_ID"] and home["oid"] != body["oid"]
    # Under /organizations the same walk consents in the organisation of the admin who signs in.
    other = fresh.create_organization(name="contosoish")
    second = Browser.open(fresh)
    page = admin_consent(second, "organizations", state="onboard-2")
    consent = second.sign_in(page, other["admin"]["username"], other["admin"]["password"])
    got = params_of(second.consent(consent))
    assert got["tenant"] == other["tenantId"] and got["state"] == "onboard-2"
    assert service_principals(fresh, other["tenantId"]) == [env["ENTRA_CLIENT_ID"]]


def test_decline_non_admin_and_foreign_admin_create_nothing(fresh: LocalTenant) -> None:
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    admin = Browser.open(fresh)
    consent = admin.sign_in(
        admin_consent(admin, customer, state="no"),
        env["CUSTOMER_ADMIN_USERNAME"],
        env["CUSTOMER_ADMIN_PASSWORD"],
    )
    declined = params_of(admin.consent(consent, accept=False))
    assert declined["error"] == "access_denied" and declined["admin_consent"] == "True"
    assert declined["error_description"].startswith("AADSTS65004") and declined["state"] == "no"
    assert "tenant" not in declined  # errors carry no tenant (azure-docs#114009)

    member = Browser.open(fresh)
    page = admin_consent(member, customer, state="member")
    got = params_of(member.sign_in(page, env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"]))
    assert got["error"] == "consent_required" and got["error_description"].startswith("AADSTS90094")
    assert got["state"] == "member" and "tenant" not in got

    foreign = Browser.open(fresh)  # the home tenant's admin on the customer's tenant-specific URL
    page = admin_consent(foreign, customer, state="foreign")
    got = params_of(foreign.sign_in(page, env["DEMO_ADMIN_USERNAME"], env["DEMO_ADMIN_PASSWORD"]))
    assert got["error"] == "access_denied" and got["error_description"].startswith("AADSTS50020"), got
    assert service_principals(fresh, customer) == []
    assert app_token(fresh, customer)["error_codes"] == [7000229]


def test_a_single_tenant_registration_is_not_found_in_other_organisations(fresh: LocalTenant) -> None:
    customer = fresh.env["CUSTOMER_TENANT_ID"]  # the registration is AzureADMyOrg by default
    page = admin_consent(Browser.open(fresh), customer)
    assert page.status_code == 400 and "AADSTS700016" in page.text and "Location" not in page.headers
    refused = app_token(fresh, customer)
    assert refused["error"] == "unauthorized_client" and refused["error_codes"] == [700016], refused
    assert "Northwind Traders" in refused["error_description"]
    # An app registered nowhere: 700016 too, with a client secret form (no MSAL cache in between).
    unknown = token_post(
        fresh,
        {
            "grant_type": "client_credentials",
            "client_id": "11111111-2222-3333-4444-555555555555",
            "client_secret": "x",
            "scope": GRAPH_DEFAULT,
        },
        tenant_segment=customer,
    )
    assert_aadsts(unknown, 400, "unauthorized_client", 700016)
    # Back to multi-tenant, the customer's sign-in page is served (for the customer's directory).
    make_multi_tenant(fresh)
    page = admin_consent(Browser.open(fresh), customer)
    assert page.status_code == 200 and "signin" in parse_page(page.text).ids


def test_v2_admin_consent_under_common_is_refused(fresh: LocalTenant) -> None:
    make_multi_tenant(fresh)
    got = params_of(admin_consent(Browser.open(fresh), "common", state="c"))
    assert got["error"] == "invalid_request" and "'response_type'" in got["error_description"]
    assert got["state"] == "c"
