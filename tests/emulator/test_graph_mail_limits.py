"""Outlook limits over real sockets (requests, concurrent threads): 4 concurrent requests and 10,000 requests
per 10 minutes, each counted per app *and* mailbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.emulator.graph_kit import bearer, mint
from tests.support.tenant import LocalTenant

SERVICE_MS = 1500  # each mail request holds its slot this long, so a burst overlaps


@pytest.fixture
def slow_mail(fresh: LocalTenant) -> Iterator[LocalTenant]:
    fresh.control("PUT", "/graph/settings", {"mailLatencyMs": SERVICE_MS})
    yield fresh


def _mailboxes(tenant: LocalTenant, token: str) -> tuple[str, str]:
    def uid(upn: str) -> str:
        reply = requests.get(
            f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users/{upn}?$select=id", headers=bearer(token), timeout=30
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["id"])

    return uid(tenant.env["DEMO_ADMIN_USERNAME"]), uid(tenant.env["DEMO_USER_USERNAME"])


def _burst(tenant: LocalTenant, token: str, users: list[str]) -> list[requests.Response]:
    """One GET per entry of ``users``, all released at the same moment."""
    start = threading.Barrier(len(users))

    def call(uid: str) -> requests.Response:
        start.wait(timeout=30)
        return requests.get(
            f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users/{uid}/messages?$top=1&$select=id",
            headers=bearer(token),
            timeout=60,
        )

    with ThreadPoolExecutor(len(users)) as pool:
        return list(pool.map(call, users))


def test_four_concurrent_requests_per_mailbox_not_per_app(slow_mail: LocalTenant) -> None:
    token = mint(slow_mail, roles=("Mail.Read", "User.Read.All"))
    admin, member = _mailboxes(slow_mail, token)
    replies = _burst(slow_mail, token, [admin] * 4 + [member] * 4)
    assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies if r.status_code != 200]


def test_a_fifth_concurrent_request_to_one_mailbox_is_throttled(slow_mail: LocalTenant) -> None:
    token = mint(slow_mail, roles=("Mail.Read", "User.Read.All"))
    admin, _ = _mailboxes(slow_mail, token)
    replies = _burst(slow_mail, token, [admin] * 5)
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 200, 200, 200, 429]
    throttled = next(r for r in replies if r.status_code == 429)
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert throttled.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert int(throttled.headers["Retry-After"]) >= 1


def test_another_app_has_its_own_slots_on_the_same_mailbox(slow_mail: LocalTenant) -> None:
    first = mint(slow_mail, roles=("Mail.Read", "User.Read.All"))
    second = mint(slow_mail, roles=("Mail.Read",), appid=slow_mail.env["CALLER_CLIENT_ID"])
    admin, _ = _mailboxes(slow_mail, first)
    start = threading.Barrier(8)

    def call(token: str) -> int:
        start.wait(timeout=30)
        return requests.get(
            f"{slow_mail.env['GRAPH_ENDPOINT']}/v1.0/users/{admin}/messages?$top=1&$select=id",
            headers=bearer(token),
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, [first] * 4 + [second] * 4))
    assert statuses == [200] * 8


def test_request_budget_per_app_and_mailbox(fresh: LocalTenant) -> None:
    fresh.control("PUT", "/throttle", {"mailRequestsPer10Min": 3})
    token = mint(fresh, roles=("Mail.Read", "User.Read.All"))
    admin, member = _mailboxes(fresh, token)
    base = fresh.env["GRAPH_ENDPOINT"]
    for _ in range(3):
        assert requests.get(f"{base}/v1.0/users/{admin}/mailFolders", headers=bearer(token), timeout=30).ok
    over = requests.get(f"{base}/v1.0/users/{admin}/messages", headers=bearer(token), timeout=30)
    assert over.status_code == 429
    assert over.json()["error"]["message"] == "Application is over its MailboxRequests limit."
    assert 590 <= int(over.headers["Retry-After"]) <= 600
    assert requests.get(f"{base}/v1.0/users/{member}/messages", headers=bearer(token), timeout=30).ok
    other = mint(fresh, roles=("Mail.Read",), appid=fresh.env["CALLER_CLIENT_ID"])
    assert requests.get(f"{base}/v1.0/users/{admin}/messages", headers=bearer(other), timeout=30).ok
