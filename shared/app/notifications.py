"""The mail ingestion's services (:mod:`shared.notifications`), wired from the process's and each tenant's:
the webhook intake, the queue worker, each tenant's subscription keeper, catch-up and directory reaction.

What the capability cannot import it receives here: the audited message read of :mod:`shared.mail`
(:meth:`~shared.mail.reads.MailReads.get_message`, as the app itself, with the audit channel), and the end of
a person's sessions (:meth:`~shared.signin.sessions.SessionStore.end_for_person`).

Rich notifications (``NOTIFICATION_CERTIFICATE_NAME``): the certificate's versions in Key Vault
(:class:`~shared.notifications.certificates.NotificationCertificates`, through the runtime's one
``SecretClient``) and Microsoft's tenant-independent signing keys for the ``validationTokens``
(:class:`~shared.identity.signing_keys.SigningKeys` of ``{authority}/common``, cached per process, each
fetch bounded by :data:`VALIDATION_KEYS_TIMEOUT_SECONDS` because the webhook waits on a first fetch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.core.http import pooled
from shared.core.lazy import BuiltOnce
from shared.core.settings_parts import NotificationSettings
from shared.identity.principal import Principal
from shared.identity.signing_keys import GLOBAL_V1_ISSUER_HOST, V1_ISSUER_HOSTS, SigningKeys
from shared.notifications.catchup import CatchUp
from shared.notifications.certificates import NotificationCertificates
from shared.notifications.client_state import ClientStates
from shared.notifications.directory import DirectoryReaction
from shared.notifications.graph_subscriptions import Encryption
from shared.notifications.ingest import MailIngest
from shared.notifications.intake import Intake
from shared.notifications.keeper import SubscriptionKeeper
from shared.notifications.ledger import Ledger
from shared.notifications.rich import RichContent
from shared.notifications.store import NotificationTable
from shared.notifications.worker import Worker
from shared.storage.clients import queue_client, queue_service
from shared.storage.queues import EnsuredQueue
from shared.storage.tables import EnsuredTable

if TYPE_CHECKING:
    from azure.storage.queue import QueueServiceClient

    from shared.app.services import Runtime

#: Each fetch of Microsoft's signing keys (metadata, then keys) on the webhook's path: Graph wants an answer
#: within 3 s; past this the post's rich items are queued unverified and the worker verifies them.
VALIDATION_KEYS_TIMEOUT_SECONDS = 1.0


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
                encryption=parent.encryption,
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
        self._certificates: NotificationCertificates | None = None
        self._rich: RichContent | None = None
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
        runtime = self.runtime
        return self._once(
            "_queues", lambda: queue_service(runtime.settings().storage, pooled(runtime.transport()))
        )

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

    def certificates(self) -> NotificationCertificates | None:
        """The notification certificate's versions in Key Vault; None without
        ``NOTIFICATION_CERTIFICATE_NAME`` (basic notifications)."""
        name = self.settings().notification_certificate_name
        if name is None:
            return None
        runtime = self.runtime
        vault_url = str(runtime.settings().key_vault_url)
        return self._once(
            "_certificates",
            lambda: NotificationCertificates(runtime.secret_client, name, vault_url, clock=runtime.clock),
        )

    def encryption(self) -> Encryption | None:
        """What rich mail subscriptions are created with now; None for basic ones. Raises what the vault
        read raises (CredentialUnavailable, ConfigurationError)."""
        certificates = self.certificates()
        if certificates is None:
            return None
        current = certificates.current()
        return Encryption(certificate=current.certificate, certificate_id=current.version)

    def rich(self) -> RichContent | None:
        """The token check and decryption of rich notifications; None without a certificate."""
        certificates = self.certificates()
        if certificates is None:
            return None

        def build() -> RichContent:
            runtime = self.runtime
            settings = runtime.settings()
            host = urlsplit(settings.authority_host).hostname or ""
            keys = SigningKeys(
                metadata_url=f"{settings.authority_host}/common/v2.0/.well-known/openid-configuration",
                transport=runtime.transport(),
                timeout=VALIDATION_KEYS_TIMEOUT_SECONDS,
                clock=runtime.clock,
            )
            return RichContent(
                private_key=certificates.private_key,
                signing_key=keys.key,
                client_id=settings.client_id,
                serves=self.serves,
                issuer_host=V1_ISSUER_HOSTS.get(host.lower(), GLOBAL_V1_ISSUER_HOST),
            )

        return self._once("_rich", build)

    def intake(self) -> Intake:
        return self._once(
            "_intake",
            lambda: Intake(
                self.client_states(), serves=self.serves, send=self.work_queue().send, rich=self.rich()
            ),
        )

    def ledger(self) -> Ledger:
        return self._once("_ledger", lambda: Ledger(self.table()))

    def ingest(self) -> MailIngest:
        def read(
            tenant_id: str, mailbox: str, message_id: str, *, channel: str, request_id: str
        ) -> dict[str, Any]:
            runtime = self.runtime
            reads = runtime.tenant(runtime.tenants().get(tenant_id)).mail_reads()
            return reads.get_message(
                self._me(tenant_id), mailbox, message_id, {}, request_id=request_id, channel=channel
            )

        def accept(
            tenant_id: str,
            mailbox: str,
            message_id: str,
            resource: dict[str, Any],
            *,
            channel: str,
            request_id: str,
        ) -> dict[str, Any]:
            runtime = self.runtime
            reads = runtime.tenant(runtime.tenants().get(tenant_id)).mail_reads()
            return reads.accept_pushed(
                self._me(tenant_id), mailbox, message_id, resource, request_id=request_id, channel=channel
            )

        return self._once(
            "_ingest", lambda: MailIngest(self.ledger(), read, self.event_queue().send, accept=accept)
        )

    def _me(self, tenant_id: str) -> Principal:
        """The app itself as the reader recorded in the audit."""
        return Principal(
            kind="application",
            app_id=self.runtime.settings().client_id,
            object_id=None,
            tenant_id=tenant_id,
            roles=frozenset(),
        )

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
                rich=self.rich(),
            ),
        )
