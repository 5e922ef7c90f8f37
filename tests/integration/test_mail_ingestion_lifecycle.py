"""Mail ingestion when notifications are not enough: each lifecycle event, an outage with catch-up by
delta, recreation of what Graph removed or let expire, duplicates, and the scope group's membership
changing (nested groups included). Through devhost (HTTPS), the local tenant and Azurite."""

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
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def ingestion(
    local_tenant: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestionHost]:
    local_tenant.reset()
    host = IngestionHost(local_tenant, azurite, Path(tmp_path_factory.mktemp("ingestion-lifecycle")))
    try:
        host.run_timer()
        wait_for(lambda: mailbox_subscription(host), "the member's subscription")
        wait_for(
            lambda: idle(host) and all(t.get("LastCatchUp") for t in mail_targets(host)), "first catch-up"
        )
        yield host
    finally:
        host.stop()
        local_tenant.reset()


def member(tenant: LocalTenant) -> str:
    return tenant.env["DEMO_USER_USERNAME"]


def mail_targets(host: IngestionHost) -> list[dict[str, Any]]:
    return [t for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")]


def idle(host: IngestionHost) -> bool:
    queue = QueueClient.from_connection_string(host.azurite.connection_string, host.work_queue)
    try:
        return queue.get_queue_properties().approximate_message_count == 0
    except Exception as error:
        if "QueueNotFound" in str(error):
            return True
        raise


def mailbox_subscription(host: IngestionHost, upn: str | None = None) -> dict[str, Any] | None:
    """Our live subscription to ``upn``'s inbox (default: the demo member's)."""
    rows = {str(t.get("Upn")): t for t in mail_targets(host)}
    row = rows.get((upn or member(host.tenant)).lower())
    if row is None or not row.get("SubscriptionId"):
        return None
    for sub in subscriptions(host.tenant):
        if sub["id"] == row["SubscriptionId"]:
            return dict(sub)
    return None


def events_for(host: IngestionHost, message_id: str) -> list[dict[str, Any]]:
    return [e for e in host.events() if e["messageId"] == message_id]


def settle(host: IngestionHost) -> None:
    """Deliver what is due and let the worker finish it."""
    flush(host.tenant)
    wait_for(lambda: idle(host), "the work queue to drain")


def lifecycle(host: IngestionHost, subscription_id: str, event: str) -> None:
    queued = host.tenant.control(
        "POST", f"/graph/subscriptions/{subscription_id}/lifecycle", {"event": event}
    )
    assert queued["queued"] is True
    deliver_lifecycle(host.tenant, subscription_id)


def test_duplicates_and_created_then_updated_give_one_event(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    tenant.control("PUT", "/graph/notifications/settings", {"duplicateRate": 1.0})
    try:
        ids = [add_message(tenant, member(tenant), subject=f"dup {n}") for n in range(3)]
        settle(ingestion)
        settle(ingestion)
    finally:
        tenant.control("PUT", "/graph/notifications/settings", {"duplicateRate": 0.0})
    for message_id in ids:
        [event] = wait_for(lambda m=message_id: events_for(ingestion, m), "the event")
        assert event["channel"] == "notification"
    assert all(len(events_for(ingestion, m)) == 1 for m in ids)


def test_an_outage_then_missed_is_caught_up_by_delta_once(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    subscription = mailbox_subscription(ingestion)
    assert subscription is not None
    tenant.control("PUT", "/graph/notifications/outage", {"enabled": True})
    try:
        lost = [add_message(tenant, member(tenant), subject=f"lost {n}") for n in range(4)]
        settle(ingestion)
    finally:
        tenant.control("PUT", "/graph/notifications/outage", {"enabled": False})
    assert not any(events_for(ingestion, m) for m in lost)  # the notifications were lost
    lifecycle(ingestion, str(subscription["id"]), "missed")
    settle(ingestion)
    for message_id in lost:
        [event] = wait_for(lambda m=message_id: events_for(ingestion, m), "the caught-up event")
        assert event["channel"] == "delta"
    row = next(t for t in mail_targets(ingestion) if t.get("SubscriptionId") == subscription["id"])
    assert str(row["LastLifecycle"]).startswith("missed at ")
    # A second catch-up finds them again in delta and publishes nothing more.
    lifecycle(ingestion, str(subscription["id"]), "missed")
    settle(ingestion)
    assert all(len(events_for(ingestion, m)) == 1 for m in lost)


def test_subscription_removed_is_recreated_and_caught_up(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    old = mailbox_subscription(ingestion)
    assert old is not None
    lifecycle(ingestion, str(old["id"]), "subscriptionRemoved")
    settle(ingestion)
    new = wait_for(lambda: mailbox_subscription(ingestion), "the recreated subscription")
    assert new["id"] != old["id"]
    assert old["id"] not in {s["id"] for s in subscriptions(tenant)}
    message_id = add_message(tenant, member(tenant), subject="after removal")
    settle(ingestion)
    [event] = wait_for(lambda: events_for(ingestion, message_id), "the event after recreation")
    assert event["channel"] in ("notification", "delta")


def test_reauthorization_required_is_answered_and_held_mail_arrives(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    subscription = mailbox_subscription(ingestion)
    assert subscription is not None
    since = int(tenant.control("GET", "/graph/notifications/log?since=0")["last"])
    lifecycle(ingestion, str(subscription["id"]), "reauthorizationRequired")
    settle(ingestion)
    log = tenant.control("GET", f"/graph/notifications/log?since={since}")["value"]
    assert any(e["event"] == "reauthorized" for e in log), log
    message_id = add_message(tenant, member(tenant), subject="after reauthorization")
    settle(ingestion)
    [event] = wait_for(lambda: events_for(ingestion, message_id), "the event after reauthorization")
    assert mailbox_subscription(ingestion) is not None and event["messageId"] == message_id


def test_an_expired_subscription_is_recreated_by_the_timer(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    old = mailbox_subscription(ingestion)
    assert old is not None
    tenant.advance_clock(4300 * 60)  # past the 4,200 minutes the app asked for: Graph deletes it
    flush(tenant)
    assert old["id"] not in {s["id"] for s in subscriptions(tenant)}
    lost = add_message(tenant, member(tenant), subject="while expired")
    ingestion.run_timer()
    new = wait_for(lambda: mailbox_subscription(ingestion), "the recreated subscription")
    assert new["id"] != old["id"]
    settle(ingestion)
    [event] = wait_for(lambda: events_for(ingestion, lost), "the caught-up event")
    assert event["channel"] == "delta"


def test_scope_membership_changes_follow_nested_groups(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    newcomer = tenant.control(
        "POST", "/users", {"displayName": "Nina Nested", "mailboxEnabled": True}, expect=201
    )
    upn = str(newcomer["userPrincipalName"]).lower()
    nested = tenant.control(
        "POST", "/groups", {"displayName": "Nested readers", "members": [newcomer["id"]]}, expect=201
    )
    tenant.control("POST", f"/groups/{tenant.env['MAIL_READERS_GROUP_ID']}/members", {"id": nested["id"]})
    ingestion.run_timer()
    wait_for(lambda: mailbox_subscription(ingestion, upn), "the newcomer's subscription")
    settle(ingestion)
    message_id = add_message(tenant, upn, subject="to the newcomer")
    settle(ingestion)
    [event] = wait_for(lambda: events_for(ingestion, message_id), "the newcomer's event")
    assert event["mailbox"]["userPrincipalName"] == upn
    subscription = mailbox_subscription(ingestion, upn)
    assert subscription is not None
    tenant.control("DELETE", f"/users/{newcomer['id']}", expect=204)  # no longer a member of anything
    ingestion.run_timer()
    wait_for(
        lambda: upn not in {str(t.get("Upn")) for t in mail_targets(ingestion)}, "the newcomer's removal"
    )
    assert subscription["id"] not in {s["id"] for s in subscriptions(tenant)}
