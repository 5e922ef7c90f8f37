"""Sessions over time, through devhost, the local tenant and Azurite: refresh across expiry with exactly one
refresh (tenant request log), two concurrent refreshes on one session, a CAE revocation event, an MFA
policy (step-up), statelessness across two host processes, and a session-key rotation."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import FreshHosts
from tests.integration.test_signin_kit import (
    SESSION_COOKIE,
    WebBrowser,
    member,
    query_of,
    register_app_host,
    web_browser,
)
from tests.support.tenant import LocalTenant

#: MSAL treats an access token with less than 300 s left as expired: 306 s tokens are "fresh" for 6 s.
SHORT_LIFETIME = 306
FRESH_FOR = SHORT_LIFETIME - 300
#: ... and a 299 s token as expired from the moment it arrives: the app refreshes it on its next use, on
#: the app's own clock, which the tests cannot move (only the tenant's).
STALE_ON_ARRIVAL = 299


@pytest.fixture(scope="module")
def web_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(local_tenant, "signin-refresh")


@pytest.fixture
def web(tenant: LocalTenant, web_host: DevHostProcess) -> Iterator[WebBrowser]:
    with web_browser(tenant, web_host) as browser:
        yield browser


def grants_since(tenant: LocalTenant, seq: int) -> list[str]:
    return [str(r["grant_type"]) for r in tenant.requests_since(seq, "login") if r.get("grant_type")]


def signed_in_with_short_tokens(web: WebBrowser, tenant: LocalTenant) -> float:
    """Sign in with short-lived access tokens; returns when the sign-in's token was issued (Unix time, from
    the tenant's request log: timing the whole sign-in from its start left the wait short when the walk
    through the tenant was slow, and the token still fresh)."""
    tenant.control("PUT", "/lifetimes", {"accessToken": SHORT_LIFETIME})
    seq = tenant.last_seq()
    assert web.sign_in(*member(tenant)).status_code == 303
    [redeemed] = [
        entry
        for entry in tenant.requests_since(seq, "login")
        if entry.get("grant_type") == "authorization_code"
    ]
    return float(redeemed["time"])


def signed_in_with_stale_tokens(web: WebBrowser, tenant: LocalTenant, *, refresh_to: int | None) -> None:
    """Sign in with an access token MSAL already counts as expired, so the session's next call refreshes,
    without waiting out a freshness window; the tenant then issues ``refresh_to``-second access tokens
    (None: its default lifetime, fresh for the app)."""
    tenant.control("PUT", "/lifetimes", {"accessToken": STALE_ON_ARRIVAL})
    assert web.sign_in(*member(tenant)).status_code == 303
    tenant.control("PUT", "/lifetimes", {"accessToken": refresh_to})


def wait_until_stale(issued: float) -> None:
    # Time itself is what is tested here (MSAL's 5-minute expiry margin): nothing to poll.
    time.sleep(max(0.0, issued + FRESH_FOR + 1 - time.time()))


def test_api_me_keeps_working_across_expiry_with_exactly_one_refresh(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    issued = signed_in_with_short_tokens(web, tenant)
    seq = tenant.last_seq()
    assert web.get("/api/me").status_code == 200
    assert grants_since(tenant, seq) == []  # the sign-in's token, from the session's cache
    wait_until_stale(issued)
    seq = tenant.last_seq()
    assert web.get("/api/me").status_code == 200
    assert web.get("/api/me").status_code == 200
    assert grants_since(tenant, seq) == ["refresh_token"]


def test_two_concurrent_refreshes_on_one_session_both_succeed_and_keep_the_newest(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    signed_in_with_stale_tokens(web, tenant, refresh_to=None)
    seq = tenant.last_seq()
    cookie = {SESSION_COOKIE: str(web.session_id)}
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda _: requests.get(web.host.url("/api/me"), cookies=cookie, timeout=30), range(2))
        )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    refreshes = grants_since(tenant, seq)
    assert 1 <= len(refreshes) <= 2 and set(refreshes) == {"refresh_token"}
    # The stored cache kept a fresh token and a working refresh token: the next call asks Entra nothing.
    seq = tenant.last_seq()
    assert requests.get(web.host.url("/api/me"), cookies=cookie, timeout=30).status_code == 200
    assert grants_since(tenant, seq) == []


def test_cae_event_is_answered_with_a_token_carrying_the_claims(web: WebBrowser, tenant: LocalTenant) -> None:
    web.sign_in(*member(tenant))
    me = web.get("/api/me").json()
    tenant.control("POST", f"/users/{me['id']}/cae-event", {})
    seq = tenant.last_seq()
    again = web.get("/api/me")
    assert again.status_code == 200, again.text
    assert grants_since(tenant, seq) == [
        "refresh_token"
    ]  # once, with the claims; Graph accepts the new token


def test_revoked_sessions_send_the_person_through_sign_in_and_back(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    web.sign_in(*member(tenant), next_path="/me")
    me = web.get("/api/me").json()
    tenant.control("POST", f"/users/{me['id']}/cae-event", {"revokeSessions": True})
    api = web.get("/api/me")
    assert api.status_code == 401 and api.json()["error"]["code"] in (
        "interaction_required",
        "session_expired",
    )
    page = web.get("/me")
    assert page.status_code == 302
    authorize = page.headers["Location"]
    assert "claims" in query_of(authorize) and "nbf" in query_of(authorize)["claims"]
    back = web.through_tenant(web.get(authorize), *member(tenant))
    done = web.get(back.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"] == "/me"
    assert web.get("/me").status_code == 200
    assert web.get("/api/me").status_code == 200


def test_mfa_policy_steps_the_person_up_and_back(web: WebBrowser, tenant: LocalTenant) -> None:
    signed_in_with_stale_tokens(web, tenant, refresh_to=STALE_ON_ARRIVAL)
    me = web.get("/api/me").json()  # refreshed (no policy yet) to a token that is stale again at once
    tenant.control("POST", "/entra/conditional-access", {"control": "mfa", "userId": me["id"]})
    api = web.get("/api/me")
    assert api.status_code == 401 and api.json()["error"]["code"] == "interaction_required", api.text
    page = web.get("/users")
    assert page.status_code == 302
    back = web.through_tenant(web.get(page.headers["Location"]), *member(tenant))  # approves the MFA page
    assert web.get(back.headers["Location"]).headers["Location"] == "/users"
    assert web.get("/users").status_code == 200


def two_fresh_hosts(
    tenant: LocalTenant, fresh_hosts: FreshHosts, name: str
) -> tuple[DevHostProcess, DevHostProcess]:
    """Two host processes that started after the tenant's last reset (a reset re-seeds the vault, so a
    longer-lived host would seal with a key version the vault no longer holds)."""
    hosts = (fresh_hosts.start(tenant, f"{name}-a"), fresh_hosts.start(tenant, f"{name}-b"))
    for host in hosts:
        register_app_host(tenant, host)
    return hosts


def test_login_on_one_process_callback_and_api_on_another(
    tenant: LocalTenant, fresh_hosts: FreshHosts
) -> None:
    first, other = two_fresh_hosts(tenant, fresh_hosts, "stateless")
    web = WebBrowser(tenant, first)
    back = web.through_tenant(web.start("/me"), *member(tenant))
    query = back.headers["Location"].split("?", 1)[1]
    done = web.get(other.url(f"/auth/callback?{query}"))  # cookies on 127.0.0.1 are not per port
    assert done.status_code == 303, done.text[:500]
    cookie = {SESSION_COOKIE: str(web.session_id)}
    assert requests.get(other.url("/api/me"), cookies=cookie, timeout=30).status_code == 200
    assert requests.get(web.host.url("/api/me"), cookies=cookie, timeout=30).status_code == 200


def test_session_key_rotation_keeps_sessions_and_seals_new_ones_with_the_new_key(
    tenant: LocalTenant, fresh_hosts: FreshHosts
) -> None:
    web = WebBrowser(tenant, fresh_hosts.start(tenant, "rotation-before"))
    register_app_host(tenant, web.host)
    web.sign_in(*member(tenant))
    old_cookie = {SESSION_COOKIE: str(web.session_id)}
    name = tenant.env["SESSION_KEY_NAME"]
    tenant.control("PUT", f"/vault/secrets/{name}", {"value": base64.b64encode(os.urandom(32)).decode()})
    versions = tenant.control("GET", f"/vault/secrets/{name}/versions")
    assert len(versions["versions"]) >= 2
    rotated = fresh_hosts.start(tenant, "signin-rotated")  # a new process reads the latest version at once
    register_app_host(tenant, rotated)
    assert requests.get(rotated.url("/api/me"), cookies=old_cookie, timeout=30).status_code == 200
    assert requests.get(web.host.url("/api/me"), cookies=old_cookie, timeout=30).status_code == 200
    newcomer = WebBrowser(tenant, rotated)
    assert newcomer.sign_in(*member(tenant)).status_code == 303
    new_cookie = {SESSION_COOKIE: str(newcomer.session_id)}
    assert requests.get(rotated.url("/api/me"), cookies=new_cookie, timeout=30).status_code == 200
    # The older process learns the new version from the record itself.
    assert requests.get(web.host.url("/api/me"), cookies=new_cookie, timeout=30).status_code == 200
