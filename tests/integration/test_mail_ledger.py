"""The event ledger against real Table Storage (Azurite): of concurrent claims one wins, a live lease holds
the others off, a lapsed one is taken over, a stale claim cannot record its outcome, and an outcome ends
the message for good. This is what makes events come out once (docs/change-notifications.md)."""

from __future__ import annotations

import concurrent.futures
import datetime
import uuid

import pytest
from azure.data.tables import TableServiceClient

from devhost.azurite import Azurite
from shared.notifications.ledger import LEASE_SECONDS, ClaimHeldError, Ledger, event_id
from shared.notifications.store import NotificationTable
from shared.storage.tables import EnsuredTable

TENANT = "11111111-1111-1111-1111-111111111111"
MAILBOX = "50f0fd0a-750c-4b75-8ccc-9bc2a53f8a28"


class Wall:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 12, 7, 8, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture(scope="module")
def table(azurite: Azurite) -> NotificationTable:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return NotificationTable(EnsuredTable(service, f"ledger{uuid.uuid4().hex[:8]}"))


def test_one_of_many_concurrent_claims_wins_and_an_outcome_is_final(table: NotificationTable) -> None:
    ledger = Ledger(table, now=Wall())
    message = f"AAMk{uuid.uuid4().hex}="

    def claim(_: int) -> str:
        try:
            return "claimed" if ledger.claim(TENANT, MAILBOX, message) is not None else "done"
        except ClaimHeldError:
            return "held"

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert outcomes.count("claimed") == 1 and set(outcomes) <= {"claimed", "held"}
    assert ledger.state(TENANT, MAILBOX, message) == "pending"


def test_a_lapsed_lease_is_taken_over_and_the_late_worker_cannot_record(table: NotificationTable) -> None:
    wall = Wall()
    ledger = Ledger(table, now=wall)
    message = f"AAMk{uuid.uuid4().hex}="
    first = ledger.claim(TENANT, MAILBOX, message)
    assert first is not None
    with pytest.raises(ClaimHeldError):
        ledger.claim(TENANT, MAILBOX, message)
    wall.now += datetime.timedelta(seconds=LEASE_SECONDS + 1)  # the first worker died
    second = ledger.claim(TENANT, MAILBOX, message)
    assert second is not None and second.etag != first.etag
    assert ledger.finish(first, "published") is False  # the late worker's outcome is refused
    assert ledger.finish(second, "published", EventId=event_id(TENANT, MAILBOX, message)) is True
    assert ledger.claim(TENANT, MAILBOX, message) is None  # published: nothing more, ever
    wall.now += datetime.timedelta(days=30)
    assert ledger.claim(TENANT, MAILBOX, message) is None


def test_a_released_claim_is_free_at_once_and_seen_rows_need_an_etag(table: NotificationTable) -> None:
    wall = Wall()
    ledger = Ledger(table, now=wall)
    message = f"AAMk{uuid.uuid4().hex}="
    claim = ledger.claim(TENANT, MAILBOX, message)
    assert claim is not None
    assert ledger.finish(claim, "pending", LeaseUntil=wall.now)  # released after a failed read
    assert ledger.claim(TENANT, MAILBOX, message) is not None
    resource = f"Users/{MAILBOX}/Messages/{message}"
    assert not ledger.seen(TENANT, resource, "created", 'W/"1"')
    ledger.mark_seen(TENANT, resource, "created", 'W/"1"')
    assert ledger.seen(TENANT, resource, "created", 'W/"1"')
    assert not ledger.seen(TENANT, resource, "updated", 'W/"1"')  # another change type is news
    ledger.mark_seen(TENANT, resource, "created", None)
    assert not ledger.seen(TENANT, resource, "created", None)  # without an ETag nothing is a duplicate
    assert event_id(TENANT, MAILBOX.upper(), message) == event_id(TENANT, MAILBOX, message)
