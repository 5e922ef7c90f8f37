"""Onboarding another organisation through devhost, the local tenant (a multi-tenant registration with the
customer Northwind and org002) and Azurite: the customer administrator's walk, then the allow-list for
people (a member of an organisation that is not onboarded is refused, no session), and each way the walk
can end otherwise: a decline, a non-administrator, a partial grant, a forged consent answer naming
another tenant, and the home tenant's own administrator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.tenants_kit import (
    browser,
    multi_tenant,
    onboard,
    outcome,
    register,
    registry,
    start_multi_host,
    start_onboarding,
)
from tests.integration.test_signin_kit import SESSION_COOKIE
from tests.support.tenant import LocalTenant

GRAPH = "00000003-0000-0000-c000-000000000000"


@pytest.fixture(scope="module")
def mt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    with multi_tenant(Path(tmp_path_factory.mktemp("multi-tenant"))) as tenant:
        yield tenant


@pytest.fixture(scope="module")
def host(
    mt: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    started = start_multi_host(Path(tmp_path_factory.mktemp("multi-host")), mt, azurite.connection_string)
    try:
        yield started
    finally:
        started.stop()


def new_org(mt: LocalTenant, host: DevHostProcess) -> dict[str, object]:
    """A new organisation of its own (so no test sees another's registry row or consent)."""
    register(mt, host)
    return mt.create_organization()


def test_the_customer_admin_onboards_and_then_its_people_sign_in(
    mt: LocalTenant, host: DevHostProcess
) -> None:
    env = mt.env
    customer = env["CUSTOMER_TENANT_ID"]
    register(mt, host)
    admin = browser(mt, host)
    page = onboard(admin, env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_ADMIN_PASSWORD"])
    assert page.status_code == 200 and outcome(page) == "onboarded", page.text[:800]
    assert env["CUSTOMER_DOMAIN"] in page.text
    row = registry(host)[customer]
    assert row["Status"] == "active" and row["OnboardedBy"] == env["CUSTOMER_ADMIN_USERNAME"].lower()
    assert {"User.Read.All", "Mail.Read", "GroupMember.Read.All"} <= set(str(row["Permissions"]).split())
    assert row["MailboxScope"] == ""  # default deny until the organisation chooses a group

    member = browser(mt, host)
    signed_in = member.sign_in(env["CUSTOMER_MEMBER_USERNAME"], env["CUSTOMER_MEMBER_PASSWORD"], "/me")
    assert signed_in.status_code == 303 and member.session_id is not None
    me = member.get("/me")
    assert me.status_code == 200 and env["CUSTOMER_MEMBER_USERNAME"] in me.text
    users = member.get("/users")
    assert users.status_code == 200
    assert env["CUSTOMER_DOMAIN"] in users.text and env["DEMO_USER_USERNAME"].split("@")[1] not in users.text


def test_a_member_of_an_organisation_not_onboarded_gets_no_session(
    mt: LocalTenant, host: DevHostProcess
) -> None:
    """The organisation's administrator consented in the portal (the app has a service principal there,
    so Entra signs its people in) but never onboarded it here: the app still refuses its people."""
    org = new_org(mt, host)
    mt.control("PUT", f"/tenants/{org['tenantId']}/service-principals/{mt.env['ENTRA_CLIENT_ID']}", {})
    member = org["member"]
    assert isinstance(member, dict)
    web = browser(mt, host)
    refused = web.sign_in(str(member["username"]), str(member["password"]))
    assert refused.status_code == 403 and "tenant_not_onboarded" in refused.text
    assert "/onboard" in refused.text  # the page says what to do
    assert web.session_id is None and SESSION_COOKIE not in web.session.cookies


def test_a_declined_consent_records_nothing(mt: LocalTenant, host: DevHostProcess) -> None:
    org = new_org(mt, host)
    admin = org["admin"]
    assert isinstance(admin, dict)
    page = onboard(browser(mt, host), str(admin["username"]), str(admin["password"]), accept=False)
    assert page.status_code == 403 and outcome(page) == "declined", page.text[:600]
    assert str(org["tenantId"]) not in registry(host)


def test_a_member_cannot_onboard_the_organisation(mt: LocalTenant, host: DevHostProcess) -> None:
    org = new_org(mt, host)
    member = org["member"]
    assert isinstance(member, dict)
    page = onboard(browser(mt, host), str(member["username"]), str(member["password"]), accept=False)
    assert page.status_code == 403 and outcome(page) in ("not_admin", "declined"), page.text[:600]
    assert str(org["tenantId"]) not in registry(host)
    sp = mt.control("GET", f"/tenants/{org['tenantId']}")["servicePrincipals"]
    assert sp == []


def test_a_partial_grant_is_not_onboarded(mt: LocalTenant, host: DevHostProcess) -> None:
    org = new_org(mt, host)
    tid, admin = str(org["tenantId"]), org["admin"]
    assert isinstance(admin, dict)
    web = browser(mt, host)
    back = web.through_tenant(start_onboarding(web), str(admin["username"]), str(admin["password"]))
    to_consent = web.get(back.headers["Location"])
    answer = web.through_tenant(
        web.get(to_consent.headers["Location"]), str(admin["username"]), str(admin["password"])
    )
    # The administrator's grant narrowed to one application permission before the app checks it.
    sp_path = f"/tenants/{tid}/service-principals/{mt.env['ENTRA_CLIENT_ID']}"
    mt.control("POST", f"{sp_path}/revoke", {"applicationPermissions": True})
    mt.control(
        "PUT",
        f"/tenants/{tid}/service-principals/{mt.env['ENTRA_CLIENT_ID']}",
        {"roles": {GRAPH: ["User.Read.All"]}},
    )
    page = web.get(answer.headers["Location"])
    assert page.status_code == 403 and outcome(page) == "partial", page.text[:600]
    assert "Mail.Read" in page.text and "GroupMember.Read.All" in page.text
    assert tid not in registry(host)


def test_a_consent_answer_naming_another_tenant_is_refused(mt: LocalTenant, host: DevHostProcess) -> None:
    org, other = new_org(mt, host), new_org(mt, host)
    admin = org["admin"]
    assert isinstance(admin, dict)
    web = browser(mt, host)
    back = web.through_tenant(start_onboarding(web), str(admin["username"]), str(admin["password"]))
    to_consent = web.get(back.headers["Location"])
    state = parse_qs(urlsplit(to_consent.headers["Location"]).query)["state"][0]
    forged = web.get(
        "/onboard/callback",
        params={"admin_consent": "True", "tenant": str(other["tenantId"]), "state": state},
    )
    assert forged.status_code == 400 and "onboarding_mismatch" in forged.text
    assert str(org["tenantId"]) not in registry(host) and str(other["tenantId"]) not in registry(host)


def test_the_home_administrator_has_nothing_to_onboard(mt: LocalTenant, host: DevHostProcess) -> None:
    register(mt, host)
    page = onboard(browser(mt, host), mt.env["DEMO_ADMIN_USERNAME"], mt.env["DEMO_ADMIN_PASSWORD"])
    assert page.status_code == 200 and outcome(page) == "home"


def test_onboarding_is_not_served_by_a_single_tenant_deployment(app_host: DevHostProcess) -> None:
    assert requests.get(app_host.url("/onboard"), timeout=10).status_code == 404
    assert requests.get(app_host.url("/tenants"), timeout=10, allow_redirects=False).status_code in (302, 404)


def test_entra_failing_the_proof_records_nothing_and_the_same_answer_can_be_retried(
    mt: LocalTenant, host: DevHostProcess
) -> None:
    """The app-only token that proves the consent fails (Entra 503): a 503 page, nothing recorded; the
    browser still holds the flow, so reloading Entra's answer once Entra is back completes the onboarding."""
    org = new_org(mt, host)
    tid, admin = str(org["tenantId"]), org["admin"]
    assert isinstance(admin, dict)
    web = browser(mt, host)
    back = web.through_tenant(start_onboarding(web), str(admin["username"]), str(admin["password"]))
    to_consent = web.get(back.headers["Location"])
    answer = web.through_tenant(
        web.get(to_consent.headers["Location"]), str(admin["username"]), str(admin["password"])
    )
    rule = mt.control(
        "POST",
        "/faults",
        {
            "service": "login",
            "method": "POST",
            "path": f"^/{tid}/oauth2/v2.0/token$",
            "status": 503,
            "retryAfter": 1,
        },
        expect=201,
    )
    try:
        failed = web.get(answer.headers["Location"])
        assert failed.status_code == 503 and "credential_unavailable" in failed.text
        assert tid not in registry(host)
    finally:
        mt.control("DELETE", f"/faults/{rule['id']}")
    # Entra's Retry-After is honoured (MSAL holds the answer that long): retry as a person would.
    retried: list[requests.Response] = []

    def onboarded() -> bool:
        retried.append(web.get(answer.headers["Location"]))
        assert retried[-1].status_code in (200, 503), retried[-1].text[:300]
        return retried[-1].status_code == 200

    wait_until(onboarded, timeout=20, what="the onboarding once Entra is back")
    assert outcome(retried[-1]) == "onboarded"
    assert registry(host)[tid]["Status"] == "active"
