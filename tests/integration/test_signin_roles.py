"""A signed-in person who loses an app role, is disabled or has their sessions revoked in Entra loses the
routes that need the role within one re-confirmation period (:data:`shared.signin.ROLE_CHECK_SECONDS`).
Through devhost, the local tenant and Azurite; nothing patched.

Waiting five minutes is replaced by moving the session's last confirmation five minutes into the past with
the app's own :class:`~shared.signin.SessionStore` (same table and key ring as the host): for that session
the re-confirmation clock has advanced by one period, and no test sleeps.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import FreshHosts, environment
from tests.integration.test_signin_kit import (
    SESSION_COOKIE,
    WebBrowser,
    host_values,
    session_row_exists,
    web_browser,
)
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

PERIOD = datetime.timedelta(minutes=5)
#: A page that needs an app role: admin consent is the operators' (Reports.Run).
ROLE_PAGE = "/auth/admin-consent"


@pytest.fixture
def admin(tenant: LocalTenant, fresh_hosts: FreshHosts) -> Iterator[WebBrowser]:
    """The demo admin (every app role), signed in on a host of the test's own: resetting the tenant
    after a test re-seeds the vault under new version ids, which a host kept warm across tests would
    still seal with, and this test opens the host's sessions with a key ring of its own."""
    with web_browser(tenant, fresh_hosts.start(tenant, "signin-roles")) as browser:
        done = browser.sign_in(tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"])
        assert done.status_code == 303, done.text[:300]
        yield browser


def advance_role_clock(tenant: LocalTenant, host: DevHostProcess, session_id: str) -> None:
    """Make the session's last role confirmation one period older (see the module docstring)."""
    from shared.app.services import Runtime
    from tests.support.apphost import host_environment

    with environment(host_environment(tenant.env)):
        runtime = Runtime(env={**host_values(host), **host_environment(tenant.env)})
        stored = runtime.sessions().update(
            session_id,
            lambda s: s._replace(
                claims=s.claims._replace(roles_checked=s.claims.roles_checked - PERIOD.total_seconds())
            ),
        )
    assert stored is not None


def token_requests(tenant: LocalTenant, since: int) -> list[str]:
    return [str(e["grant_type"]) for e in tenant.requests_since(since, "login") if e.get("grant_type")]


def test_a_removed_role_is_refused_within_one_period_at_one_token_request(
    admin: WebBrowser, tenant: LocalTenant
) -> None:
    assert admin.get(ROLE_PAGE).status_code == 200
    since = tenant.last_seq()
    for _ in range(3):
        assert admin.get(ROLE_PAGE).status_code == 200
    assert token_requests(tenant, since) == []  # roles confirmed at sign-in: nothing to ask yet
    user, app_id = tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["ENTRA_CLIENT_ID"]
    roles = tenant.control("GET", f"/users/{user}/app-roles/{app_id}")["roles"]
    tenant.control(
        "PUT", f"/users/{user}/app-roles/{app_id}", {"roles": [r for r in roles if r != "Reports.Run"]}
    )
    assert admin.get(ROLE_PAGE).status_code == 200  # within the period the sign-in's roles still hold
    assert admin.session_id is not None
    advance_role_clock(tenant, admin.host, admin.session_id)
    since = tenant.last_seq()
    refused = admin.get(ROLE_PAGE)
    assert refused.status_code == 403 and "<code>forbidden</code>" in refused.text, refused.text[:300]
    assert token_requests(tenant, since) == ["refresh_token"]  # one silent refresh per period
    again = admin.get(ROLE_PAGE)
    assert again.status_code == 403 and token_requests(tenant, since) == ["refresh_token"]
    # Still signed in, with the roles Entra confirmed: the navigation no longer offers the page.
    home = admin.get("/")
    assert home.status_code == 200 and 'href="/auth/admin-consent"' not in home.text
    assert 'href="/reports"' in home.text


@pytest.mark.parametrize("change", ["disabled", "sessions-revoked"])
def test_a_refused_refresh_deletes_the_session(admin: WebBrowser, tenant: LocalTenant, change: str) -> None:
    user = tenant.env["DEMO_ADMIN_USERNAME"]
    if change == "disabled":
        tenant.control("PATCH", f"/users/{user}", {"accountEnabled": False})
    else:
        tenant.control("POST", f"/users/{user}/refresh-tokens/revoke")
    session_id = admin.session_id
    assert session_id is not None
    assert admin.get("/api/audit/mail").status_code == 200  # within the period
    advance_role_clock(tenant, admin.host, session_id)
    answer = admin.get("/api/audit/mail")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "session_expired", answer.text
    assert not session_row_exists(tenant, admin.host, session_id)
    page = requests.get(
        admin.host.url(ROLE_PAGE), cookies={SESSION_COOKIE: session_id}, allow_redirects=False, timeout=30
    )
    assert page.status_code == 302 and page.headers["Location"].startswith(tenant.authority)


def test_a_dead_refresh_token_met_by_any_request_deletes_the_session(
    tenant: LocalTenant, fresh_hosts: FreshHosts
) -> None:
    # Access tokens shorter than MSAL's 5-minute margin: every Graph call refreshes, no waiting needed.
    tenant.control("PUT", "/lifetimes", {"accessToken": 120})
    with web_browser(tenant, fresh_hosts.start(tenant, "signin-dead-refresh")) as web:
        assert (
            web.sign_in(tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]).status_code == 303
        )
        assert web.get("/api/me").status_code == 200
        tenant.control("POST", f"/users/{tenant.env['DEMO_USER_USERNAME']}/refresh-tokens/revoke")
        session_id = web.session_id
        assert session_id is not None
        answer = web.get("/api/me")  # no app role needed: Graph, through the person's tokens
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "session_expired", answer.text
        assert not session_row_exists(tenant, web.host, session_id)
