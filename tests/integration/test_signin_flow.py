"""Sign-in end to end through devhost, the local tenant's pages and Azurite (real msal, real sockets):
the session cookie, the pages, /api/me, the delegated users listing, SharePoint with incremental consent,
bearer-over-cookie, sign-out."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import FreshHosts
from tests.integration.test_signin_kit import (
    SESSION_COOKIE,
    WebBrowser,
    forms_of,
    member,
    query_of,
    session_row_exists,
    web_browser,
)
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def web_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(local_tenant, "signin")


@pytest.fixture
def web(tenant: LocalTenant, web_host: DevHostProcess) -> Iterator[WebBrowser]:
    with web_browser(tenant, web_host) as browser:
        yield browser


def assert_page(response: requests.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    html = response.text
    assert html.count("<main") == 1
    assert "<script" not in html and "style=" not in html
    return html


def test_sign_in_lands_on_next_and_the_pages_and_api_work(web: WebBrowser, tenant: LocalTenant) -> None:
    assert_page(web.get("/"))  # signed out: the home page offers sign-in
    done = web.sign_in(*member(tenant), next_path="/users?search=a")
    assert done.status_code == 303, (done.status_code, done.text[:500])
    assert done.headers["Location"] == "/users?search=a"
    set_cookies = done.raw.headers.getlist("Set-Cookie")  # two headers: the session, the cleared flow cookie
    assert len(set_cookies) == 2, set_cookies
    assert any(c.startswith("gf_flow=") and "Max-Age=0" in c for c in set_cookies)
    cookie = done.headers.get("Set-Cookie", "")
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie.split(f"{SESSION_COOKIE}=")[1].split(",")[0]  # http: no Secure, no prefix
    assert web.session_id is not None and len(web.session_id) < 100
    assert session_row_exists(tenant, web.host, web.session_id)

    me = web.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["userPrincipalName"].lower() == tenant.env["DEMO_USER_USERNAME"].lower()
    profile = assert_page(web.get("/me"))
    assert me.json()["displayName"] in profile

    users = assert_page(web.get("/users?search=a"))
    assert "<table" in users and 'label for="search"' in users
    first = web.get("/api/users", params={"top": "3"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["value"]) == 3 and body["nextCursor"]
    second = web.get("/api/users", params={"cursor": body["nextCursor"]})
    assert second.status_code == 200, second.text
    assert {u["id"] for u in second.json()["value"]}.isdisjoint({u["id"] for u in body["value"]})


def test_users_page_pages_forward_and_back(web: WebBrowser, tenant: LocalTenant) -> None:
    web.sign_in(*member(tenant), next_path="/users")
    first = assert_page(web.get("/users"))
    next_href = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert next_href, "the first page of a 20+ person directory has a next link"
    second = assert_page(web.get(next_href.group(1).replace("&amp;", "&")))
    previous = re.search(r'<a rel="prev" href="([^"]+)"', second)
    assert previous
    back = assert_page(web.get(previous.group(1).replace("&amp;", "&")))
    assert _names(back) == _names(first)
    assert _names(second) != _names(first)


def _names(html: str) -> list[str]:
    return re.findall(r"<tr><td>([^<]*)</td>", html)


def test_sharepoint_title_from_the_same_sign_in(web: WebBrowser, tenant: LocalTenant) -> None:
    """The SharePoint token comes from the sign-in's refresh token (one token request, no second sign-in:
    the tenant has consented to AllSites.Read for the app), then from the session's cache."""
    web.sign_in(*member(tenant), next_path="/")
    seq = tenant.last_seq()
    profile = web.get("/api/me/sharepoint")
    assert profile.status_code == 200, profile.text
    assert set(profile.json()) == {"Title", "Email", "LoginName"} and profile.json()["Title"]
    html = assert_page(web.get("/sharepoint"))
    assert 'id="sp-title"' in html and profile.json()["Title"] in html
    grants = [r for r in tenant.requests_since(seq, "login") if r.get("grant_type")]
    assert [r["grant_type"] for r in grants] == ["refresh_token"], grants


def test_bearer_token_wins_over_the_cookie(
    web: WebBrowser, tenant: LocalTenant, caller: Caller, norole_caller: Caller
) -> None:
    web.sign_in(*member(tenant))
    as_service = web.get("/api/users", params={"top": "2"}, headers=bearer(caller))
    assert as_service.status_code == 200
    refused = web.get("/api/users", params={"top": "2"}, headers=bearer(norole_caller))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    me = web.get("/api/me", headers=bearer(caller))
    assert me.status_code == 403 and me.json()["error"]["code"] == "caller_kind_not_allowed"
    assert web.get("/api/me").status_code == 200  # the cookie alone still works


def test_sign_out_deletes_the_session_and_ends_the_tenant_session(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    web.sign_in(*member(tenant))
    old = web.session_id
    assert old is not None
    form_page = assert_page(web.get("/auth/logout"))
    fields = forms_of(form_page).forms[-1]["fields"]
    out = web.post("/auth/logout", fields, headers={"Origin": web.host.base_url})
    assert out.status_code == 303, out.text[:300]
    location = out.headers["Location"]
    assert location.startswith(f"{tenant.authority}/oauth2/v2.0/logout?")
    assert query_of(location)["post_logout_redirect_uri"] == web.host.url("/")
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert not session_row_exists(tenant, web.host, old)
    tenant_answer = web.get(location)
    assert tenant_answer.status_code == 302 and tenant_answer.headers["Location"].startswith(
        web.host.url("/")
    )
    replay = requests.get(web.host.url("/api/me"), cookies={SESSION_COOKIE: old}, timeout=10)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "session_expired"
    assert web.get("/api/me").status_code == 401


def test_logout_csrf_is_refused_and_keeps_the_session(web: WebBrowser, tenant: LocalTenant) -> None:
    web.sign_in(*member(tenant))
    fields = forms_of(web.get("/auth/logout").text).forms[-1]["fields"]
    cross = web.post("/auth/logout", fields, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross_origin_request" in cross.text
    no_origin = web.post("/auth/logout", fields)
    assert no_origin.status_code == 403
    no_token = web.post("/auth/logout", {"csrf": "forged"}, headers={"Origin": web.host.base_url})
    assert no_token.status_code == 403 and "csrf_token_invalid" in no_token.text
    assert web.get("/api/me").status_code == 200


def bearer(client: Caller) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token()}"}


def admin(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"]


def test_admin_consent_walk_as_the_demo_admin(web: WebBrowser, tenant: LocalTenant) -> None:
    web.sign_in(*admin(tenant), next_path="/auth/admin-consent")
    page = assert_page(web.get("/auth/admin-consent"))
    fields = next(f for f in forms_of(page).forms if f["action"] == "/auth/admin-consent")["fields"]
    go = web.post("/auth/admin-consent", fields, headers={"Origin": web.host.base_url})
    assert go.status_code == 303, go.text[:500]
    target = go.headers["Location"]
    assert target.startswith(f"{tenant.authority}/v2.0/adminconsent?")
    params = query_of(target)
    assert params["scope"] == f"{tenant.env['GRAPH_ENDPOINT']}/.default"
    assert params["redirect_uri"] == web.host.url("/auth/admin-consent/callback")
    back = web.through_tenant(web.get(target), *admin(tenant))
    answer = query_of(back.headers["Location"])
    assert answer["admin_consent"] == "True" and answer["tenant"] == tenant.env["ENTRA_TENANT_ID"]
    granted = assert_page(web.get(back.headers["Location"]))
    assert "Consent was granted" in granted
    replay = web.get(back.headers["Location"])  # the state is one-time
    assert replay.status_code == 400


def test_admin_consent_is_refused_to_a_member_without_the_role(web: WebBrowser, tenant: LocalTenant) -> None:
    web.sign_in(*member(tenant))
    page = web.get("/auth/admin-consent")
    assert page.status_code == 403 and "<code>forbidden</code>" in page.text and "Reports.Run" in page.text
    post = web.post("/auth/admin-consent", {"csrf": "x"}, headers={"Origin": web.host.base_url})
    assert post.status_code == 403


def test_admin_consent_callback_with_a_forged_tenant_or_state_is_refused(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    web.sign_in(*admin(tenant))
    fields = next(
        f for f in forms_of(web.get("/auth/admin-consent").text).forms if f["action"] == "/auth/admin-consent"
    )["fields"]
    go = web.post("/auth/admin-consent", fields, headers={"Origin": web.host.base_url})
    state = query_of(go.headers["Location"])["state"]
    other_tenant = web.get(
        "/auth/admin-consent/callback",
        params={"admin_consent": "True", "tenant": "00000000-0000-0000-0000-000000000000", "state": state},
    )
    assert other_tenant.status_code == 400 and "<code>sign_in_failed</code>" in other_tenant.text
    forged = web.get("/auth/admin-consent/callback", params={"admin_consent": "True", "state": "forged" * 8})
    assert forged.status_code == 400 and "<code>auth_flow_mismatch</code>" in forged.text


def test_sharepoint_incremental_consent_when_the_tenant_has_not_consented(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    site_origin = "/".join(tenant.env["SHAREPOINT_SITE_URL"].split("/")[:3])
    tenant.control("POST", f"/apps/{tenant.env['ENTRA_CLIENT_ID']}/consent/revoke", {"resource": site_origin})
    web.sign_in(*member(tenant), next_path="/")
    api = web.get("/api/me/sharepoint")
    assert api.status_code == 401 and api.json()["error"]["code"] == "interaction_required", api.text
    page = web.get("/sharepoint")
    assert page.status_code == 302, page.text[:300]
    authorize = page.headers["Location"]
    assert "AllSites.Read" in query_of(authorize)["scope"]
    back = web.through_tenant(web.get(authorize), *member(tenant))  # the consent page for AllSites.Read
    done = web.get(back.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"] == "/sharepoint"
    assert 'id="sp-title"' in assert_page(web.get("/sharepoint"))
    assert web.get("/api/me/sharepoint").status_code == 200
    assert web.get("/api/me").status_code == 200  # Graph from the same refresh token
