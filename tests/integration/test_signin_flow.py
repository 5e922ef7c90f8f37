"""Sign-in end to end through devhost, the local tenant's pages and Azurite (real msal, real sockets):
the session cookie, /api/me, the delegated users listing, SharePoint, sign-out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import AppHosts
from tests.integration.test_signin_kit import SESSION_COOKIE, WebBrowser, register_app_host
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def web_host(app_hosts: AppHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return app_hosts.start(local_tenant, "signin")


@pytest.fixture
def web(tenant: LocalTenant, web_host: DevHostProcess) -> Iterator[WebBrowser]:
    register_app_host(tenant, web_host)
    browser = WebBrowser(tenant, web_host)
    yield browser
    browser.session.close()


def member(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]


def test_sign_in_lands_on_next_and_api_me_answers(web: WebBrowser, tenant: LocalTenant) -> None:
    done = web.sign_in(*member(tenant), next_path="/users?search=a")
    assert done.status_code == 303, (done.status_code, done.text[:500])
    assert done.headers["Location"] == "/users?search=a"
    cookies = done.headers.get("Set-Cookie", "")
    assert f"{SESSION_COOKIE}=" in cookies and "HttpOnly" in cookies and "SameSite=Lax" in cookies
    assert web.session_id is not None and len(web.session_id) < 100
    me = web.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["userPrincipalName"].lower() == tenant.env["DEMO_USER_USERNAME"].lower()
