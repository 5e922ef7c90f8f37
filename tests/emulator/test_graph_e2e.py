"""Graph end to end: the emulator process, real HTTPS sockets, real clients (requests, msal), tokens from the
tenant's own token endpoint (certificate client credentials, ROPC with a client assertion) or signed with
the tenant's key where a permission set no seeded app holds is needed."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import msal
import pytest
import requests

from tests.emulator.graph_kit import app_certificate, bearer, client_assertion, eventually, mint
from tests.support.tenant import LocalTenant

ADV = {"ConsistencyLevel": "eventual"}


def graph(tenant: LocalTenant) -> str:
    return tenant.env["GRAPH_ENDPOINT"]


def token_endpoint(tenant: LocalTenant) -> str:
    return f"{tenant.authority}/oauth2/v2.0/token"


@pytest.fixture(scope="module")
def app_token(tenant: LocalTenant) -> str:
    """App-only Graph token of Graph Functions through msal with its certificate (roles: User.Read.All,
    Mail.Read, GroupMember.Read.All by admin consent)."""
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        authority=tenant.authority,
        client_credential=app_certificate(tenant),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([f"{graph(tenant)}/.default"])
    if "access_token" not in result:
        pytest.fail(f"token endpoint refused the certificate credential: {result}")
    return str(result["access_token"])


def client_token(tenant: LocalTenant, resource: str) -> str:
    reply = requests.post(
        token_endpoint(tenant),
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.env["CALLER_CLIENT_ID"],
            "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
            "scope": f"{resource}/.default",
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


@pytest.fixture(scope="module")
def user_token(tenant: LocalTenant) -> str:
    """Delegated token of the demo member through ROPC (Graph Functions authenticates with a client
    assertion). msal's ROPC cannot be used: it first calls ``https://{host}/common/userrealm`` on port 443."""
    reply = requests.post(
        token_endpoint(tenant),
        data={
            "grant_type": "password",
            "client_id": tenant.env["ENTRA_CLIENT_ID"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(tenant),
            "username": tenant.env["DEMO_USER_USERNAME"],
            "password": tenant.env["DEMO_USER_PASSWORD"],
            "scope": f"{graph(tenant)}/User.Read openid profile",
        },
        timeout=30,
    )
    # ROPC is part of the tenant: a refusal is a failure of the tenant, never a reason to skip.
    assert reply.status_code == 200, (
        f"the token endpoint refused ROPC: {reply.status_code} {reply.text[:200]}"
    )
    return str(reply.json()["access_token"])


def get(tenant: LocalTenant, path: str, token: str, **headers: str) -> requests.Response:
    return requests.get(f"{graph(tenant)}{path}", headers=bearer(token, **headers), timeout=30)


def walk(tenant: LocalTenant, url: str, token: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while url:
        reply = requests.get(url, headers=bearer(token), timeout=30)
        assert reply.status_code == 200, reply.text
        pages += 1
        items += reply.json()["value"]
        url = reply.json().get("@odata.nextLink", "")
    return items, pages


# ------------------------------------------------------------------------------------ directory
def test_users_paging_over_the_socket(tenant: LocalTenant, app_token: str) -> None:
    items, pages = walk(tenant, f"{graph(tenant)}/v1.0/users?$top=7&$select=id,userPrincipalName", app_token)
    ids = [u["id"] for u in items]
    assert len(ids) == len(set(ids)) == 60 and pages == 9
    count = get(tenant, "/v1.0/users/$count", app_token, **ADV)
    assert count.headers["content-type"].startswith("text/plain") and int(count.text) == 60
    first = get(tenant, "/v1.0/users?$top=1", app_token, **{"client-request-id": "abc-123"})
    assert first.headers["client-request-id"] == "abc-123" and first.headers["request-id"]
    assert first.headers["x-ms-resource-unit"] == "1" and "x-ms-ags-diagnostic" in first.headers
    assert first.json()["@odata.context"] == f"{graph(tenant)}/v1.0/$metadata#users"


def test_search_filter_and_count_rules_over_the_socket(tenant: LocalTenant, app_token: str) -> None:
    reply = get(tenant, '/v1.0/users?$search="displayName:alex"', app_token)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "Request_UnsupportedQuery"
    reply = get(
        tenant, '/v1.0/users?$search="displayName:alex"&$count=true&$select=displayName', app_token, **ADV
    )
    assert reply.json()["@odata.count"] >= 1 and {"displayName": "Alex Admin"} in reply.json()["value"]
    reply = get(tenant, "/v1.0/users?$filter=endswith(mail,'@contoso.onmicrosoft.com')", app_token)
    assert reply.status_code == 400
    reply = get(tenant, "/v1.0/users?$top=1000", app_token)
    assert (
        reply.json()["error"]["message"] == "Invalid page size specified: '1000'. Must be between 1 and 999 "
        "inclusive."
    )


def test_app_only_me_and_permissions(tenant: LocalTenant, app_token: str) -> None:
    reply = get(tenant, "/v1.0/me", app_token)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "/me request is only valid with delegated authentication flow."
    guest = get(tenant, "/v1.0/users?$filter=userType eq 'Guest'&$select=id", app_token).json()["value"][0][
        "id"
    ]
    reply = get(tenant, f"/v1.0/users/{guest}/messages", app_token)
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert get(tenant, "/v1.0/groups?$select=displayName", app_token).status_code == 200
    no_roles = client_token(tenant, graph(tenant))
    denied = get(tenant, "/v1.0/users", no_roles)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    denied = get(tenant, f"/v1.0/users/{tenant.env['DEMO_ADMIN_USERNAME']}/messages", no_roles)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"


def test_delegated_token(tenant: LocalTenant, user_token: str) -> None:
    me = get(tenant, "/v1.0/me?$select=userPrincipalName", user_token)
    assert me.status_code == 200 and me.json()["userPrincipalName"] == tenant.env["DEMO_USER_USERNAME"]
    reply = get(tenant, "/v1.0/users", user_token)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "Authorization_RequestDenied"
    reply = get(tenant, "/v1.0/me/messages", user_token)  # Mail.Read is not consented for delegated use
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "ErrorAccessDenied"


# ----------------------------------------------------------------------------------------- 401s
def _assert_401(reply: requests.Response, message: str) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.json()["error"] == {
        **reply.json()["error"],
        "code": "InvalidAuthenticationToken",
        "message": message,
    }
    assert reply.headers["www-authenticate"].startswith('Bearer realm="", authorization_uri="')


def test_401_matrix_with_real_tokens(tenant: LocalTenant, app_token: str) -> None:
    _assert_401(requests.get(f"{graph(tenant)}/v1.0/users", timeout=30), "Access token is empty.")
    sharepoint = client_token(tenant, tenant.env["SHAREPOINT_SITE_URL"].split("/sites")[0])
    _assert_401(get(tenant, "/v1.0/users", sharepoint), "Access token validation failure. Invalid audience.")
    api = client_token(tenant, f"api://{tenant.env['ENTRA_CLIENT_ID']}")
    _assert_401(get(tenant, "/v1.0/users", api), "Access token validation failure. Invalid audience.")
    head, body, sig = app_token.split(".")
    tampered = f"{head}.{body}.{sig[:-6]}{'AAAAAA' if not sig.endswith('AAAAAA') else 'BBBBBB'}"
    _assert_401(get(tenant, "/v1.0/users", tampered), "Access token validation failure.")
    _assert_401(
        get(tenant, "/v1.0/users", "garbage"), "CompactToken parsing failed with error code: 80049217"
    )


def test_expired_token_through_the_lifetimes_control(fresh: LocalTenant) -> None:
    # A minute, not seconds: iat and exp are whole seconds, so a 1-3 s token can be expired before its first
    # use on a busy machine (seen in CI and in parallel runs); the wait past it is on the tenant's clock.
    fresh.control("PUT", "/lifetimes", {"accessToken": 60, "clockSkew": 0})
    short = client_token(fresh, graph(fresh))
    assert get(fresh, "/v1.0/users", short).status_code == 403  # valid, but no roles
    fresh.advance_clock(61)  # past the lifetime on the tenant's clock (the fixture's reset rewinds it)
    _assert_401(get(fresh, "/v1.0/users", short), "Access token has expired or is not yet valid.")


# ------------------------------------------------------------------------------------- throttling
def test_identity_throttling_retry_after(fresh: LocalTenant, app_token: str) -> None:
    # A stopped clock: the bucket refills with time, and a slow machine refilled it faster than 20
    # requests could drain it (seen in a parallel run). Time moves only when the test says.
    fresh.freeze_clock()
    fresh.control("PUT", "/throttle", {"identityUnitsPer10s": 20})
    statuses = []
    throttled = None
    for _ in range(20):
        reply = get(fresh, "/v1.0/users", app_token)
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            throttled = reply
            break
    assert throttled is not None and statuses.count(200) >= 10
    app_id, tid = fresh.env["ENTRA_CLIENT_ID"], fresh.env["ENTRA_TENANT_ID"]
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert throttled.json()["error"]["message"] == (
        f"Too many requests from Identifier:{app_id} under category:"
        "throttle.aad.ags.appId.medium. Please try again later."
    )
    assert throttled.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{app_id}/{tid}"
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    wait = int(throttled.headers["retry-after"])
    assert 1 <= wait <= 2
    assert get(fresh, "/v1.0/users?$select=id", app_token).status_code == 429  # retried too early
    fresh.advance_clock(wait + 0.05)
    assert get(fresh, "/v1.0/users", app_token).status_code == 200


def test_mail_concurrency_over_the_socket(fresh: LocalTenant) -> None:
    fresh.control("PUT", "/throttle", {"mailConcurrency": 2, "mailConcurrencyScope": "app"})
    fresh.control("PUT", "/graph/settings", {"mailLatencyMs": 400})
    token = mint(fresh, roles=("Mail.Read",))
    url = f"{graph(fresh)}/v1.0/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages?$top=1"
    session_replies: list[requests.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def one() -> None:
        start.wait()
        reply = requests.get(url, headers=bearer(token), timeout=30)
        with lock:
            session_replies.append(reply)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(r.status_code for r in session_replies)
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1 and set(statuses) <= {200, 429}
    for reply in session_replies:
        if reply.status_code == 429:
            assert reply.json()["error"]["code"] == "ApplicationThrottled"
            assert reply.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
            assert reply.headers["retry-after"] == "1"


# ------------------------------------------------------------------------- mail, control, delta
def test_send_mail_and_read_it_back(fresh: LocalTenant) -> None:
    token = mint(fresh, roles=("Mail.Send", "Mail.Read"))
    admin, member = fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_USER_USERNAME"]
    subject = "<script>alert('x')</script> \"quoted\" & ünïcode 📅"
    reply = requests.post(
        f"{graph(fresh)}/v1.0/users/{admin}/sendMail",
        headers=bearer(token),
        timeout=30,
        json={
            "message": {
                "subject": subject,
                "body": {"contentType": "Text", "content": "hi"},
                "toRecipients": [{"emailAddress": {"address": member}}],
            }
        },
    )
    assert reply.status_code == 202 and reply.content == b""

    def delivered() -> dict[str, Any] | None:
        inbox = get(
            fresh, f"/v1.0/users/{member}/mailFolders/Inbox/messages?$top=1&$select=subject,from", token
        )
        top = inbox.json()["value"][0]
        return dict(top) if top["subject"] == subject else None

    message = eventually(delivered)  # delivery is asynchronous, as in Exchange
    assert message["from"]["emailAddress"]["address"] == admin
    text = get(
        fresh,
        f"/v1.0/users/{member}/messages/{message['id']}",
        token,
        Prefer='outlook.body-content-type="text"',
    )
    assert text.headers["preference-applied"] == 'outlook.body-content-type="text"'


def test_control_routes_feed_delta(fresh: LocalTenant, app_token: str) -> None:
    items, _ = walk(fresh, f"{graph(fresh)}/v1.0/users/delta?$select=displayName", app_token)
    assert len(items) == 60
    reply = requests.get(
        f"{graph(fresh)}/v1.0/users/delta?$select=displayName", headers=bearer(app_token), timeout=30
    )
    link = reply.json()["@odata.deltaLink"]
    created = fresh.control(
        "POST", "/users", {"displayName": "Dev Eloper", "jobTitle": "Engineer"}, expect=201
    )
    fresh.control(
        "PATCH", f"/users/{quote(fresh.env['DEMO_USER_USERNAME'])}", {"displayName": "Morgan M."}, expect=200
    )
    fresh.control("DELETE", f"/users/{created['id']}", expect=204)
    msg = fresh.control(
        "POST",
        f"/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages",
        {"subject": "injected", "from": {"name": "Bot", "address": "bot@external.example"}},
        expect=201,
    )
    changes = requests.get(link, headers=bearer(app_token), timeout=30).json()
    values = {c["id"]: c for c in changes["value"]}
    assert values[created["id"]] == {"id": created["id"], "@removed": {"reason": "changed"}}
    assert any(c.get("displayName") == "Morgan M." for c in values.values())
    assert "@odata.deltaLink" in changes
    mail = get(
        fresh,
        f"/v1.0/users/{fresh.env['DEMO_ADMIN_USERNAME']}/messages/{msg['id']}?$select=subject",
        app_token,
    )
    assert mail.json()["subject"] == "injected"


def test_batch_over_the_socket(tenant: LocalTenant, app_token: str) -> None:
    reply = requests.post(
        f"{graph(tenant)}/v1.0/$batch",
        headers=bearer(app_token),
        timeout=30,
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/users/nobody@contoso.onmicrosoft.com"},
                {"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": ["1"]},
                {"id": "3", "method": "GET", "url": "/groups?$select=displayName"},
            ]
        },
    )
    assert reply.status_code == 200
    statuses = {r["id"]: r["status"] for r in reply.json()["responses"]}
    assert statuses == {"1": 404, "2": 424, "3": 200}
    too_many = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]
    reply = requests.post(
        f"{graph(tenant)}/v1.0/$batch", headers=bearer(app_token), json={"requests": too_many}, timeout=30
    )
    assert reply.status_code == 400


def test_request_log_names_the_client_and_never_holds_a_token(tenant: LocalTenant, app_token: str) -> None:
    seq = tenant.last_seq()
    assert get(tenant, "/v1.0/users?$top=1", app_token).status_code == 200
    entries = tenant.requests_since(seq, "graph")
    assert entries and entries[-1]["client_id"] == tenant.env["ENTRA_CLIENT_ID"]
    assert entries[-1]["status"] == 200
    log = requests.get(f"{tenant.env['EMULATOR_URL']}/_emulator/requests?since=0", timeout=30).text
    assert app_token not in log and app_token.split(".")[2] not in log


def test_send_mail_is_delivered_after_the_configured_delay(fresh: LocalTenant) -> None:
    """The official sample's ``"saveToSentItems": "false"`` (a string) is honoured, and the message lands
    only after the delay set through the control API, so a client must poll."""
    assert fresh.control("GET", "/graph/settings")["sendMailDelayMs"] == 300
    fresh.control("PUT", "/graph/settings", {"sendMailDelayMs": 1500})
    token = mint(fresh, roles=("Mail.Send", "Mail.Read"))
    admin, member = fresh.env["DEMO_ADMIN_USERNAME"], fresh.env["DEMO_USER_USERNAME"]
    reply = requests.post(
        f"{graph(fresh)}/v1.0/users/{admin}/sendMail",
        headers=bearer(token),
        timeout=30,
        json={
            "message": {
                "subject": "Meet for lunch?",
                "body": {"contentType": "Text", "content": "The new cafeteria is open."},
                "toRecipients": [{"emailAddress": {"address": member}}],
            },
            "saveToSentItems": "false",
        },
    )
    assert reply.status_code == 202, reply.text

    def inbox_top() -> str:
        page = get(fresh, f"/v1.0/users/{member}/mailFolders/inbox/messages?$top=1&$select=subject", token)
        return str(page.json()["value"][0]["subject"])

    assert inbox_top() != "Meet for lunch?"  # accepted, not delivered yet
    eventually(lambda: inbox_top() == "Meet for lunch?" or None)
    sent = get(fresh, f"/v1.0/users/{admin}/mailFolders/sentitems/messages?$top=5&$select=subject", token)
    assert "Meet for lunch?" not in [m["subject"] for m in sent.json()["value"]]
    bad = fresh.control("PUT", "/graph/settings", {"sendMailDelayMs": -1}, expect=400)
    assert "sendMailDelayMs" in bad["error"]["message"]
