"""Operators of the home tenant on ``/tenants``, through devhost, the local tenant and Azurite: the page
lists each organisation with its status; suspend, resume and offboard each take effect at once for the
organisation's people and callers (403 with the code of the status), drop that organisation's tokens only
(another organisation's warm requests still cost no token request), and are refused without this app's
``Origin`` or the session's CSRF token; a person of another organisation holding the role, or a home person
without it, cannot manage organisations.

The operator's session is stored with the app's own session store (``backdated_session``), holding the app
role ``Tenants.Manage`` as Entra would put it in their ID token.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import call
from tests.integration.tenants_kit import (
    browser,
    csrf_of,
    multi_tenant,
    onboard,
    outcome,
    register,
    registry,
    start_multi_host,
)
from tests.integration.test_signin_kit import SESSION_COOKIE, WebBrowser, backdated_session
from tests.support.apphost import forge_token
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def mt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    with multi_tenant(Path(tmp_path_factory.mktemp("multi-tenant-operators"))) as tenant:
        yield tenant


@pytest.fixture(scope="module")
def host(
    mt: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    started = start_multi_host(
        Path(tmp_path_factory.mktemp("multi-host-operators")),
        mt,
        azurite.connection_string,
        TENANTS_TABLE="operatortenants",
    )
    try:
        yield started
    finally:
        started.stop()


def person(mt: LocalTenant, host: DevHostProcess, tid: str, roles: tuple[str, ...]) -> WebBrowser:
    """A browser holding a session of a person of ``tid`` with ``roles``."""
    from shared.signin.sessions import SessionClaims

    claims = SessionClaims(
        oid=str(uuid.uuid4()),
        tid=tid,
        name="Operator",
        preferred_username="operator@contoso.example",
        roles=roles,
    )
    web = browser(mt, host)
    web.session.cookies.set(SESSION_COOKIE, backdated_session(mt, host, age=dt.timedelta(0), claims=claims))
    return web


def caller_of(mt: LocalTenant, tid: str) -> str:
    oid = str(uuid.uuid4())
    return forge_token(
        mt,
        tid=tid,
        iss=f"{mt.env['ENTRA_AUTHORITY_HOST']}/{tid}/v2.0",
        azp=str(uuid.uuid4()),
        oid=oid,
        sub=oid,
        roles=["Users.Read.All"],
    )


def act(web: WebBrowser, tid: str, action: str, *, csrf: str, origin: str | None) -> requests.Response:
    headers = {"Origin": origin} if origin is not None else {}
    return web.post("/tenants", {"csrf": csrf, "tenant": tid, "action": action}, headers=headers)


def test_operators_suspend_resume_and_offboard_an_organisation(mt: LocalTenant, host: DevHostProcess) -> None:
    env = mt.env
    register(mt, host)
    org = mt.create_organization()
    tid = str(org["tenantId"])
    customer = env["CUSTOMER_TENANT_ID"]
    for admin in (
        org["admin"],
        {"username": env["CUSTOMER_ADMIN_USERNAME"], "password": env["CUSTOMER_ADMIN_PASSWORD"]},
    ):
        assert (
            outcome(onboard(browser(mt, host), str(admin["username"]), str(admin["password"]))) == "onboarded"
        )
    org_token, customer_token = caller_of(mt, tid), caller_of(mt, customer)
    assert call(host, "/api/users", org_token).status_code == 200
    assert call(host, "/api/users", customer_token).status_code == 200  # warm: its token is cached

    operator = person(mt, host, env["ENTRA_TENANT_ID"], ("Tenants.Manage",))
    page = operator.get("/tenants")
    assert page.status_code == 200 and tid in page.text and customer in page.text
    csrf = csrf_of(page)
    assert act(operator, tid, "suspend", csrf=csrf, origin=None).status_code == 403  # no Origin
    assert act(operator, tid, "suspend", csrf=csrf, origin="https://evil.example").status_code == 403
    refused = act(operator, tid, "suspend", csrf="forged", origin=host.base_url)
    assert refused.status_code == 403 and "csrf_token_invalid" in refused.text
    assert registry(host)[tid]["Status"] == "active"

    seq = mt.last_seq()
    done = act(operator, tid, "suspend", csrf=csrf, origin=host.base_url)
    assert done.status_code == 200 and "suspended" in done.text, done.text[:500]
    assert registry(host)[tid]["Status"] == "suspended"
    suspended = call(host, "/api/users", org_token)
    assert suspended.status_code == 403 and suspended.json()["error"]["code"] == "tenant_suspended"
    # Only that organisation's tokens went: the customer's warm request asks Entra for nothing.
    assert call(host, "/api/users", customer_token).status_code == 200
    assert not [e for e in mt.requests_since(seq, "login") if str(e["path"]).endswith("/oauth2/v2.0/token")]

    assert act(operator, tid, "resume", csrf=csrf, origin=host.base_url).status_code == 200
    assert call(host, "/api/users", org_token).status_code == 200
    assert act(operator, tid, "resume", csrf=csrf, origin=host.base_url).status_code == 400  # already active

    assert act(operator, tid, "offboard", csrf=csrf, origin=host.base_url).status_code == 200
    offboarded = call(host, "/api/users", org_token)
    assert offboarded.status_code == 403 and offboarded.json()["error"]["code"] == "tenant_offboarded"
    member = org["member"]
    web = browser(mt, host)
    signed = web.sign_in(str(member["username"]), str(member["password"]))
    assert signed.status_code == 403 and "tenant_offboarded" in signed.text and web.session_id is None

    page = operator.get("/tenants")
    assert 'data-status="offboarded"' in page.text and 'data-status="active"' in page.text


def test_only_home_operators_manage_organisations(mt: LocalTenant, host: DevHostProcess) -> None:
    env = mt.env
    register(mt, host)
    foreign = person(mt, host, env["CUSTOMER_TENANT_ID"], ("Tenants.Manage",))
    assert foreign.get("/tenants").status_code == 403
    plain = person(mt, host, env["ENTRA_TENANT_ID"], ("Reports.Read",))
    assert plain.get("/tenants").status_code == 403
    assert browser(mt, host).get("/tenants").status_code == 302  # nobody: sign in first
