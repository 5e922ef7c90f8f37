"""Process-wide services, built lazily and exactly once: settings, HTTP transport, token provider,
Graph client, caller authenticator and the users service.

Blueprints call :func:`current` and ask it for what they need. Nothing is built at import time, so the
Functions host indexes the app quickly and an invalid configuration never prevents ``/api/health`` from
answering; instead, every endpoint that needs configuration answers 500 ``configuration_error`` with the
actionable message, and :func:`report_configuration` logs the problems once at start.

Tests install their own :class:`Runtime` (with fakes) through :func:`install`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from shared.core.errors import ConfigurationError
from shared.core.http import RequestsTransport, Transport
from shared.core.settings import Settings
from shared.graph.client import GraphClient, TokenSource
from shared.identity.bearer import Authenticator, CallerAuthenticator
from shared.identity.signing_keys import SigningKeys
from shared.users.service import UsersService

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.keyvault.secrets import SecretClient
    from azure.storage.blob import BlobServiceClient

    from shared.identity.key_ring import SessionKeyRing
    from shared.mail.audit import AuditStore
    from shared.mail.reads import MailReads
    from shared.report.service import ReportService
    from shared.signin.client import SignInClient
    from shared.signin.flows import FlowStore
    from shared.signin.sessions import SessionStore

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Loggers of libraries that log every HTTP request at INFO (headers included, though redacted).
_CHATTY_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity", "msal", "urllib3")


class Runtime:
    """Holds one instance of each service for the process. Every accessor is thread-safe and lazy.

    Any component can be injected (tests pass fakes); the rest are built from the settings.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        transport: Transport | None = None,
        tokens: TokenSource | None = None,
        authenticator: Authenticator | None = None,
        table_service: TableServiceClient | None = None,
        session_keys: SessionKeyRing | None = None,
    ) -> None:
        self._env = env
        self._lock = threading.RLock()
        self._settings = settings
        self._settings_error: ConfigurationError | None = None
        self._transport = transport
        self._tokens = tokens
        self._authenticator = authenticator
        self._graph: GraphClient | None = None
        self._users: UsersService | None = None
        self._sign_in: SignInClient | None = None
        self._table_service = table_service
        self._secret_client: SecretClient | None = None
        self._session_keys = session_keys
        self._sessions: SessionStore | None = None
        self._auth_flows: FlowStore | None = None
        self._mail_reads: MailReads | None = None
        self._audit: AuditStore | None = None
        self._blob_service: BlobServiceClient | None = None
        self._reports: ReportService | None = None

    def settings(self) -> Settings:
        """The validated settings. Raises ConfigurationError (the same one every time) if invalid."""
        if self._settings is not None:
            return self._settings
        with self._lock:
            if self._settings is None:
                if self._settings_error is not None:
                    raise self._settings_error
                try:
                    self._settings = Settings.from_env(self._env)
                except ConfigurationError as error:
                    self._settings_error = error
                    raise
            return self._settings

    def transport(self) -> Transport:
        return self._once(
            "_transport", lambda: RequestsTransport(default_timeout=self.settings().graph_timeout_seconds)
        )

    def tokens(self) -> TokenSource:
        """The app's :class:`~shared.identity.tokens.TokenProvider` (Key Vault or managed-identity
        credential)."""

        def build() -> TokenSource:
            from shared.identity.credentials import build_credential_source
            from shared.identity.tokens import TokenProvider, msal_app_factory

            settings = self.settings()
            transport = self.transport()
            http_client = transport.msal_http_client() if isinstance(transport, RequestsTransport) else None
            return TokenProvider(
                credential_source=build_credential_source(settings, secret_client=self.secret_client),
                app_factory=msal_app_factory(settings, http_client=http_client),
            )

        return self._once("_tokens", build)

    def graph(self) -> GraphClient:
        return self._once(
            "_graph",
            lambda: GraphClient(settings=self.settings(), tokens=self.tokens(), transport=self.transport()),
        )

    def users(self) -> UsersService:
        return self._once("_users", lambda: UsersService(self.graph()))

    def blob_service(self) -> BlobServiceClient:
        """ONE Blob service client for the app's storage account (``AzureWebJobsStorage``)."""
        from shared.storage.clients import blob_service

        return self._once("_blob_service", lambda: blob_service(self.settings()))

    def reports(self) -> ReportService:
        """The daily user report (:mod:`shared.report`): runner, store, links and run queue."""

        def build() -> ReportService:
            from shared.core.settings import HOST_JSON, function_timeout_seconds
            from shared.graph.client import GraphClient
            from shared.report.mail import ReportMailer
            from shared.report.run import ReportRunner
            from shared.report.service import ReportService
            from shared.report.store import ReportStore
            from shared.storage.clients import queue_client, queue_service

            settings = self.settings()
            store = ReportStore(self.blob_service(), settings.report_container)
            tokens = self.tokens()

            def graph_for(transport: Transport) -> GraphClient:
                return GraphClient(settings=settings, tokens=tokens, transport=transport)

            mailer = ReportMailer(settings, store, self.graph())
            runner = ReportRunner(
                settings=settings,
                store=store,
                transport=self.transport(),
                graph_factory=graph_for,
                function_timeout=function_timeout_seconds(HOST_JSON),
                mail=mailer if mailer.enabled else None,
            )
            queue: Any = lambda: queue_client(queue_service(settings), settings.report_queue)  # noqa: E731
            return ReportService(store=store, runner=runner, queue=queue)

        return self._once("_reports", build)

    def authenticator(self) -> Authenticator:
        """Validates callers' bearer tokens against the tenant's published signing keys."""

        def build() -> Authenticator:
            settings = self.settings()
            keys = SigningKeys(
                metadata_url=f"{settings.authority}/v2.0/.well-known/openid-configuration",
                transport=self.transport(),
                timeout=settings.graph_timeout_seconds,
            )
            return CallerAuthenticator(settings, keys)

        return self._once("_authenticator", build)

    def table_service(self) -> TableServiceClient:
        """ONE Table service client for the ``AzureWebJobsStorage`` account (sessions, flows, audit)."""
        from shared.storage.clients import table_service

        return self._once("_table_service", lambda: table_service(self.settings()))

    def secret_client(self) -> SecretClient:
        """ONE Key Vault client for ``KEY_VAULT_URL`` read with the app's identity (the session key)."""

        def build() -> SecretClient:
            from azure.keyvault.secrets import SecretClient

            from shared.identity.credentials import azure_credential, secret_client_options

            settings = self.settings()
            options = secret_client_options(settings)  # raises ConfigurationError without KEY_VAULT_URL
            return SecretClient(str(settings.key_vault_url), azure_credential(settings), **options)

        return self._once("_secret_client", build)

    def session_keys(self) -> SessionKeyRing:
        """The session key ring (``SESSION_KEY_NAME`` in Key Vault): seals sessions and flows, signs."""

        def build() -> SessionKeyRing:
            from shared.identity.key_ring import build_key_ring

            return build_key_ring(self.settings(), self.secret_client)

        return self._once("_session_keys", build)

    def sessions(self) -> SessionStore:
        """Signed-in people's sessions in ``SESSION_TABLE``."""

        def build() -> SessionStore:
            from shared.signin.sessions import SessionStore
            from shared.storage.tables import EnsuredTable

            settings = self.settings()
            return SessionStore(
                EnsuredTable(self.table_service(), settings.session_table),
                self.session_keys(),
                idle_minutes=settings.session_idle_minutes,
                max_age_hours=settings.session_max_age_hours,
            )

        return self._once("_sessions", build)

    def auth_flows(self) -> FlowStore:
        """Sign-in flows in progress in ``AUTH_FLOW_TABLE``."""

        def build() -> FlowStore:
            from shared.signin.flows import FlowStore
            from shared.storage.tables import EnsuredTable

            table = EnsuredTable(self.table_service(), self.settings().auth_flow_table)
            return FlowStore(table, self.session_keys())

        return self._once("_auth_flows", build)

    def audit(self) -> AuditStore:
        """The audit trail of mailbox reads in ``AUDIT_TABLE``."""

        def build() -> AuditStore:
            from shared.mail.audit import AuditStore

            return AuditStore(self.table_service(), self.settings().audit_table)

        return self._once("_audit", build)

    def mail_reads(self) -> MailReads:
        """Mailbox reads: the ``MAILBOX_SCOPE`` check, the Graph read and the audit record of each."""

        def build() -> MailReads:
            from shared.mail.messages import MailService
            from shared.mail.reads import MailReads
            from shared.mail.scope import MailboxScope

            settings = self.settings()
            scope = MailboxScope(
                self.graph(), scope=settings.mailbox_scope, cache_seconds=settings.mailbox_scope_cache_seconds
            )
            return MailReads(scope, MailService(self.graph()), self.audit())

        return self._once("_mail_reads", build)

    def sign_in(self) -> SignInClient:
        """People's sign-in (MSAL auth-code flow, silent acquisition), with the app's own credential."""

        def build() -> SignInClient:
            from shared.identity.tokens import TokenProvider
            from shared.signin.client import SignInClient

            tokens = self.tokens()
            if not isinstance(tokens, TokenProvider):
                raise ConfigurationError("Sign-in needs the app's TokenProvider (its client credential)")
            transport = self.transport()
            http_client = transport.msal_http_client() if isinstance(transport, RequestsTransport) else None
            return SignInClient(self.settings(), credential=tokens.credential, http_client=http_client)

        return self._once("_sign_in", build)

    def delegated_graph(self, tokens: TokenSource) -> GraphClient:
        """A Graph client acting for a signed-in person with their delegated ``tokens``
        (``principal.delegated()``), sharing the process's HTTP transport. Cheap: build one per request."""
        return GraphClient(settings=self.settings(), tokens=tokens, transport=self.transport())

    def _once(self, attribute: str, build: Callable[[], _T]) -> _T:
        value: _T | None = getattr(self, attribute)
        if value is None:
            with self._lock:
                value = getattr(self, attribute)
                if value is None:
                    value = build()
                    setattr(self, attribute, value)
        return value


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """The process's runtime (built from ``os.environ`` on first use)."""
    global _current  # the one process-wide singleton, guarded by _lock
    runtime = _current
    if runtime is None:
        with _lock:
            if _current is None:
                _current = Runtime(env=os.environ)
            runtime = _current
    return runtime


def install(runtime: Runtime | None) -> Runtime | None:
    """Replace the process runtime (tests); None resets it to be rebuilt from ``os.environ``. Returns the
    previous one so it can be restored."""
    global _current
    with _lock:
        previous, _current = _current, runtime
    return previous


def report_configuration() -> bool:
    """Validate the settings now and log every problem once. Returns True when the configuration is valid.

    Called when ``function_app`` is imported, so misconfiguration shows up in the start-up log rather than
    at the first request. Never raises: the app still starts, and ``/api/health`` still answers.
    """
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        settings = current().settings()
    except ConfigurationError as error:
        for problem in error.problems:
            logger.error("Configuration problem: %s", problem)
        return False
    logger.info(
        "Configuration valid: tenant %s, client %s, credential mode %s, Graph %s",
        settings.tenant_id,
        settings.client_id,
        settings.credential_mode,
        settings.graph_endpoint,
    )
    return True
