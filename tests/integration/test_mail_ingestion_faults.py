"""Mail ingestion's upstream calls under the local tenant's fault API: 5xx past the retry budget, 429 with
Retry-After, latency past the timeout and a dropped connection, for the message read (notification path),
the delta catch-up, subscription creation and reauthorization; several mailboxes' notifications during one
outage; and recovery. What a fault delays comes out once afterwards, never twice; a failure is recorded on
the subscription's row, never a crash of the timer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from tests.integration.ingestion_kit import (
    IngestionHost,
    add_message,
    deliver_lifecycle,
    flush,
    subscriptions,
    wait_for,
)
from tests.support.apphost import app_clock
from tests.support.tenant import LocalTenant

#: The read's and delta's faults: each transient one is absorbed by the Graph client's retries.
TRANSIENT = [
    {"status": 429, "retryAfter": 1, "times": 1},
    {"latencyMs": 2500, "times": 1},
    {"drop": True, "times": 1},
    {"status": 503, "times": 1},
]
READ = r"/messages/AAMk"
DELTA = r"/messages/delta$"


@pytest.fixture(scope="module")
def faulty(
    local_tenant: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestionHost]:
    local_tenant.reset()
    host = IngestionHost(
        local_tenant,
        azurite,
        Path(tmp_path_factory.mktemp("ingestion-faults")),
        overrides={"GRAPH_TIMEOUT_SECONDS": "2", "GRAPH_RETRY_BUDGET_SECONDS": "6", "GRAPH_MAX_RETRIES": "2"},
        dev_clock=True,
    )
    try:
        app_clock(host.host, {"skipSleeps": True})  # a retry's wait moves the app's clock, not the test's
        host.run_timer()
        wait_for(lambda: own(host), "the subscriptions")
        wait_for(lambda: idle(host) and all(t.get("LastCatchUp") for t in mailboxes(host)), "first catch-up")
        yield host
    finally:
        host.stop()
        local_tenant.reset()


@pytest.fixture
def host(faulty: IngestionHost) -> Iterator[IngestionHost]:
    yield faulty
    for rule in faulty.tenant.control("GET", "/faults")["value"]:
        faulty.tenant.control("DELETE", f"/faults/{rule['id']}")
    faulty.tenant.control("PUT", "/graph/notifications/outage", {"enabled": False})


def own(host: IngestionHost) -> list[dict[str, Any]]:
    return [s for s in subscriptions(host.tenant) if host.https_url in str(s.get("notificationUrl"))]


def mailboxes(host: IngestionHost) -> list[dict[str, Any]]:
    return [t for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")]


def idle(host: IngestionHost) -> bool:
    queue = QueueClient.from_connection_string(host.azurite.connection_string, host.work_queue)
    try:
        return queue.get_queue_properties().approximate_message_count == 0
    except Exception as error:
        if "QueueNotFound" in str(error):
            return True
        raise


def member(host: IngestionHost) -> str:
    return host.tenant.env["DEMO_USER_USERNAME"]


def member_subscription(host: IngestionHost) -> str:
    row = next(t for t in mailboxes(host) if t.get("Upn") == member(host).lower())
    return str(row["SubscriptionId"])


def fault(host: IngestionHost, path: str, **rule: Any) -> dict[str, Any]:
    body = {"service": "graph", "path": path, "method": "GET", **rule}
    return dict(host.tenant.control("POST", "/faults", body, expect=201))


def fired(host: IngestionHost, rule_id: int) -> int:
    return sum(int(r["fired"]) for r in host.tenant.control("GET", "/faults")["value"] if r["id"] == rule_id)


def count(host: IngestionHost, message_id: str) -> int:
    return [e["messageId"] for e in host.events()].count(message_id)


def missed(host: IngestionHost) -> None:
    subscription_id = member_subscription(host)
    host.tenant.control("POST", f"/graph/subscriptions/{subscription_id}/lifecycle", {"event": "missed"})
    deliver_lifecycle(host.tenant, subscription_id)


@pytest.mark.parametrize("rule", TRANSIENT, ids=["429", "timeout", "drop", "503-once"])
def test_a_transient_fault_on_the_read_delays_nothing_and_duplicates_nothing(
    host: IngestionHost, rule: dict[str, Any]
) -> None:
    fault(host, READ, **rule)
    message_id = add_message(host.tenant, member(host), subject="through a fault")
    flush(host.tenant)
    wait_for(lambda: count(host, message_id) == 1, "the event")
    wait_for(lambda: idle(host), "the work queue")
    assert count(host, message_id) == 1


@pytest.mark.parametrize("rule", TRANSIENT, ids=["429", "timeout", "drop", "503-once"])
def test_a_transient_fault_on_delta_still_catches_up_once(host: IngestionHost, rule: dict[str, Any]) -> None:
    host.tenant.control("PUT", "/graph/notifications/outage", {"enabled": True})
    lost = add_message(host.tenant, member(host), subject="lost, then caught up")
    flush(host.tenant)
    host.tenant.control("PUT", "/graph/notifications/outage", {"enabled": False})
    fault(host, DELTA, **rule)
    missed(host)
    wait_for(lambda: count(host, lost) == 1, "the caught-up event")
    wait_for(lambda: idle(host), "the work queue")
    assert count(host, lost) == 1


def test_graph_down_for_several_mailboxes_at_once_then_recovery_publishes_each_once(
    host: IngestionHost,
) -> None:
    rule = fault(host, READ, status=500)
    ids = [add_message(host.tenant, member(host), subject=f"during the outage {n}") for n in range(4)]
    flush(host.tenant)  # four notifications (one post or several): their worker runs fail on the 500s
    wait_for(lambda: fired(host, int(rule["id"])) >= 1, "a failed read")
    assert all(count(host, m) == 0 for m in ids)
    host.tenant.control("DELETE", f"/faults/{rule['id']}")
    missed(host)  # recovery: the catch-up (or the worker's own retries) publishes each once
    for message_id in ids:
        wait_for(lambda m=message_id: count(host, m) >= 1, "the recovered event", timeout=90)
    wait_for(lambda: idle(host), "the work queue", timeout=90)
    assert all(count(host, m) == 1 for m in ids)
    failed = [r for r in host.audit_records() if r.get("MessageId") in ids and r["Outcome"] == "failed"]
    assert failed, "the failed reads are audited too"


def test_subscription_creation_failing_is_recorded_and_the_next_run_recovers(host: IngestionHost) -> None:
    old = member_subscription(host)
    host.tenant.control("POST", f"/graph/subscriptions/{old}/lifecycle", {"event": "subscriptionRemoved"})
    rule = host.tenant.control(
        "POST",
        "/faults",
        {"service": "graph", "path": r"/v1\.0/subscriptions$", "method": "POST", "status": 503},
        expect=201,
    )
    deliver_lifecycle(host.tenant, old)
    wait_for(
        lambda: any(
            "upstream" in str(t.get("LastError"))
            for t in mailboxes(host)
            if t.get("Upn") == member(host).lower()
        ),
        "the failure on the row",
    )
    host.tenant.control("DELETE", f"/faults/{rule['id']}")
    host.run_timer()
    wait_for(
        lambda: (
            member_subscription(host) != old and member_subscription(host) in {s["id"] for s in own(host)}
        ),
        "recreation",
    )
    row = next(t for t in mailboxes(host) if t.get("Upn") == member(host).lower())
    assert row["Status"] == "active" and not row.get("LastError")


def test_a_dropped_create_whose_subscription_graph_kept_is_replaced_not_duplicated(
    host: IngestionHost,
) -> None:
    old = member_subscription(host)
    host.tenant.control("POST", f"/graph/subscriptions/{old}/lifecycle", {"event": "subscriptionRemoved"})
    host.tenant.control(
        "POST",
        "/faults",
        {"service": "graph", "path": r"/v1\.0/subscriptions$", "method": "POST", "drop": True, "times": 1},
        expect=201,
    )
    deliver_lifecycle(host.tenant, old)
    wait_for(lambda: idle(host), "the lifecycle work")
    host.run_timer()
    wait_for(
        lambda: (
            member_subscription(host) != old and member_subscription(host) in {s["id"] for s in own(host)}
        ),
        "recreation",
    )
    inbox = [s for s in own(host) if "/messages" in s["resource"] and member_subscription(host) == s["id"]]
    assert len(inbox) == 1
    resources = [s["resource"] for s in own(host)]
    assert len(resources) == len(set(resources))  # one subscription per mailbox, whatever was dropped


def test_delta_down_past_the_retries_during_several_catch_ups_then_recovery_catches_up_once(
    host: IngestionHost,
) -> None:
    host.tenant.control("PUT", "/graph/notifications/outage", {"enabled": True})
    lost = [add_message(host.tenant, member(host), subject=f"lost {n}") for n in range(3)]
    flush(host.tenant)
    host.tenant.control("PUT", "/graph/notifications/outage", {"enabled": False})
    row = next(t for t in mailboxes(host) if t.get("Upn") == member(host).lower())
    rule = fault(host, DELTA, status=500)
    for _ in range(3):  # several catch-ups asked for during the outage: each fails, none moves the link
        missed(host)
    wait_for(lambda: fired(host, int(rule["id"])) >= 3, "failed catch-ups")
    after = next(t for t in mailboxes(host) if t.get("Upn") == member(host).lower())
    assert after.get("DeltaLink") == row.get("DeltaLink")  # a failed round stores nothing
    assert all(count(host, m) == 0 for m in lost)
    host.tenant.control("DELETE", f"/faults/{rule['id']}")
    missed(host)  # recovery; the failed catch-ups come back too: all go through the ledger
    for message_id in lost:
        wait_for(lambda m=message_id: count(host, m) >= 1, "the caught-up event")
    wait_for(lambda: idle(host), "the work queue")
    assert all(count(host, m) == 1 for m in lost)
