"""The exactly-once guarantee at each crash point of a worker (docs/change-notifications.md), against real
Table Storage and a real Storage queue (Azurite).

A worker is stopped right after one step of :meth:`MailIngest.ingest` (``claimed``, ``read``, ``staged``,
``sent``, ``recorded``) by its ``checkpoint`` raising a ``BaseException``, which no handler of the app
catches: nothing after that step runs, no claim is released, as when the process dies. A second worker
then takes the message over once the lease lapsed. Crashes before the send publish nothing twice; a crash
after staging sends the staged bytes without a second read (and audit); the one window Azure queues leave
open (after the queue accepted the event, before the ledger says so) gives one **byte-identical** copy;
after the record there is nothing more to do."""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from shared.core.errors import StorageUnavailable
from shared.notifications.ingest import MailIngest
from shared.notifications.ledger import LEASE_SECONDS, ClaimHeldError, Ledger, event_id
from shared.notifications.store import NotificationTable, Target
from shared.storage.tables import EnsuredTable

TENANT = "11111111-1111-1111-1111-111111111111"
MAILBOX = "50f0fd0a-750c-4b75-8ccc-9bc2a53f8a28"
STEPS = ["claimed", "read", "staged", "sent", "recorded"]


class Died(BaseException):
    """The worker's process ended here (not an Exception: no handler of the app runs)."""


class Wall:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 12, 7, 8, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


class Mailbox:
    """Graph's side: the message, read through the audited read (each read counted), its subject edited
    after the first read (so a second read would give different content)."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.reads = 0

    def __call__(
        self, tenant_id: str, mailbox: str, message_id: str, *, channel: str, request_id: str
    ) -> dict[str, Any]:
        self.reads += 1
        return {
            "id": message_id,
            "receivedDateTime": "2026-12-07T08:00:00Z",
            "subject": f"Invoice 42 (read {self.reads})",
            "from": {"emailAddress": {"address": "ann@example.com"}},
            "hasAttachments": False,
            "webLink": "https://outlook.office365.com/owa/?ItemID=x",
        }


@pytest.fixture(scope="module")
def table(azurite: Azurite) -> NotificationTable:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return NotificationTable(EnsuredTable(service, f"crash{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def queue(azurite: Azurite) -> Iterator[QueueClient]:
    client = QueueClient.from_connection_string(azurite.connection_string, f"events-{uuid.uuid4().hex[:8]}")
    client.create_queue()
    yield client
    client.delete_queue()


def sender(queue: QueueClient) -> Callable[[bytes], None]:
    def send(body: bytes) -> None:
        queue.send_message(base64.b64encode(body).decode("ascii"))

    return send


def drained(queue: QueueClient) -> list[bytes]:
    return [base64.b64decode(m.content) for m in queue.receive_messages(messages_per_page=32)]


def stop_at(step: str) -> Callable[[str], None]:
    def checkpoint(reached: str) -> None:
        if reached == step:
            raise Died(step)

    return checkpoint


@pytest.mark.parametrize("step", STEPS)
def test_a_worker_dying_after_each_step_leaves_one_event_or_one_identical_copy(
    table: NotificationTable, queue: QueueClient, step: str
) -> None:
    wall = Wall()
    ledger = Ledger(table, now=wall)
    message_id = f"AAMk{uuid.uuid4().hex}="
    mailbox = Mailbox(message_id)
    target = Target(tenant_id=TENANT, key=f"mailbox-{MAILBOX}", mailbox=MAILBOX, upn="member@contoso.com")
    doomed = MailIngest(ledger, mailbox, sender(queue), now=wall, checkpoint=stop_at(step))
    with pytest.raises(Died):
        doomed.ingest(target, message_id, channel="notification", request_id="r1")
    survivor = MailIngest(ledger, mailbox, sender(queue), now=wall)
    if step != "recorded":  # the dead worker's lease holds the message until it lapses
        with pytest.raises(ClaimHeldError):
            survivor.ingest(target, message_id, channel="delta", request_id="r2")
    wall.now += datetime.timedelta(seconds=LEASE_SECONDS + 1)
    outcome = survivor.ingest(target, message_id, channel="delta", request_id="r3")
    assert survivor.ingest(target, message_id, channel="delta", request_id="r4") == "duplicate"
    events = drained(queue)
    identity = event_id(TENANT, MAILBOX, message_id)
    assert ledger.state(TENANT, MAILBOX, message_id) == "published"
    if step == "recorded":
        assert outcome == "duplicate" and len(events) == 1
    elif step == "sent":  # the window: one copy, byte for byte the first
        assert outcome == "published" and len(events) == 2 and events[0] == events[1]
    else:
        assert outcome == "published" and len(events) == 1
    assert all(identity.encode() in event for event in events)
    # A read is repeated only when the worker died before staging what it read (the audit shows both).
    assert mailbox.reads == {"claimed": 1, "read": 2}.get(step, 1)
    if step in ("staged", "sent"):
        assert b"(read 1)" in events[-1]  # the staged bytes, not a second read's
    row = table.client().get_entity(f"msg-{TENANT}-{MAILBOX}", _row(message_id))
    assert not row.get("Event")  # the staged copy (it holds the subject) is cleared once published


def _row(message_id: str) -> str:
    return hashlib.sha256(message_id.encode("utf-8")).hexdigest()


def test_a_failed_send_keeps_the_staged_event_for_the_retry(
    table: NotificationTable, queue: QueueClient
) -> None:
    wall = Wall()
    ledger = Ledger(table, now=wall)
    message_id = f"AAMk{uuid.uuid4().hex}="
    mailbox = Mailbox(message_id)
    target = Target(tenant_id=TENANT, key=f"mailbox-{MAILBOX}", mailbox=MAILBOX, upn="member@contoso.com")

    def refuse(body: bytes) -> None:
        raise StorageUnavailable("the events queue is down")

    with pytest.raises(StorageUnavailable):
        MailIngest(ledger, mailbox, refuse, now=wall).ingest(
            target, message_id, channel="notification", request_id="r1"
        )
    assert ledger.state(TENANT, MAILBOX, message_id) == "sending"
    # released at once: the retry sends the staged bytes, no second read
    assert (
        MailIngest(ledger, mailbox, sender(queue), now=wall).ingest(
            target, message_id, channel="notification", request_id="r2"
        )
        == "published"
    )
    [event] = drained(queue)
    assert mailbox.reads == 1 and b"(read 1)" in event
