"""Helpers of the mail ingestion tests: an app host with its HTTPS listener (the local tenant calls https
webhooks only, verifying the certificate its CA signed), the subscriptions timer run on demand, the
events queue and the notification table read from Azurite."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess
from tests.support.apphost import start_app_host
from tests.support.ports import free_port
from tests.support.tenant import LocalTenant

_T = TypeVar("_T")


class IngestionHost:
    """An app host with mail ingestion on (``MAIL_INGESTION_MODE``), its own queues and table."""

    def __init__(
        self,
        tenant: LocalTenant,
        azurite: Azurite,
        workdir: Path,
        *,
        mode: str = "webhook",
        overrides: dict[str, str] | None = None,
        dev_clock: bool = False,
        tag: str | None = None,
    ) -> None:
        """``tag``: another host's (``self.tag``), to share its queues and tables (a restart)."""
        tag = tag or uuid.uuid4().hex[:8]
        self.tag = tag
        self.tenant = tenant
        self.azurite = azurite
        self.https_port = free_port()
        self.workdir = workdir
        self.events_queue = f"events-{tag}"
        self.work_queue = f"work-{tag}"
        self.table_name = f"ingest{tag}"
        self.audit_table = f"audit{tag}"
        tls = tenant.state_dir / "tls"
        self.host: DevHostProcess = start_app_host(
            workdir,
            tenant.env,
            azurite.connection_string,
            overrides={
                "MAIL_INGESTION_MODE": mode,
                "MAILBOX_SCOPE": tenant.env["MAIL_READERS_GROUP_ID"],
                "NOTIFICATION_BASE_URL": f"https://localhost:{self.https_port}",
                "MAIL_EVENTS_QUEUE": self.events_queue,
                "MAIL_NOTIFICATION_QUEUE": self.work_queue,
                "NOTIFICATION_TABLE": self.table_name,
                "AUDIT_TABLE": self.audit_table,
                # A failed work message comes back after 1 s instead of host.json's 30 s (the host's
                # documented app-setting override of host.json; devhost reads it as the host does).
                "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
                **(overrides or {}),
            },
            args=(
                "--no-timers",
                "--https-port",
                str(self.https_port),
                "--tls-cert",
                str(tls / "server.pem"),
                "--tls-key",
                str(tls / "server.key"),
            ),
            dev_clock=dev_clock,
        )
        self._events = QueueClient.from_connection_string(azurite.connection_string, self.events_queue)
        self._tables = TableServiceClient.from_connection_string(azurite.connection_string)
        self.seen_events: list[dict[str, Any]] = []

    def host_settings(self, name: str) -> str:
        """One of the host's settings (its ``local.settings.json`` value)."""
        settings = json.loads((self.workdir / "local.settings.json").read_text())
        return str(settings["Values"][name])

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def stop(self) -> None:
        self.host.stop()

    def run_timer(self) -> None:
        """Start the subscriptions timer now (devhost's admin API, as Core Tools'); returns at once."""
        reply = requests.post(self.host.url("/admin/functions/mail_subscriptions_timer"), json={}, timeout=30)
        assert reply.status_code == 202, reply.text

    def events(self) -> list[dict[str, Any]]:
        """Every event published so far (received and deleted from the queue; kept in ``seen_events``)."""
        try:
            for message in self._events.receive_messages(messages_per_page=32, visibility_timeout=30):
                self.seen_events.append(json.loads(base64.b64decode(message.content)))
                self._events.delete_message(message)
        except Exception as error:  # the queue does not exist before the first event
            if "QueueNotFound" not in str(error):
                raise
        return list(self.seen_events)

    def targets(self) -> list[dict[str, Any]]:
        table = self._tables.get_table_client(self.table_name)
        try:
            return [
                dict(e) for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": self.pk()})
            ]
        except Exception as error:
            if "TableNotFound" in str(error):
                return []
            raise

    def pk(self) -> str:
        return f"target-{self.tenant.env['ENTRA_TENANT_ID']}"

    def audit_records(self) -> list[dict[str, Any]]:
        table = self._tables.get_table_client(self.audit_table)
        try:
            return [dict(e) for e in table.list_entities()]
        except Exception as error:
            if "TableNotFound" in str(error):
                return []
            raise


def wait_for(probe: Callable[[], _T | None], what: str, timeout: float = 60.0, every: float = 0.2) -> _T:
    """``probe()``'s first truthy value; fails after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def add_message(tenant: LocalTenant, user: str, subject: str = "Quarterly numbers", **fields: Any) -> str:
    body = {
        "subject": subject,
        "body": "<p>hi</p>",
        "from": {"name": "Ann", "address": "ann@example.com"},
        **fields,
    }
    return str(tenant.control("POST", f"/users/{quote(user)}/messages", body, expect=201)["id"])


def flush(tenant: LocalTenant) -> list[dict[str, Any]]:
    return list(tenant.control("POST", "/graph/notifications/flush")["value"])


def deliver_lifecycle(tenant: LocalTenant, subscription_id: str) -> None:
    """Flush until the tenant has delivered the subscription's lifecycle notifications. A post the app did
    not answer within Graph's 3 s (a loaded machine) or whose pooled connection dropped is retried a minute
    later, as Graph does: the tenant's clock is moved to that retry rather than the test waiting for it."""
    for _ in range(5):
        flush(tenant)
        waiting = [
            p
            for p in tenant.control("GET", "/graph/notifications/queue")["value"]
            if p["subscriptionId"] == subscription_id and p["kind"] == "lifecycle"
        ]
        if not waiting:
            return
        tenant.advance_clock(max(float(p["dueInSeconds"]) for p in waiting) + 0.5)
    raise AssertionError(f"the lifecycle notifications of {subscription_id} were never delivered")


def subscriptions(tenant: LocalTenant) -> list[dict[str, Any]]:
    return list(tenant.control("GET", "/graph/subscriptions")["value"])
