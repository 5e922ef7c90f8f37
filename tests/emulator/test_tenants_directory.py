"""Several organisations in the local tenant: the seeded customer and the env file, organisations created
through the control API, per-organisation tokens and Graph isolation (one organisation's token never reads
another's users or mail), discovery per tenant."""

from __future__ import annotations

import requests

from tests.emulator.entra_flow import assert_aadsts, token_post
from tests.emulator.tenants_kit import app_token, graph, make_multi_tenant, onboard, tid_iss
from tests.support.tenant import LocalTenant


def test_the_env_file_names_the_customer_and_its_accounts(tenant: LocalTenant) -> None:
    env = tenant.env
    customer = env["CUSTOMER_TENANT_ID"]
    assert customer != env["ENTRA_TENANT_ID"] and env["CUSTOMER_DOMAIN"] == "northwind.onmicrosoft.com"
    assert env["CUSTOMER_ADMIN_USERNAME"] == "admin@northwind.onmicrosoft.com"
    assert env["CUSTOMER_MEMBER_USERNAME"] == "member@northwind.onmicrosoft.com"
    assert (
        env["CUSTOMER_ADMIN_PASSWORD"] and env["CUSTOMER_MEMBER_PASSWORD"] != env["CUSTOMER_ADMIN_PASSWORD"]
    )
    org = tenant.control("GET", f"/tenants/{env['CUSTOMER_DOMAIN']}")
    assert org["tenantId"] == customer and org["origin"] == "seeded"
    assert org["admin"]["username"] == env["CUSTOMER_ADMIN_USERNAME"]
    assert org["admin"]["password"] == env["CUSTOMER_ADMIN_PASSWORD"]
    assert org["servicePrincipals"] == []  # no service principal for Graph Functions until consent
    listed = tenant.control("GET", "/tenants")["value"]
    assert [o["tenantId"] for o in listed[:2]] == [env["ENTRA_TENANT_ID"], customer]
    assert listed[0]["origin"] == "home"
    # Unknown organisations: 404 on the control API, AADSTS90002 on the token endpoint.
    tenant.control("GET", "/tenants/nowhere.onmicrosoft.com", expect=404)
    tenant.control("GET", "/users", tenant="00000000-0000-0000-0000-00000000dead", expect=404)
    unknown = token_post(
        tenant, {"grant_type": "client_credentials"}, tenant_segment="nowhere.onmicrosoft.com"
    )
    assert_aadsts(unknown, 400, "invalid_request", 90002)


def test_discovery_names_each_tenant_and_the_template_for_organizations(tenant: LocalTenant) -> None:
    host, customer = tenant.env["ENTRA_AUTHORITY_HOST"], tenant.env["CUSTOMER_TENANT_ID"]

    def meta(segment: str) -> dict[str, str]:
        url = f"{host}/{segment}/v2.0/.well-known/openid-configuration"
        answer = requests.get(url, verify=tenant.ca_cert, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    by_id, by_domain = meta(customer), meta(tenant.env["CUSTOMER_DOMAIN"])
    assert by_id["issuer"] == by_domain["issuer"] == f"{host}/{customer}/v2.0"
    assert by_id["token_endpoint"] == f"{host}/{customer}/oauth2/v2.0/token"
    assert meta(tenant.env["ENTRA_TENANT_ID"])["issuer"] == f"{host}/{tenant.env['ENTRA_TENANT_ID']}/v2.0"
    for segment in ("organizations", "common"):
        assert meta(segment)["issuer"] == f"{host}/{{tenantid}}/v2.0"
    keys = requests.get(f"{host}/{customer}/discovery/v2.0/keys", verify=tenant.ca_cert, timeout=30).json()
    assert {k["issuer"] for k in keys["keys"]} == {f"{host}/{customer}/v2.0"}


def test_created_organisations_have_their_own_directory_and_a_reset_drops_them(fresh: LocalTenant) -> None:
    first = fresh.create_organization(name="tailspin", displayName="Tailspin Toys", users=9)
    second = fresh.create_organization()
    assert first["domain"] == "tailspin.onmicrosoft.com" and first["users"] == 9
    assert first["tenantId"] != second["tenantId"] and first["authority"].endswith(first["tenantId"])
    assert first["admin"]["username"] == "admin@tailspin.onmicrosoft.com" and first["admin"]["password"]
    bad = fresh.control("POST", "/tenants", {"name": "tailspin"}, expect=400)
    assert "already exists" in bad["error"]["message"]
    fresh.control("POST", "/tenants", {"name": "Bad Name!"}, expect=400)
    fresh.control("POST", "/tenants", {"users": 1}, expect=400)
    # The control API acts in the named organisation only.
    made = fresh.control(
        "POST",
        "/users",
        {"userPrincipalName": "new.person@tailspin.onmicrosoft.com", "displayName": "New Person"},
        tenant=first["tenantId"],
    )
    assert made["userPrincipalName"] == "new.person@tailspin.onmicrosoft.com"
    fresh.reset()
    fresh.control("GET", f"/tenants/{first['tenantId']}", expect=404)
    # The seeded customer keeps its ids across a reset.
    assert (
        fresh.control("GET", "/tenants/northwind.onmicrosoft.com")["tenantId"]
        == fresh.env["CUSTOMER_TENANT_ID"]
    )


def test_a_token_of_one_organisation_reads_only_its_own_directory_and_mail(fresh: LocalTenant) -> None:
    customer = fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    onboard(fresh, customer)
    theirs = app_token(fresh, customer)["access_token"]
    ours = app_token(fresh, fresh.env["ENTRA_TENANT_ID"])["access_token"]
    assert tid_iss(theirs) == (customer, f"https://sts.windows.net/{customer}/")
    assert tid_iss(ours)[0] == fresh.env["ENTRA_TENANT_ID"]

    their_users = graph(fresh, theirs, "/users?$top=999").json()["value"]
    assert len(their_users) == 12
    assert all(u["userPrincipalName"].endswith("@northwind.onmicrosoft.com") for u in their_users)
    our_users = graph(fresh, ours, "/users?$top=999").json()["value"]
    assert not any(u["userPrincipalName"].endswith("@northwind.onmicrosoft.com") for u in our_users)

    member = fresh.env["CUSTOMER_MEMBER_USERNAME"]
    mail = graph(fresh, theirs, f"/users/{member}/messages?$top=5")
    assert mail.status_code == 200 and len(mail.json()["value"]) == 5, mail.text
    their_member_id = next(u["id"] for u in their_users if u["userPrincipalName"] == member)
    # Across organisations: by UPN and by object id, users and mail are not found.
    for path in (f"/users/{member}", f"/users/{their_member_id}", f"/users/{their_member_id}/messages"):
        assert graph(fresh, ours, path).status_code == 404, path
    home_member = fresh.env["DEMO_USER_USERNAME"]
    for path in (f"/users/{home_member}", f"/users/{home_member}/messages"):
        assert graph(fresh, theirs, path).status_code == 404, path
    groups = graph(fresh, theirs, "/groups?$top=999").json()["value"]
    names = {g["displayName"] for g in groups}
    assert {"Mail Readers", "Mail Readers - Service Desk", "Regional Managers", "Data Access"} <= names
    readers = fresh.env["CUSTOMER_MAIL_READERS_GROUP_ID"]
    desk = next(g["id"] for g in groups if g["displayName"] == "Mail Readers - Service Desk")
    members = graph(fresh, theirs, f"/groups/{desk}/members").json()["value"]
    assert members, "the nested group has people"
    through = graph(fresh, theirs, f"/users/{members[0]['id']}/transitiveMemberOf").json()["value"]
    assert readers in {g["id"] for g in through}  # nested membership, inside the customer's directory
    assert graph(fresh, ours, f"/groups/{readers}").status_code == 404


def test_a_forged_tid_cannot_move_a_token_to_another_organisation(fresh: LocalTenant) -> None:
    """The organisation is chosen by the token's unverified tid, then the signature decides: a home token
    whose payload is edited to name the customer fails validation (401), never reads the customer."""
    import base64
    import json

    token = app_token(fresh, fresh.env["ENTRA_TENANT_ID"])["access_token"]
    head, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["tid"] = fresh.env["CUSTOMER_TENANT_ID"]
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    answer = graph(fresh, f"{head}.{forged}.{sig}", "/users?$top=1")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_mailbox_scopes_belong_to_one_organisation(fresh: LocalTenant) -> None:
    """An application access policy is an Exchange setting of one organisation: the home tenant's scope for
    the app does not limit it in the customer, and the customer's own scope (its Mail Readers group) does."""
    env, customer, app = fresh.env, fresh.env["CUSTOMER_TENANT_ID"], fresh.env["ENTRA_CLIENT_ID"]
    make_multi_tenant(fresh)
    onboard(fresh, customer)
    token = app_token(fresh, customer)["access_token"]
    fresh.control("PUT", f"/graph/mailbox-scopes/{app}", {"users": [env["DEMO_USER_USERNAME"]]})
    admin, member = env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_MEMBER_USERNAME"]
    assert graph(fresh, token, f"/users/{admin}/messages?$top=1").status_code == 200
    fresh.control(
        "PUT",
        f"/graph/mailbox-scopes/{app}",
        {"groups": [env["CUSTOMER_MAIL_READERS_GROUP_ID"]]},
        tenant=customer,
    )
    assert graph(fresh, token, f"/users/{member}/messages?$top=1").status_code == 200
    refused = graph(fresh, token, f"/users/{admin}/messages?$top=1")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ErrorAccessDenied"
    listed = fresh.control("GET", "/graph/mailbox-scopes", tenant=customer)["value"]
    assert listed == [{"appId": app, "users": [], "groups": [env["CUSTOMER_MAIL_READERS_GROUP_ID"]]}]
    home = fresh.control("GET", "/graph/mailbox-scopes")["value"]
    assert [s["appId"] for s in home] == [app] and home[0]["groups"] == []


def test_a_fault_rule_can_fail_one_organisation_only(fresh: LocalTenant) -> None:
    """``tenantId`` on a fault rule: an outage of one organisation's Graph or token endpoint, the others
    served (the request log names each request's tenant)."""
    env, customer = fresh.env, fresh.env["CUSTOMER_TENANT_ID"]
    make_multi_tenant(fresh)
    onboard(fresh, customer)
    theirs = app_token(fresh, customer)["access_token"]
    ours = app_token(fresh, env["ENTRA_TENANT_ID"])["access_token"]
    seq = fresh.last_seq()
    fresh.control(
        "POST", "/faults", {"service": "graph", "path": "^/v1.0/users", "status": 503, "tenantId": customer}
    )
    fresh.control(
        "POST",
        "/faults",
        {"service": "login", "path": "/token$", "status": 429, "retryAfter": 7, "tenantId": customer},
    )
    down = graph(fresh, theirs, "/users?$top=1")
    assert down.status_code == 503 and down.json()["error"]["code"] == "ServiceUnavailable", down.text
    assert graph(fresh, ours, "/users?$top=1").status_code == 200
    throttled = token_post(fresh, {"grant_type": "client_credentials"}, tenant_segment=customer)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert "access_token" in app_token(fresh, env["ENTRA_TENANT_ID"])
    logged = fresh.requests_since(seq, service="graph")
    assert [(e["tenant"], e["status"]) for e in logged] == [(customer, 503), (env["ENTRA_TENANT_ID"], 200)]
    bad = fresh.control("POST", "/faults", {"path": "x", "tenantId": 7}, expect=400)
    assert "tenantId" in bad["error"]["message"]
