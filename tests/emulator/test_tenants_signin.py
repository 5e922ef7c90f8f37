"""Sign-in through ``/organizations`` for a multi-tenant registration: the user's organisation decides
``tid``/``iss``, consent and the service principal; a code and a refresh token are redeemed at the same
``/organizations`` token endpoint; tenant-specific authorities keep other organisations' users out."""

from __future__ import annotations

from tests.emulator.entra_flow import REDIRECT, Browser, claims, params_of, parse_page
from tests.emulator.tenants_kit import app_at, app_token, graph, make_multi_tenant
from tests.support.tenant import LocalTenant


def test_customer_admin_signs_in_under_organizations_and_creates_the_service_principal(
    fresh: LocalTenant,
) -> None:
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    host = env["ENTRA_AUTHORITY_HOST"]
    make_multi_tenant(fresh)
    app = app_at(fresh, "organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    page = browser.get(flow["auth_uri"])
    consent = browser.sign_in(page, env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_ADMIN_PASSWORD"])
    ids = parse_page(
        consent.text
    ).ids  # no service principal yet: the admin is asked, and may consent for all
    assert {"permissions", "accept", "consent-org"} <= ids, consent.text[:400]
    result = app.acquire_token_by_auth_code_flow(flow, params_of(browser.consent(consent, org=True)))
    assert "access_token" in result, result
    id_claims = result["id_token_claims"]
    assert id_claims["tid"] == customer and id_claims["iss"] == f"{host}/{customer}/v2.0"
    assert id_claims["preferred_username"] == env["CUSTOMER_ADMIN_USERNAME"]
    me = graph(fresh, result["access_token"], "/me")
    assert me.status_code == 200 and me.json()["userPrincipalName"] == env["CUSTOMER_ADMIN_USERNAME"]
    # The consent created the service principal with the delegated grant only: app tokens carry no roles.
    sp = fresh.control("GET", f"/tenants/{customer}/service-principals/{env['ENTRA_CLIENT_ID']}")
    assert (
        sp["appRoleAssignments"] == [] and sp["oauth2PermissionGrants"][0]["consentType"] == "AllPrincipals"
    )
    bare = app_token(fresh, customer)
    assert "access_token" in bare and "roles" not in claims(bare["access_token"]), bare
    denied = graph(fresh, bare["access_token"], "/users?$top=1")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    # The refresh token is redeemed under /organizations too, in the customer's organisation.
    account = app.get_accounts()[0]
    assert account["home_account_id"].endswith(f".{customer}")
    again = app.acquire_token_silent(["User.Read"], account=account, force_refresh=True)
    assert again is not None and claims(again["access_token"])["tid"] == customer, again
    # The member now signs in without a consent page (the admin consented for the organisation).
    member = Browser.open(fresh)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    done = member.sign_in(
        member.get(flow["auth_uri"]), env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"]
    )
    assert done.status_code == 302, done.text[:300]
    tokens = app.acquire_token_by_auth_code_flow(flow, params_of(done))
    assert tokens["id_token_claims"]["tid"] == customer, tokens


def test_a_member_cannot_consent_alone_in_a_customer_organisation(fresh: LocalTenant) -> None:
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    app = app_at(fresh, "organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    page = browser.sign_in(
        browser.get(flow["auth_uri"]), env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"]
    )
    assert "admin-required" in parse_page(page.text).ids and "Need admin approval" in page.text, page.text[
        :500
    ]
    got = params_of(browser.consent(page))  # even "accept" is a decline when an admin must approve
    assert got["error"] == "access_denied" and got["error_description"].startswith("AADSTS65004")
    assert fresh.control("GET", f"/tenants/{customer}")["servicePrincipals"] == []
    # With user consent allowed in that organisation, the member's own consent creates the service principal.
    fresh.control("PATCH", f"/tenants/{customer}", {"userConsent": True})
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    page = browser.get(flow["auth_uri"])  # the member's session (single sign-on): straight to consent
    assert "admin-required" not in parse_page(page.text).ids
    result = app.acquire_token_by_auth_code_flow(flow, params_of(browser.consent(page)))
    assert result["id_token_claims"]["tid"] == customer, result
    sp = fresh.control("GET", f"/tenants/{customer}/service-principals/{env['ENTRA_CLIENT_ID']}")
    assert [g["consentType"] for g in sp["oauth2PermissionGrants"]] == ["Principal"]


def test_home_users_under_organizations_and_foreign_users_on_tenant_specific_authorities(
    fresh: LocalTenant,
) -> None:
    env = fresh.env
    make_multi_tenant(fresh)
    app = app_at(fresh, "organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(fresh)
    done = browser.sign_in(
        browser.get(flow["auth_uri"]), env["DEMO_USER_USERNAME"], env["DEMO_USER_PASSWORD"]
    )
    result = app.acquire_token_by_auth_code_flow(flow, params_of(done))
    assert result["id_token_claims"]["tid"] == env["ENTRA_TENANT_ID"], result
    # The home tenant's own authority refuses the customer's member after the password (AADSTS50020).
    home = app_at(fresh, env["ENTRA_TENANT_ID"])
    flow = home.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    other = Browser.open(fresh)
    got = params_of(
        other.sign_in(
            other.get(flow["auth_uri"]), env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"]
        )
    )
    assert got["error"] == "access_denied" and got["error_description"].startswith("AADSTS50020"), got
    assert "does not exist in tenant 'Contoso (local tenant)'" in got["error_description"]
    # A wrong password is still just a wrong password (nothing tells which organisation holds the account).
    flow = home.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    page = other.sign_in(other.get(flow["auth_uri"]), env["CUSTOMER_MEMBER_USERNAME"], "wrong")
    assert page.status_code == 200 and "AADSTS50126" in page.text


def test_single_sign_on_follows_the_session_user_organisation(fresh: LocalTenant) -> None:
    """The onboarding walk: the customer's admin signs in under /organizations once; the same browser then
    reaches the customer's admin-consent page and a second /organizations sign-in without a password."""
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    fresh.control("PATCH", f"/tenants/{customer}", {"userConsent": True})
    app = app_at(fresh, "organizations")
    browser = Browser.open(fresh)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    page = browser.sign_in(
        browser.get(flow["auth_uri"]), env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_ADMIN_PASSWORD"]
    )
    app.acquire_token_by_auth_code_flow(flow, params_of(browser.consent(page)))  # consents for themselves
    consent = browser.get(
        f"{env['ENTRA_AUTHORITY_HOST']}/{customer}/v2.0/adminconsent",
        client_id=env["ENTRA_CLIENT_ID"],
        scope="https://graph.microsoft.com/.default",
        redirect_uri="http://localhost:7071/auth/admin-consent/callback",
        state="sso",
    )
    assert "permissions" in parse_page(consent.text).ids, consent.text[:300]  # no sign-in page
    assert params_of(browser.consent(consent))["tenant"] == customer
    again = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    silent = browser.get(again["auth_uri"])
    assert silent.status_code == 302, silent.text[:300]
    result = app.acquire_token_by_auth_code_flow(again, params_of(silent))
    assert result["id_token_claims"]["tid"] == customer, result
    # The session does not cross into the home tenant's own authority: its sign-in page is shown.
    home = app_at(fresh, env["ENTRA_TENANT_ID"]).initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    assert "signin" in parse_page(browser.get(home["auth_uri"]).text).ids
