"""The services of one tenant (:class:`TenantServices`), built lazily and once per tenant: the app's tokens
for the tenant, its Graph client, the bearer-token validator (its signing keys and issuer), the users and
mail services (mailbox scope, audit trail) and the daily report.

:class:`shared.app.services.Runtime` holds one per tenant of its :class:`~shared.identity.tenancy.
TenantDirectory`; the edge binds the caller's tenant's set to each call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from shared.core.cooldown import Clock
from shared.core.errors import ConfigurationError
from shared.core.host_limits import HOST_JSON, function_timeout_seconds
from shared.core.http import RequestsTransport, Transport, pooled
from shared.core.lazy import BuiltOnce
from shared.core.settings import Settings
from shared.graph.client import GraphClient
from shared.graph.config import GraphConfig
from shared.graph.sharepoint import current_user
from shared.graph.token_source import TokenSource
from shared.identity.bearer import CallerAuthenticator, TokenValidator
from shared.identity.credentials import build_credential_source
from shared.identity.obo_exchange import MsalExchange
from shared.identity.on_behalf_of import OnBehalfOf
from shared.identity.signing_keys import SigningKeys
from shared.identity.tenancy import Tenant
from shared.identity.tokens import TokenProvider, msal_app_factory
from shared.mail.audit import AuditStore
from shared.mail.messages import MailService
from shared.mail.reads import MailReads
from shared.mail.scope import MailboxScope
from shared.report.mail import ReportMailer
from shared.report.run import ReportRunner
from shared.report.service import ReportService
from shared.report.store import ReportStore
from shared.storage.clients import queue_client, queue_service
from shared.users.service import UsersService

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.keyvault.secrets import SecretClient
    from azure.storage.blob import BlobServiceClient


class ProcessServices(Protocol):
    """What a tenant's services share with the whole process (:class:`shared.app.services.Runtime`)."""

    def settings(self) -> Settings: ...

    def transport(self) -> Transport: ...

    def table_service(self) -> TableServiceClient: ...

    def blob_service(self) -> BlobServiceClient: ...

    def secret_client(self) -> SecretClient: ...

    def azure_transport(self) -> Any: ...


def graph_config(settings: Settings) -> GraphConfig:
    """The Graph client's part of the settings."""
    return GraphConfig(
        endpoint=settings.graph_endpoint,
        timeout_seconds=settings.graph_timeout_seconds,
        retry_budget_seconds=settings.graph_retry_budget_seconds,
        max_retries=settings.graph_max_retries,
    )


class _Unset:
    """No value given (``MAILBOX_SCOPE`` applies)."""


_UNSET = _Unset()


def _named(base: str, prefix: str, separator: str) -> str:
    """A storage name of ``base`` for a tenant: the home tenant's (empty prefix) keeps ``base``, an
    onboarded organisation's own carries its prefix, so no query of one can reach another's."""
    return f"{base}{separator}{prefix}" if prefix else base


class TenantServices(BuiltOnce):
    """The services of :attr:`tenant` (module docstring). Every accessor is thread-safe and lazy; any
    component can be injected (tests pass fakes)."""

    def __init__(
        self,
        tenant: Tenant,
        process: ProcessServices,
        *,
        tokens: TokenSource | None = None,
        authenticator: TokenValidator | None = None,
        mailbox_scope: str | _Unset | None = _UNSET,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``mailbox_scope``: the group whose members' mailboxes may be read (default: ``MAILBOX_SCOPE``;
        an onboarded organisation's is its own choice, none until it chooses). ``clock`` and ``sleep``:
        what the app's tokens, Graph retries and report runs wait on."""
        self.tenant = tenant
        self._mailbox_scope = mailbox_scope
        self._clock = clock
        self._sleep = sleep
        self._process = process
        super().__init__()
        self._tokens = tokens
        self._authenticator = authenticator
        self._graph: GraphClient | None = None
        self._users: UsersService | None = None
        self._audit: AuditStore | None = None
        self._mail_reads: MailReads | None = None
        self._reports: ReportService | None = None
        self._on_behalf_of: OnBehalfOf | None = None

    def tokens(self) -> TokenSource:
        """The app's own tokens in this tenant (:class:`~shared.identity.tokens.TokenProvider`: its Key Vault
        or managed-identity credential)."""

        def build() -> TokenSource:
            settings = self._process.settings()
            transport = self._process.transport()
            http_client = transport.msal_http_client() if isinstance(transport, RequestsTransport) else None
            return TokenProvider(
                credential_source=build_credential_source(
                    settings.vault,
                    secret_client=self._process.secret_client,
                    azure_transport=self._process.azure_transport,
                ),
                app_factory=msal_app_factory(
                    settings.entra_app._replace(authority=self.tenant.authority),
                    http_client=http_client,
                ),
                clock=self._clock,
            )

        return self._once("_tokens", build)

    def graph(self) -> GraphClient:
        """Graph with the app's own (app-only) tokens."""
        return self._once(
            "_graph",
            lambda: GraphClient(
                config=graph_config(self._process.settings()),
                tokens=self.tokens(),
                transport=self._process.transport(),
                sleep=self._sleep,
                clock=self._clock,
            ),
        )

    def delegated_graph(self, tokens: TokenSource) -> GraphClient:
        """Graph acting for a person with their delegated ``tokens``, sharing the process's transport.
        Cheap: one per request."""
        return GraphClient(
            config=graph_config(self._process.settings()),
            tokens=tokens,
            transport=self._process.transport(),
            sleep=self._sleep,
            clock=self._clock,
        )

    def users(self) -> UsersService:
        return self._once("_users", lambda: UsersService(self.graph()))

    def authenticator(self) -> TokenValidator:
        """Validates bearer tokens issued by this tenant for this API (its published signing keys)."""

        def build() -> TokenValidator:
            settings = self._process.settings()
            keys = SigningKeys(
                metadata_url=self.tenant.metadata_url,
                transport=self._process.transport(),
                timeout=settings.graph_timeout_seconds,
            )
            return CallerAuthenticator(
                tenant_id=self.tenant.tenant_id, audiences=settings.api_audiences, keys=keys
            )

        return self._once("_authenticator", build)

    def on_behalf_of(self) -> OnBehalfOf:
        """Exchanges of people's tokens for Graph (and SharePoint) tokens at this tenant's authority, with
        the app's own credential, cached per person and scope set (:mod:`shared.identity.on_behalf_of`).

        Raises:
            ConfigurationError: the app's tokens are not a TokenProvider (no client credential to use).
        """

        def build() -> OnBehalfOf:
            settings = self._process.settings()
            tokens = self.tokens()
            if not isinstance(tokens, TokenProvider):
                raise ConfigurationError("On-behalf-of needs the app's TokenProvider (its client credential)")
            transport = self._process.transport()
            http_client = transport.msal_http_client() if isinstance(transport, RequestsTransport) else None
            exchange = MsalExchange(
                client_id=settings.client_id,
                authority=self.tenant.authority,
                microsoft_cloud=settings.authority_is_microsoft_cloud,
                credential=tokens.credential,
                http_client=http_client,
            )
            return OnBehalfOf(exchange)

        return self._once("_on_behalf_of", build)

    def audit(self) -> AuditStore:
        """The audit trail of mailbox reads in ``AUDIT_TABLE`` (an onboarded organisation's in its own table,
        ``AUDIT_TABLE`` + its storage prefix: an auditor of one tenant cannot page into another's)."""
        return self._once(
            "_audit",
            lambda: AuditStore(
                self._process.table_service(),
                _named(self._process.settings().audit_table, self.tenant.storage_prefix, ""),
            ),
        )

    def mail_reads(self) -> MailReads:
        """Mailbox reads: the ``MAILBOX_SCOPE`` check, the Graph read and the audit record of each."""

        def build() -> MailReads:
            settings = self._process.settings()
            chosen = self._mailbox_scope
            scope = MailboxScope(
                self.graph(),
                scope=settings.mailbox_scope if isinstance(chosen, _Unset) else chosen,
                cache_seconds=settings.mailbox_scope_cache_seconds,
            )
            return MailReads(scope, MailService(self.graph()), self.audit())

        return self._once("_mail_reads", build)

    def reports(self) -> ReportService:
        """The daily user report (:mod:`shared.report`): runner, store, links and run queue."""

        def build() -> ReportService:
            settings = self._process.settings()
            prefix = self.tenant.storage_prefix
            store = ReportStore(self._process.blob_service(), _named(settings.report_container, prefix, "-"))
            tokens = self.tokens()
            config = graph_config(settings)

            def graph_for(transport: Transport) -> GraphClient:
                return GraphClient(
                    config=config, tokens=tokens, transport=transport, sleep=self._sleep, clock=self._clock
                )

            mailer = ReportMailer(settings.report, store, self.graph())
            runner = ReportRunner(
                settings=settings.report,
                store=store,
                transport=self._process.transport(),
                graph_factory=graph_for,
                function_timeout=function_timeout_seconds(HOST_JSON),
                mail=mailer if mailer.enabled else None,
                clock=self._clock,
                sleep=self._sleep,
            )
            http = pooled(self._process.transport())
            queue: Any = lambda: queue_client(queue_service(settings.storage, http), settings.report_queue)  # noqa: E731
            # One queue for every tenant: a message names its tenant (the home tenant's names none).
            extra = {"tenant": self.tenant.tenant_id} if prefix else {}
            return ReportService(store=store, runner=runner, queue=queue, message_extra=extra)

        return self._once("_reports", build)

    def sharepoint_profile(self, tokens: TokenSource, scope: str) -> dict[str, Any]:
        """The person's SharePoint user on ``SHAREPOINT_SITE_URL`` with their delegated ``tokens`` for
        ``scope``. Raises as :func:`~shared.graph.sharepoint.current_user`, and ConfigurationError without
        the setting."""
        settings = self._process.settings()
        if not settings.sharepoint_site_url:
            raise ConfigurationError("SHAREPOINT_SITE_URL is not set")
        return current_user(
            site_url=str(settings.sharepoint_site_url),
            scope=scope,
            tokens=tokens,
            transport=self._process.transport(),
            timeout=settings.graph_timeout_seconds,
        )
