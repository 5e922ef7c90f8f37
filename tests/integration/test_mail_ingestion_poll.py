"""``MAIL_INGESTION_MODE=poll`` (deployments Graph cannot reach): no subscription at all, the same pipeline
from the timer and delta alone; a message becomes exactly one event, audited with channel ``poll``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from tests.integration.ingestion_kit import IngestionHost, add_message, subscriptions, wait_for
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def polling(
    local_tenant: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestionHost]:
    local_tenant.reset()
    host = IngestionHost(local_tenant, azurite, Path(tmp_path_factory.mktemp("ingestion-poll")), mode="poll")
    try:
        yield host
    finally:
        host.stop()
        local_tenant.reset()


def idle(host: IngestionHost) -> bool:
    queue = QueueClient.from_connection_string(host.azurite.connection_string, host.work_queue)
    try:
        return queue.get_queue_properties().approximate_message_count == 0
    except Exception as error:
        if "QueueNotFound" in str(error):
            return True
        raise


def poll(host: IngestionHost) -> None:
    before = {t["RowKey"]: t.get("LastCatchUp") for t in host.targets()}
    host.run_timer()
    wait_for(
        lambda: (
            host.targets()
            and all(
                t.get("LastCatchUp") and t.get("LastCatchUp") != before.get(t["RowKey"])
                for t in host.targets()
            )
        ),
        "a poll of every mailbox",
    )
    wait_for(lambda: idle(host), "the work queue to drain")


def test_poll_mode_publishes_each_new_message_once_from_delta_alone(polling: IngestionHost) -> None:
    tenant = polling.tenant
    poll(polling)
    assert polling.events() == []  # the first round is the baseline: older mail is not news
    ids = [add_message(tenant, tenant.env["DEMO_USER_USERNAME"], subject=f"polled {n}") for n in range(3)]
    poll(polling)
    events = {e["messageId"]: e for e in polling.events()}
    assert set(ids) <= set(events) and all(events[m]["channel"] == "poll" for m in ids)
    poll(polling)  # nothing new: nothing more
    assert sorted(e["messageId"] for e in polling.events()) == sorted(events)
    assert [s for s in subscriptions(tenant) if polling.https_url in str(s.get("notificationUrl"))] == []
    audit = [r for r in polling.audit_records() if r.get("MessageId") in ids]
    assert {r["Channel"] for r in audit} == {"poll"} and len(audit) == len(ids)
    assert all(t.get("Status") in (None, "", "new", "polling") for t in polling.targets())
