"""Mail ingestion end to end: devhost (with its HTTPS listener, the local CA's certificate), the local tenant
as Graph (subscriptions, validation handshake, delivery) and Azurite (work queue, events queue, table).

The subscriptions timer subscribes each member of the scope group; a message added to the demo member's
mailbox comes out as exactly one event on the events queue, read through the audited mail read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from tests.integration.ingestion_kit import IngestionHost, add_message, flush, subscriptions, wait_for
from tests.integration.test_signin_kit import WebBrowser, register_app_host
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def ingestion(
    local_tenant: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestionHost]:
    local_tenant.reset()
    host = IngestionHost(
        local_tenant,
        azurite,
        Path(tmp_path_factory.mktemp("ingestion")),
        overrides={"SESSION_TABLE": f"sess{uuid.uuid4().hex[:8]}"},  # its own: a test empties its index
    )
    try:
        yield host
    finally:
        host.stop()
        local_tenant.reset()


def member(tenant: LocalTenant) -> str:
    return tenant.env["DEMO_USER_USERNAME"]


def work_done(host: IngestionHost) -> bool:
    """The work queue is empty, invisible (running) messages included."""
    queue = QueueClient.from_connection_string(host.azurite.connection_string, host.work_queue)
    try:
        return queue.get_queue_properties().approximate_message_count == 0
    except Exception as error:
        if "QueueNotFound" in str(error):
            return True
        raise


def subscribed(host: IngestionHost) -> list[dict[str, object]]:
    ours = [
        s for s in subscriptions(host.tenant) if str(s.get("notificationUrl", "")).startswith(host.https_url)
    ]
    mailboxes = [s for s in ours if "/messages" in str(s.get("resource"))]
    users = [s for s in ours if s.get("resource") == "users"]
    return ours if mailboxes and users else []


def test_the_timer_subscribes_and_a_new_message_becomes_exactly_one_event(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    ingestion.run_timer()
    ours = wait_for(lambda: subscribed(ingestion), "the timer's subscriptions")
    # One per member of the scope group (nested groups included) and one for users, all validated over
    # https by the tenant (it refuses anything else).
    assert all(s["lifecycleNotificationUrl"] == f"{ingestion.https_url}/api/graph/lifecycle" for s in ours)
    targets = wait_for(
        lambda: [t for t in ingestion.targets() if t.get("LastCatchUp")] and ingestion.targets(),
        "the first catch-up",
    )
    assert {t["RowKey"] for t in targets if t.get("SubscriptionId")} >= {"users"}
    for row in targets:  # the client state is never stored, only its fingerprint
        assert all("clientState" not in str(key).lower() or key == "ClientStateHash" for key in row)
    wait_for(lambda: work_done(ingestion), "the first catch-ups to finish")
    assert ingestion.events() == []  # mail older than the subscription is not news

    message_id = add_message(tenant, member(tenant), subject="Invoice 42")
    flush(tenant)
    [event] = wait_for(lambda: [e for e in ingestion.events() if e["messageId"] == message_id], "the event")
    assert event["type"] == "mail.received"
    assert event["tenantId"] == tenant.env["ENTRA_TENANT_ID"]
    assert event["mailbox"]["userPrincipalName"] == member(tenant).lower()
    assert event["subject"] == "Invoice 42"
    assert event["from"] == {"name": "Ann", "address": "ann@example.com"}
    assert event["hasAttachments"] is False and event["webLink"] and event["receivedDateTime"]
    assert event["channel"] == "notification"
    wait_for(lambda: work_done(ingestion), "the work queue to drain")
    flush(tenant)
    wait_for(lambda: work_done(ingestion), "the work queue to drain again")
    assert [e["messageId"] for e in ingestion.events()].count(message_id) == 1
    reads = [r for r in ingestion.audit_records() if r.get("MessageId") == message_id]
    assert reads and {r["Channel"] for r in reads} == {"notification"}
    assert all(r["Outcome"] == "allowed" for r in reads)


def test_the_handshake_is_echoed_as_text_and_forged_posts_queue_nothing(ingestion: IngestionHost) -> None:
    session = requests.Session()
    session.verify = ingestion.tenant.ca_cert
    url = f"{ingestion.https_url}/api/graph/notifications"
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    reply = session.post(url, params={"validationToken": token}, timeout=10)
    assert reply.status_code == 200 and reply.text == token
    assert reply.headers["content-type"].startswith("text/plain")
    wait_for(lambda: work_done(ingestion), "the work queue to drain")
    before = len(ingestion.events())
    forged = {
        "value": [
            {
                "subscriptionId": "6f3b2b6e-0000-4000-8000-000000000001",
                "tenantId": ingestion.tenant.env["ENTRA_TENANT_ID"],
                "clientState": "abc.def.ghi",
                "changeType": "created",
                "resource": "Users/x/Messages/y",
            }
        ]
    }
    assert session.post(url, json=forged, timeout=10).status_code == 202
    assert work_done(ingestion)  # nothing was queued: the client state does not verify
    for body, status, code in (
        (b"not json", 400, "invalid_notification"),
        (b'{"value": []}', 400, "invalid_notification"),
        (b"x" * (1024 * 1024 + 1), 413, "payload_too_large"),
    ):
        reply = session.post(url, data=body, headers={"content-type": "application/json"}, timeout=10)
        assert reply.status_code == status and reply.json()["error"]["code"] == code
    long_token = session.post(url, params={"validationToken": "x" * 2000}, timeout=10)
    assert long_token.status_code == 400
    assert work_done(ingestion) and len(ingestion.events()) == before


def test_a_user_disabled_in_entra_loses_their_sessions_within_seconds(ingestion: IngestionHost) -> None:
    tenant = ingestion.tenant
    ingestion.run_timer()
    wait_for(lambda: subscribed(ingestion), "the users subscription")
    register_app_host(tenant, ingestion.host)
    person, bystander = WebBrowser(tenant, ingestion.host), WebBrowser(tenant, ingestion.host)
    assert (
        person.sign_in(member(tenant), tenant.env["DEMO_USER_PASSWORD"], next_path="/me").status_code == 303
    )
    admin = (tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"])
    assert bystander.sign_in(*admin, next_path="/me").status_code == 303
    assert person.get("/me").status_code == 200 and bystander.get("/me").status_code == 200
    user = quote(member(tenant))
    try:
        tenant.control("PATCH", f"/users/{user}", {"accountEnabled": False})
        flush(tenant)
        wait_for(
            lambda: person.get("/me").status_code != 200, "the disabled person's session to end", timeout=30
        )
        assert person.get("/me").status_code in (302, 303)  # back to sign-in
        assert bystander.get("/me").status_code == 200  # nobody else is signed out
    finally:
        tenant.control("PATCH", f"/users/{user}", {"accountEnabled": True})


def test_sessions_created_before_the_person_index_existed_end_too(ingestion: IngestionHost) -> None:
    """Sessions without an index row (created by a version before the index) are found by the worker's
    one-time backfill: the disabled person's end, a bystander's stays and is indexed, the marker is kept."""
    tenant = ingestion.tenant
    ingestion.run_timer()
    wait_for(lambda: subscribed(ingestion), "the users subscription")
    register_app_host(tenant, ingestion.host)
    person, bystander = WebBrowser(tenant, ingestion.host), WebBrowser(tenant, ingestion.host)
    assert (
        person.sign_in(member(tenant), tenant.env["DEMO_USER_PASSWORD"], next_path="/me").status_code == 303
    )
    admin = (tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"])
    assert bystander.sign_in(*admin, next_path="/me").status_code == 303
    table = TableClient.from_connection_string(
        ingestion.azurite.connection_string, ingestion.host_settings("SESSION_TABLE")
    )
    index = "PartitionKey ge 'person' and PartitionKey lt 'persoo'"
    for row in list(table.query_entities(index)):  # as before the index: no index row, no marker
        table.delete_entity(row["PartitionKey"], row["RowKey"])
    assert not list(table.query_entities(index))
    assert person.get("/me").status_code == 200 and bystander.get("/me").status_code == 200
    user = quote(member(tenant))
    try:
        tenant.control("PATCH", f"/users/{user}", {"accountEnabled": False})
        flush(tenant)
        wait_for(
            lambda: person.get("/me").status_code != 200, "the disabled person's session to end", timeout=30
        )
        assert person.get("/me").status_code in (302, 303)
        assert bystander.get("/me").status_code == 200
        rows = list(table.query_entities(index))
        assert [r["RowKey"] for r in rows if r["PartitionKey"] == "person-index"] == ["backfilled"]
        assert [r for r in rows if r.get("Kind") == "person-index"]  # the bystander, indexed
    finally:
        tenant.control("PATCH", f"/users/{user}", {"accountEnabled": True})
