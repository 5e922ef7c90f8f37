"""Sign-in security through devhost, the local tenant and Azurite: forged, foreign and replayed callbacks,
replayed codes and PKCE mismatch, open-redirect ``next`` values, tampered and unknown cookies, idle and
absolute expiry. Every refusal is a friendly page with a stable code and creates no session."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator

import pytest
import requests

from shared.signin.sessions import SessionClaims
from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import FreshHosts
from tests.integration.test_signin_kit import (
    FLOW_COOKIE,
    SESSION_COOKIE,
    WebBrowser,
    backdated_session,
    member,
    query_of,
    register_app_host,
)
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def web_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(local_tenant, "signin-security")


@pytest.fixture
def browsers(tenant: LocalTenant, web_host: DevHostProcess) -> Iterator[tuple[WebBrowser, WebBrowser]]:
    register_app_host(tenant, web_host)
    pair = (WebBrowser(tenant, web_host), WebBrowser(tenant, web_host))
    yield pair
    for browser in pair:
        browser.session.close()


def refused(response: requests.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text, response.text[:800]
    assert 'href="/auth/login?next=/"' in response.text  # "try again" starts a new sign-in
    assert SESSION_COOKIE not in response.headers.get("Set-Cookie", "")
    assert "Traceback" not in response.text


def test_forged_state_is_refused(browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant) -> None:
    web, _ = browsers
    web.start("/")
    answer = web.get("/auth/callback", params={"code": "forged", "state": secrets.token_urlsafe(32)})
    # The browser's flow cookie holds another state: nothing server-side says whether this one was ever
    # issued, so a forged state is refused like another browser's.
    refused(answer, "auth_flow_mismatch")
    assert web.get("/api/me").status_code == 401


def test_another_browsers_state_is_refused(
    browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant
) -> None:
    victim, attacker = browsers
    back = attacker.through_tenant(attacker.start("/"), *member(tenant))
    # Login CSRF: the attacker's callback URL (its state and code) delivered to the victim's browser.
    victim.start("/")
    refused(victim.get(back.headers["Location"]), "auth_flow_mismatch")
    assert victim.session_id is None
    # The attacker's own browser can still complete it: the flow was not consumed by the refusal.
    assert attacker.get(back.headers["Location"]).status_code == 303


def test_replayed_callback_is_refused(browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant) -> None:
    web, _ = browsers
    back = web.through_tenant(web.start("/"), *member(tenant))
    assert web.get(back.headers["Location"]).status_code == 303
    first_session = web.session_id
    replay = web.get(back.headers["Location"])
    assert replay.status_code == 400 and (
        "auth_flow_replayed" in replay.text or "auth_flow_mismatch" in replay.text
    )
    assert web.session_id == first_session


def test_replayed_code_and_pkce_mismatch_fail_without_a_session(
    browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant
) -> None:
    web, _ = browsers
    first = web.through_tenant(web.start("/"), *member(tenant))
    first_code = query_of(first.headers["Location"])["code"]
    # PKCE mismatch: flow 1's (unredeemed) code with flow 2's state and verifier.
    second = web.through_tenant(web.start("/"), *member(tenant))
    state2 = query_of(second.headers["Location"])["state"]
    refused(web.get("/auth/callback", params={"code": first_code, "state": state2}), "sign_in_failed")
    # Replayed code: a code already redeemed, under a fresh flow's state.
    third = web.through_tenant(web.start("/"), *member(tenant))
    assert web.get(third.headers["Location"]).status_code == 303
    used_code = query_of(third.headers["Location"])["code"]
    web.session.cookies.clear(domain="127.0.0.1")
    fourth = web.through_tenant(web.start("/"), *member(tenant))
    state4 = query_of(fourth.headers["Location"])["state"]
    refused(web.get("/auth/callback", params={"code": used_code, "state": state4}), "sign_in_failed")
    assert web.session_id is None


def test_entra_error_and_declined_consent_are_pages(
    browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant
) -> None:
    web, _ = browsers
    web.start("/")
    state = _flow_state(web)
    declined = web.get(
        "/auth/callback",
        params={"error": "access_denied", "error_description": "AADSTS65004", "state": state},
    )
    refused(declined, "sign_in_denied")


def _flow_state(web: WebBrowser) -> str:
    response = web.get("/auth/login", params={"next": "/"})
    return query_of(response.headers["Location"])["state"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "/\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "\\\\evil.example",
        "/\tevil",
        "javascript:alert(1)",
    ],
)
def test_open_redirect_next_values_land_home(
    browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant, target: str
) -> None:
    web, _ = browsers
    start = web.get("/auth/login", params={"next": target})
    assert start.status_code == 302
    # Every value walks through the tenant and back: where the person lands is what the app stored.
    back = web.through_tenant(web.get(start.headers["Location"]), *member(tenant))
    done = web.get(back.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"] == "/"


def test_tampered_and_unknown_cookies_are_refused(
    browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant
) -> None:
    web, _ = browsers
    web.sign_in(*member(tenant))
    good = web.session_id
    assert good is not None
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for value in (tampered, secrets.token_urlsafe(32), "x" * 4000, "not a session!"):
        api = requests.get(web.host.url("/api/me"), cookies={SESSION_COOKIE: value}, timeout=10)
        assert api.status_code == 401, api.text
        # An unparsable cookie header counts as no cookie at all: /api/me also takes a person's bearer
        # token, so no credential is "unauthenticated" there (sign_in_required is for cookie-only routes).
        expected = "unauthenticated" if " " in value else "session_expired"
        assert api.json()["error"]["code"] == expected
        page = requests.get(
            web.host.url("/me"), cookies={SESSION_COOKIE: value}, allow_redirects=False, timeout=10
        )
        assert page.status_code == 302 and page.headers["Location"].startswith(tenant.authority)
        assert FLOW_COOKIE in page.headers["Set-Cookie"]
    assert (
        requests.get(web.host.url("/api/me"), cookies={SESSION_COOKIE: good}, timeout=10).status_code == 200
    )


@pytest.mark.parametrize(
    "age", [datetime.timedelta(hours=9), datetime.timedelta(hours=25)], ids=["idle", "absolute"]
)
def test_sessions_past_idle_or_absolute_expiry_are_refused_and_deleted(
    browsers: tuple[WebBrowser, WebBrowser], tenant: LocalTenant, age: datetime.timedelta
) -> None:
    web, _ = browsers
    claims = SessionClaims(oid="00000000-0000-0000-0000-000000000001", tid=tenant.env["ENTRA_TENANT_ID"])
    old = backdated_session(tenant, web.host, age=age, claims=claims)
    answer = requests.get(web.host.url("/api/me"), cookies={SESSION_COOKIE: old}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "session_expired"
    fresh = backdated_session(tenant, web.host, age=datetime.timedelta(minutes=1), claims=claims)
    home = requests.get(web.host.url("/"), cookies={SESSION_COOKIE: fresh}, timeout=10)
    assert home.status_code == 200 and "Sign out" in home.text  # the same kind of record, in date, works
