"""The isolation matrix, through devhost, the local tenant (home, the onboarded customer Northwind, and
org002 that never onboarded) and Azurite: for every API route, a caller or a person of one organisation
reads only their own organisation's users, mail, audit and reports, never another's; a caller of an
organisation that is not onboarded is refused on every route; a token whose issuer is another tenant's
than its ``tid`` is a 401.

Callers of the customer and of org002 present tokens minted with the local tenant's own signing key (every
organisation's tokens are signed by the same keys, as in Entra) with their organisation's ``tid`` and
issuer: what a service registered in that organisation would get. The home caller is the real one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.checks import assert_error, call
from tests.integration.tenants_kit import browser, multi_tenant, onboard, outcome, register, start_multi_host
from tests.support.apphost import Caller, forge_token
from tests.support.tenant import LocalTenant

API_ROLES = ["Users.Read.All", "Mail.Read.All", "Audit.Read", "Reports.Read", "Reports.Run"]


class World:
    """The module's organisations, callers and what each should see."""

    def __init__(self, tenant: LocalTenant, host: DevHostProcess) -> None:
        env = tenant.env
        self.tenant, self.host = tenant, host
        self.home, self.customer = env["ENTRA_TENANT_ID"], env["CUSTOMER_TENANT_ID"]
        self.outsider = next(
            str(o["tenantId"])
            for o in tenant.control("GET", "/tenants")["value"]
            if o["origin"] != "home" and o["tenantId"] != self.customer
        )
        self.home_domain = "@" + env["DEMO_USER_USERNAME"].split("@")[1].lower()
        self.customer_domain = "@" + env["CUSTOMER_DOMAIN"].lower()
        self.caller = Caller(tenant)
        self.home_token = self.caller.token()

    def token_of(self, tenant_id: str, **claims: Any) -> str:
        """A caller of ``tenant_id`` holding every app role of the API."""
        caller = str(uuid.uuid4())
        defaults: dict[str, Any] = {
            "tid": tenant_id,
            "iss": f"{self.tenant.env['ENTRA_AUTHORITY_HOST']}/{tenant_id}/v2.0",
            "azp": str(uuid.uuid4()),
            "oid": caller,
            "sub": caller,
            "roles": API_ROLES,
        }
        return forge_token(self.tenant, **{**defaults, **claims})


@pytest.fixture(scope="module")
def world(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with multi_tenant(Path(tmp_path_factory.mktemp("multi-tenant-isolation"))) as tenant:
        env = tenant.env
        host = start_multi_host(
            Path(tmp_path_factory.mktemp("multi-host-isolation")),
            tenant,
            azurite.connection_string,
            MAILBOX_SCOPE=env["MAIL_READERS_GROUP_ID"],
            TENANTS_TABLE="isolationtenants",
            AUDIT_TABLE="isolationaudit",
            REPORT_CONTAINER="isolationreports",
            REPORT_QUEUE="isolation-runs",
        )
        try:
            register(tenant, host)
            page = onboard(
                browser(tenant, host),
                env["CUSTOMER_ADMIN_USERNAME"],
                env["CUSTOMER_ADMIN_PASSWORD"],
                group=env["CUSTOMER_MAIL_READERS_GROUP_ID"],
            )
            assert outcome(page) == "onboarded", page.text[:500]
            world = World(tenant, host)
            yield world
            world.caller.close()
        finally:
            host.stop()


def domains(users: list[dict[str, Any]]) -> set[str]:
    return {"@" + str(u["userPrincipalName"]).split("@")[1].lower() for u in users}


def test_users_each_organisation_lists_its_own(world: World) -> None:
    home = call(world.host, "/api/users", world.home_token, {"top": "999"})
    customer = call(world.host, "/api/users", world.token_of(world.customer), {"top": "999"})
    assert home.status_code == 200 and customer.status_code == 200, (home.text[:300], customer.text[:300])
    assert domains(home.json()["value"]) == {world.home_domain}
    assert domains(customer.json()["value"]) == {world.customer_domain}


def test_users_by_id_never_crosses(world: World) -> None:
    env = world.tenant.env
    customer_token = world.token_of(world.customer)
    assert (
        call(world.host, f"/api/users/{env['CUSTOMER_MEMBER_USERNAME']}", customer_token).status_code == 200
    )
    assert_error(
        call(world.host, f"/api/users/{env['DEMO_USER_USERNAME']}", customer_token), 404, "not_found"
    )
    assert_error(
        call(world.host, f"/api/users/{env['CUSTOMER_MEMBER_USERNAME']}", world.home_token), 404, "not_found"
    )


def test_mail_and_its_audit_stay_in_each_organisation(world: World) -> None:
    env = world.tenant.env
    customer_token = world.token_of(world.customer)
    own = call(world.host, f"/api/users/{env['CUSTOMER_MEMBER_USERNAME']}/messages", customer_token)
    assert own.status_code == 200 and own.json()["value"], own.text[:300]
    home_own = call(world.host, f"/api/users/{env['DEMO_USER_USERNAME']}/messages", world.home_token)
    assert home_own.status_code == 200
    # Another organisation's mailbox, by UPN or by object id, is not even found.
    crossed = call(world.host, f"/api/users/{env['DEMO_USER_USERNAME']}/messages", customer_token)
    assert_error(crossed, 404, "user_not_found")
    message_id = home_own.json()["value"][0]["id"]
    crossed_message = call(
        world.host, f"/api/users/{env['DEMO_USER_USERNAME']}/messages/{message_id}", customer_token
    )
    assert crossed_message.status_code == 404
    back = call(world.host, f"/api/users/{env['CUSTOMER_MEMBER_USERNAME']}/messages", world.home_token)
    assert_error(back, 404, "user_not_found")

    customer_audit = call(world.host, "/api/audit/mail", customer_token).json()["value"]
    home_audit = call(world.host, "/api/audit/mail", world.home_token).json()["value"]
    assert customer_audit and home_audit
    assert {r["mailbox"] for r in customer_audit} == {
        env["CUSTOMER_MEMBER_USERNAME"].lower(),
        env["DEMO_USER_USERNAME"].lower(),
    }  # the customer's own read and its refused attempt at a home mailbox, both in its own trail
    assert all(r["actor"]["appId"] != world.caller.client_id for r in customer_audit)
    assert env["CUSTOMER_MEMBER_USERNAME"].lower() in {r["mailbox"] for r in home_audit}  # home's refused try
    assert all(
        (r["mailboxUserPrincipalName"] or "").endswith(world.home_domain) or r["outcome"] != "allowed"
        for r in home_audit
    )
    assert all(
        (r["mailboxUserPrincipalName"] or "").endswith(world.customer_domain) or r["outcome"] != "allowed"
        for r in customer_audit
    )


def test_mail_outside_the_organisations_own_group_is_refused(world: World) -> None:
    env = world.tenant.env
    outside = call(
        world.host, f"/api/users/{env['CUSTOMER_ADMIN_USERNAME']}/messages", world.token_of(world.customer)
    )
    assert_error(outside, 403, "mailbox_out_of_scope")


def test_reports_each_organisation_reads_its_own(world: World) -> None:
    customer_token = world.token_of(world.customer)
    response = requests.post(
        world.host.url("/api/reports/users"),
        headers={"Authorization": f"Bearer {customer_token}"},
        timeout=30,
    )
    assert response.status_code in (200, 202), response.text[:300]
    latest: dict[str, Any] = {}

    def completed() -> bool:
        answer = call(world.host, "/api/reports/users/latest", customer_token)
        if answer.status_code == 200:
            latest.update(answer.json())
        return bool(latest)

    wait_until(completed, timeout=60, what="the customer's report")
    customer_users = world.tenant.control("GET", f"/tenants/{world.customer}")["users"]
    assert latest["totals"]["users"] == customer_users
    home_latest = call(world.host, "/api/reports/users/latest", world.home_token)
    assert home_latest.status_code == 404 or home_latest.json()["runId"] != latest["runId"]
    date = latest["reportDate"]
    home_summary = call(world.host, f"/api/reports/users/{date}", world.home_token)
    assert home_summary.status_code == 404 or home_summary.json()["runId"] != latest["runId"]
    home_csv = call(world.host, f"/api/reports/users/{date}/users.csv", world.home_token)
    assert home_csv.status_code == 404 or "isolationreports-t" not in home_csv.headers.get("Location", "")


@pytest.mark.parametrize(
    "path",
    [
        "/api/users",
        "/api/users/someone@example.com",
        "/api/users/someone@example.com/messages",
        "/api/audit/mail",
        "/api/reports/users/latest",
        "/api/reports/users/2026-01-01",
        "/api/reports/users/2026-01-01/status",
    ],
)
def test_a_caller_of_an_organisation_not_onboarded_is_refused_everywhere(world: World, path: str) -> None:
    assert_error(call(world.host, path, world.token_of(world.outsider)), 403, "tenant_not_onboarded")


def test_an_issuer_of_another_tenant_than_the_tid_is_a_401(world: World) -> None:
    home_issuer = f"{world.tenant.env['ENTRA_AUTHORITY_HOST']}/{world.home}/v2.0"
    forged = world.token_of(world.customer, iss=home_issuer)
    assert_error(call(world.host, "/api/users", forged), 401, "unauthenticated")
    outsider_as_customer = world.token_of(
        world.outsider, iss=f"{world.tenant.env['ENTRA_AUTHORITY_HOST']}/{world.customer}/v2.0"
    )
    assert_error(call(world.host, "/api/users", outsider_as_customer), 401, "unauthenticated")


def test_a_person_of_the_customer_sees_only_the_customer(world: World) -> None:
    env = world.tenant.env
    register(world.tenant, world.host)
    person = browser(world.tenant, world.host)
    assert (
        person.sign_in(env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"], "/me").status_code
        == 303
    )
    me = person.get("/api/me")
    assert (
        me.status_code == 200
        and me.json()["userPrincipalName"].lower() == env["CUSTOMER_MEMBER_USERNAME"].lower()
    )
    users = person.get("/api/users", params={"top": "999"})
    assert users.status_code == 200 and domains(users.json()["value"]) == {world.customer_domain}
    # People without the app's roles in their organisation are refused the role-gated routes.
    assert person.get("/api/audit/mail").status_code == 403
    assert person.get("/api/reports/users/latest").status_code == 403
    # A home person's session never gives the customer's data either (and vice versa): the session's tid.
    home_person = browser(world.tenant, world.host)
    assert home_person.sign_in(env["DEMO_USER_USERNAME"], env["DEMO_USER_PASSWORD"], "/me").status_code == 303
    home_users = home_person.get("/api/users", params={"top": "999"})
    assert domains(home_users.json()["value"]) == {world.home_domain}


def test_a_customer_auditor_and_mail_reader_signed_in_stays_in_the_customer(world: World) -> None:
    """A person of the customer given the app's roles by the customer's own administrator (its
    enterprise application's assignments), signed in: their mail reads and their audit trail are the
    customer's."""
    env = world.tenant.env
    member = world.tenant.control("GET", f"/tenants/{world.customer}")["member"]
    world.tenant.control(
        "PUT",
        f"/users/{member['id']}/app-roles/{env['ENTRA_CLIENT_ID']}",
        {"roles": ["Audit.Read", "Mail.Read.All"]},
        tenant=world.customer,
    )
    register(world.tenant, world.host)
    person = browser(world.tenant, world.host)
    assert person.sign_in(str(member["username"]), str(member["password"]), "/me").status_code == 303
    own = person.get("/api/users/" + env["CUSTOMER_MEMBER_USERNAME"] + "/messages")
    assert own.status_code == 200 and own.json()["value"]
    assert_error(person.get(f"/api/users/{env['DEMO_USER_USERNAME']}/messages"), 404, "user_not_found")
    trail = person.get("/api/audit/mail")
    assert trail.status_code == 200, trail.text[:300]
    records = trail.json()["value"]
    assert any(r["actor"]["objectId"] == member["id"] for r in records)  # their own reads are there
    assert all(r["actor"]["appId"] != world.caller.client_id for r in records)  # never the home caller's
    page = person.get("/audit")
    assert page.status_code == 200 and world.caller.client_id not in page.text


def test_a_real_client_app_of_the_customer_reads_the_customer_only(world: World) -> None:
    """A service registered in the customer's directory (client credentials in the customer's tenant, real
    msal) holding the app's roles there: the customer's users and its own audit records only."""
    import msal

    env = world.tenant.env
    app = world.tenant.control(
        "POST", f"/tenants/{world.customer}/apps", {"displayName": "Northwind service", "roles": API_ROLES}
    )
    client = msal.ConfidentialClientApplication(
        app["appId"],
        client_credential=app["secret"],
        authority=world.tenant.authority_of(world.customer),
        instance_discovery=False,
    )
    result = client.acquire_token_for_client([app["scope"]])
    assert "access_token" in result, result
    token = str(result["access_token"])
    users = call(world.host, "/api/users", token, {"top": "999"})
    assert users.status_code == 200 and domains(users.json()["value"]) == {world.customer_domain}
    read = call(world.host, f"/api/users/{env['CUSTOMER_MEMBER_USERNAME']}/messages", token)
    assert read.status_code == 200
    trail = call(world.host, "/api/audit/mail", token).json()["value"]
    assert any(r["actor"]["appId"] == app["appId"] for r in trail)
    home_trail = call(world.host, "/api/audit/mail", world.home_token).json()["value"]
    assert all(r["actor"]["appId"] != app["appId"] for r in home_trail)
