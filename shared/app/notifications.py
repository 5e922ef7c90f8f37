"""The mail ingestion's services (:mod:`shared.notifications`), wired from the process's and each tenant's:
the webhook intake, the queue worker, each tenant's subscription keeper, catch-up and directory reaction.

What the capability cannot import it receives here: the audited message read of :mod:`shared.mail`
(:meth:`~shared.mail.reads.MailReads.get_message`, as the app itself, with the audit channel), and the end of
a person's sessions (:meth:`~shared.signin.sessions.SessionStore.end_for_person`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.core.lazy import BuiltOnce
from shared.core.settings_parts import NotificationSettings
from shared.identity.principal import Principal
from shared.notifications.catchup import CatchUp
from shared.notifications.client_state import ClientStates
from shared.notifications.directory import DirectoryReaction
from shared.notifications.ingest import MailIngest
from shared.notifications.intake import Intake
from shared.notifications.keeper import SubscriptionKeeper
from shared.notifications.ledger import Ledger
from shared.notifications.store import NotificationTable
from shared.notifications.worker import Worker
from shared.storage.clients import queue_client, queue_service
from shared.storage.queues import EnsuredQueue
from shared.storage.tables import EnsuredTable

if TYPE_CHECKING:
    from azure.storage.queue import QueueServiceClient

    from shared.app.services import Runtime


class TenantIngestion(BuiltOnce):
    """One tenant's part: its keeper (subscriptions), catch-up and directory reaction."""

    def __init__(self, tenant_id: str, parent: NotificationServices) -> None:
        self.tenant_id = tenant_id
        self._parent = parent
        super().__init__()
        self._keeper: SubscriptionKeeper | None = None
        self._catch_up: CatchUp | None = None
        self._directory: DirectoryReaction | None = None

    def _graph(self) -> Any:
        runtime = self._parent.runtime
        return runtime.tenant(runtime.tenants().get(self.tenant_id)).graph()

    def keeper(self) -> SubscriptionKeeper:
        def build() -> SubscriptionKeeper:
            parent = self._parent
            settings = parent.settings()
            return SubscriptionKeeper(
                tenant_id=self.tenant_id,
                graph=self._graph(),
                table=parent.table(),
                states=parent.client_states(),
                latest_key_version=lambda: parent.runtime.session_keys().latest_version(),
                send_work=parent.work_queue().send,
                scope=settings.mailbox_scope,
                public_base_url=settings.notification_base_url or settings.public_base_url,
                mode=settings.mail_ingestion_mode,
            )

        return self._once("_keeper", build)

    def catch_up(self) -> CatchUp:
        return self._once(
            "_catch_up", lambda: CatchUp(self._graph(), self._parent.table(), self._parent.ingest())
        )

    def directory(self) -> DirectoryReaction:
        def build() -> DirectoryReaction:
            sessions = self._parent.runtime.sessions
            return DirectoryReaction(
                self._graph(), self.tenant_id, lambda tid, oid: sessions().end_for_person(tid, oid)
            )

        return self._once("_directory", build)


class NotificationServices(BuiltOnce):
    """The process's ingestion services (module docstring). Every accessor is lazy and thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        super().__init__()
        self._table: NotificationTable | None = None
        self._queues: QueueServiceClient | None = None
        self._work: EnsuredQueue | None = None
        self._events: EnsuredQueue | None = None
        self._states: ClientStates | None = None
        self._intake: Intake | None = None
        self._ledger: Ledger | None = None
        self._ingest: MailIngest | None = None
        self._worker: Worker | None = None
        self._tenants: dict[str, TenantIngestion] = {}

    def settings(self) -> NotificationSettings:
        return self.runtime.settings().notifications

    def serves(self, tenant_id: str) -> bool:
        return any(tenant.tenant_id == tenant_id for tenant in self.runtime.tenants())

    def table(self) -> NotificationTable:
        return self._once(
            "_table",
            lambda: NotificationTable(
                EnsuredTable(self.runtime.table_service(), self.settings().notification_table)
            ),
        )

    def _queue_service(self) -> QueueServiceClient:
        return self._once("_queues", lambda: queue_service(self.runtime.settings().storage))

    def work_queue(self) -> EnsuredQueue:
        """``MAIL_NOTIFICATION_QUEUE``: the webhook's and the timer's work for the worker."""
        name = self.settings().mail_notification_queue
        return self._once(
            "_work", lambda: EnsuredQueue(lambda: queue_client(self._queue_service(), name), name)
        )

    def event_queue(self) -> EnsuredQueue:
        """``MAIL_EVENTS_QUEUE``: one event per new message."""
        name = self.settings().mail_events_queue
        return self._once(
            "_events", lambda: EnsuredQueue(lambda: queue_client(self._queue_service(), name), name)
        )

    def client_states(self) -> ClientStates:
        return self._once("_states", lambda: ClientStates(self.runtime.session_keys()))

    def intake(self) -> Intake:
        return self._once(
            "_intake", lambda: Intake(self.client_states(), serves=self.serves, send=self.work_queue().send)
        )

    def ledger(self) -> Ledger:
        return self._once("_ledger", lambda: Ledger(self.table()))

    def ingest(self) -> MailIngest:
        def read(
            tenant_id: str, mailbox: str, message_id: str, *, channel: str, request_id: str
        ) -> dict[str, Any]:
            runtime = self.runtime
            me = Principal(
                kind="application",
                app_id=runtime.settings().client_id,
                object_id=None,
                tenant_id=tenant_id,
                roles=frozenset(),
            )
            reads = runtime.tenant(runtime.tenants().get(tenant_id)).mail_reads()
            return reads.get_message(me, mailbox, message_id, {}, request_id=request_id, channel=channel)

        return self._once("_ingest", lambda: MailIngest(self.ledger(), read, self.event_queue().send))

    def tenant(self, tenant_id: str) -> TenantIngestion:
        with self._lock:
            found = self._tenants.get(tenant_id)
            if found is None:
                found = self._tenants[tenant_id] = TenantIngestion(tenant_id, self)
            return found

    def worker(self) -> Worker:
        return self._once(
            "_worker",
            lambda: Worker(
                table=self.table(),
                ledger=self.ledger(),
                ingest=self.ingest(),
                tools=self.tenant,
                send_work=self.work_queue().send,
                serves=self.serves,
            ),
        )
