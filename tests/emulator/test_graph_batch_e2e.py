"""``$batch`` over real sockets (requests): answers in any (seeded) order, up to 4 items sent to Outlook at
once, each item throttled on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.emulator.graph_kit import bearer, mint
from tests.support.tenant import LocalTenant


@pytest.fixture
def token(fresh: LocalTenant) -> Iterator[str]:
    yield mint(fresh, roles=("Mail.Read", "User.Read.All"))


def _admin_id(tenant: LocalTenant, token: str) -> str:
    reply = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users/{tenant.env['DEMO_ADMIN_USERNAME']}?$select=id",
        headers=bearer(token),
        timeout=30,
    )
    return str(reply.json()["id"])


def _batch(tenant: LocalTenant, token: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reply = requests.post(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/$batch",
        json={"requests": items},
        headers=bearer(token),
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json()["responses"])


def _mail_items(uid: str, n: int) -> list[dict[str, Any]]:
    return [
        {"id": str(i), "method": "GET", "url": f"/users/{uid}/messages?$top=1&$select=id"} for i in range(n)
    ]


def test_responses_are_not_in_request_order(fresh: LocalTenant, token: str) -> None:
    items = [{"id": str(i), "method": "GET", "url": "/users?$top=1&$select=id"} for i in range(12)]
    ids = [r["id"] for r in _batch(fresh, token, items)]
    assert sorted(ids, key=int) == [str(i) for i in range(12)]
    assert ids != [str(i) for i in range(12)]


def test_items_get_their_own_mailbox_concurrency_429(fresh: LocalTenant, token: str) -> None:
    fresh.control("PUT", "/throttle", {"mailConcurrency": 2})
    fresh.control("PUT", "/graph/settings", {"mailLatencyMs": 300})
    answers = _batch(fresh, token, _mail_items(_admin_id(fresh, token), 6))
    statuses = sorted(r["status"] for r in answers)
    assert statuses == [200, 200, 429, 429, 429, 429]
    for throttled in (r for r in answers if r["status"] == 429):
        assert throttled["body"]["error"]["code"] == "ApplicationThrottled"
        assert throttled["body"]["error"]["message"] == "Application is over its MailboxConcurrency limit."
        assert int(throttled["headers"]["Retry-After"]) >= 1


def test_four_items_reach_outlook_at_once(fresh: LocalTenant, token: str) -> None:
    """A batch of 4 mail items fills the mailbox's 4 slots: a direct request meanwhile is throttled."""
    fresh.control("PUT", "/graph/settings", {"mailLatencyMs": 2000})
    uid = _admin_id(fresh, token)
    answers: list[list[dict[str, Any]]] = []
    worker = threading.Thread(target=lambda: answers.append(_batch(fresh, token, _mail_items(uid, 4))))
    worker.start()
    time.sleep(0.7)
    direct = requests.get(
        f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users/{uid}/messages?$top=1", headers=bearer(token), timeout=30
    )
    worker.join(timeout=60)
    assert direct.status_code == 429, direct.text
    assert direct.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert [r["status"] for r in answers[0]] == [200] * 4


def test_a_batch_never_trips_its_own_outlook_limit(fresh: LocalTenant, token: str) -> None:
    fresh.control("PUT", "/graph/settings", {"mailLatencyMs": 200})
    answers = _batch(fresh, token, _mail_items(_admin_id(fresh, token), 9))
    assert [r["status"] for r in answers] == [200] * 9
