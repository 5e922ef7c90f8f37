"""The process's services, built lazily and exactly once: settings, the HTTP transport, storage and Key
Vault clients, people's sign-in and sessions, and one :class:`~shared.app.tenants.TenantServices` per
tenant of the :class:`~shared.identity.tenancy.TenantDirectory`.

Only the edge (:mod:`shared.edge`) and the triggers look the process's :class:`Runtime` up
(:func:`current`); everything below receives what it needs. Nothing is built at import time, so the
Functions host indexes the app quickly and an invalid configuration never prevents ``/api/health`` from
answering; instead, every endpoint that needs configuration answers 500 ``configuration_error`` with the
actionable message, and :func:`report_configuration` logs the problems once at start.

Tests install their own :class:`Runtime` (with fakes) through :func:`install`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.app.notifications import NotificationServices
from shared.app.tenants import TenantServices
from shared.core.cooldown import Clock
from shared.core.errors import ConfigurationError
from shared.core.http import RequestsTransport, Transport, pooled
from shared.core.lazy import BuiltOnce
from shared.core.settings import Settings
from shared.core.settings_parts import SignInSettings
from shared.graph.token_source import TokenSource
from shared.identity.app_tokens import AppTokens, SharedCredential
from shared.identity.bearer import TokenValidator
from shared.identity.credentials import azure_credential, build_credential_source, secret_client_options
from shared.identity.key_ring import SessionKeyRing, build_key_ring
from shared.identity.multi_bearer import MultiTenantAuthenticator
from shared.identity.signing_keys import SigningKeys
from shared.identity.tenancy import Tenant, TenantDirectory
from shared.identity.tokens import TokenProvider
from shared.signin.client import SignInClient
from shared.signin.flows import FlowStore
from shared.signin.roles import RoleConfirmation
from shared.signin.sessions import SessionStore
from shared.storage import clients
from shared.storage.tables import EnsuredTable
from shared.tenants import Onboarding, RegistryDirectory, RevocationWatch, TenantAdmin, TenantRegistry

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.keyvault.secrets import SecretClient
    from azure.storage.blob import BlobServiceClient

logger = logging.getLogger(__name__)


#: Loggers of libraries that log every HTTP request at INFO (headers included, though redacted).
_CHATTY_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity", "msal", "urllib3")


class Runtime(BuiltOnce):
    """Holds one instance of each process-wide service. Every accessor is thread-safe and lazy.

    Any component can be injected (tests pass fakes): ``tokens`` and ``authenticator`` are the home
    tenant's; the rest are built from the settings.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        transport: Transport | None = None,
        tokens: TokenSource | None = None,
        authenticator: TokenValidator | None = None,
        table_service: TableServiceClient | None = None,
        session_keys: SessionKeyRing | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``clock`` and ``sleep`` are what the services wait on (token renewal and held failures, retry
        budgets, the report's time budget); tests hand in a clock they move forward."""
        self._env = env
        self._clock = clock
        self._sleep = sleep
        super().__init__()
        self._settings = settings
        self._settings_error: ConfigurationError | None = None
        self._transport = transport
        self._home_tokens = tokens
        self._home_authenticator = authenticator
        self._tenants: TenantDirectory | None = None
        self._tenant_services: dict[str, TenantServices] = {}
        self._sign_in: SignInClient | None = None
        self._table_service = table_service
        self._secret_client: SecretClient | None = None
        self._session_keys = session_keys
        self._sessions: SessionStore | None = None
        self._auth_flows: FlowStore | None = None
        self._role_confirmation: RoleConfirmation | None = None
        self._blob_service: BlobServiceClient | None = None
        self._tenant_registry: TenantRegistry | None = None
        self._app_tokens: AppTokens | None = None
        self._bearer_validator: TokenValidator | None = None
        self._onboarding: Onboarding | None = None
        self._tenant_admin: TenantAdmin | None = None
        self._notifications: NotificationServices | None = None

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

    def tenants(self) -> TenantDirectory:
        """The tenants this deployment serves: ``ENTRA_TENANT_ID``, and with ``ENTRA_TENANCY=multi`` every
        onboarded, active organisation (:class:`~shared.tenants.RegistryDirectory`, the allow-list)."""

        def build() -> TenantDirectory:
            settings = self.settings()
            if settings.is_multi_tenant:
                home = Tenant(tenant_id=settings.tenant_id, authority=settings.authority)
                return RegistryDirectory(home, self.tenant_registry(), authority_host=settings.authority_host)
            return TenantDirectory.single(tenant_id=settings.tenant_id, authority=settings.authority)

        return self._once("_tenants", build)

    def tenant(self, tenant: Tenant | None = None) -> TenantServices:
        """The services of ``tenant`` (default: the home tenant), built on first use."""
        chosen = tenant if tenant is not None else self.tenants().home
        services = self._tenant_services.get(chosen.tenant_id)
        if services is None:
            with self._lock:
                services = self._tenant_services.get(chosen.tenant_id)
                if services is None:
                    services = self._new_tenant_services(chosen)
                    self._tenant_services[chosen.tenant_id] = services
        return services

    def _new_tenant_services(self, tenant: Tenant) -> TenantServices:
        home = tenant.tenant_id == self.tenants().home.tenant_id
        settings = self.settings()
        if not settings.is_multi_tenant:
            return TenantServices(
                tenant,
                self,
                tokens=self._home_tokens if home else None,
                authenticator=self._home_authenticator if home else None,
                clock=self._clock,
                sleep=self._sleep,
            )
        # Multi-tenant: every tenant's tokens come from one credential and one MSAL token cache; the
        # home tenant reads MAILBOX_SCOPE, an organisation the group its administrator chose (none yet:
        # no mailbox, the default deny).
        registry_row = None if home else self.tenant_registry().get(tenant.tenant_id)
        tokens: TokenSource = self.app_tokens().provider(tenant.tenant_id)
        if home and self._home_tokens is not None:
            tokens = self._home_tokens
        elif not home:
            # An organisation that removed the app is marked consent_revoked at its next token request.
            tokens = RevocationWatch(
                tokens, tenant_id=tenant.tenant_id, registry=self.tenant_registry(), forget=self.forget_tenant
            )
        return TenantServices(
            tenant,
            self,
            tokens=tokens,
            authenticator=self._home_authenticator if home else None,
            mailbox_scope=settings.mailbox_scope
            if home
            else (registry_row.mailbox_scope if registry_row else None),
            clock=self._clock,
            sleep=self._sleep,
        )

    def forget_tenant(self, tenant_id: str, *, tokens: bool = True) -> int:
        """Drop ``tenant_id``'s services and (``tokens``) its cached app tokens (its realm only: other
        tenants keep theirs); returns how many cached tokens were removed. Its next request builds them
        again."""
        key = tenant_id.lower()
        with self._lock:
            self._tenant_services.pop(key, None)
        return self.app_tokens().forget(key) if tokens and self.settings().is_multi_tenant else 0

    def tenant_registry(self) -> TenantRegistry:
        """The onboarded organisations in ``TENANTS_TABLE`` (multi-tenant)."""
        return self._once(
            "_tenant_registry",
            lambda: TenantRegistry(EnsuredTable(self.table_service(), self.settings().tenants_table)),
        )

    def onboarding(self) -> Onboarding:
        """Organisations' onboarding by admin consent (multi-tenant)."""

        def build() -> Onboarding:
            settings = self.settings()
            return Onboarding(
                sign_in=self.sign_in,
                flows=self.auth_flows,
                registry=self.tenant_registry(),
                home_tenant_id=settings.tenant_id,
                authority_host=settings.authority_host,
                client_id=settings.client_id,
                graph_endpoint=settings.graph_endpoint,
                tokens_for=self.app_tokens().provider,
                forget=self.forget_tenant,
                rebuild=lambda tenant_id: self.forget_tenant(tenant_id, tokens=False),
            )

        return self._once("_onboarding", build)

    def tenant_admin(self) -> TenantAdmin:
        """Operators' suspension, resumption and offboarding of organisations (multi-tenant)."""
        return self._once(
            "_tenant_admin",
            lambda: TenantAdmin(
                self.tenant_registry(), home_tenant_id=self.settings().tenant_id, forget=self.forget_tenant
            ),
        )

    @property
    def clock(self) -> Clock:
        """What the process's services wait on (monotonic seconds)."""
        return self._clock

    def app_tokens(self) -> AppTokens:
        """The app's token providers of every tenant: one credential, one MSAL token cache."""

        def build() -> AppTokens:
            settings = self.settings()
            transport = self.transport()
            http_client = transport.msal_http_client() if isinstance(transport, RequestsTransport) else None
            source = build_credential_source(
                settings.vault, secret_client=self.secret_client, azure_transport=self.azure_transport
            )
            return AppTokens(
                registration=settings.entra_app,
                authority_host=settings.authority_host,
                credential=SharedCredential(source),
                http_client=http_client,
                clock=self._clock,
            )

        return self._once("_app_tokens", build)

    def bearer_validator(self) -> TokenValidator:
        """Validates callers' bearer tokens: the home tenant's, or (multi-tenant) any organisation's with
        the exact issuer of the token's tenant; the allow-list is the tenant directory's."""
        if not self.settings().is_multi_tenant:
            return self.tenant().authenticator()

        def build() -> TokenValidator:
            settings = self.settings()
            keys = SigningKeys(
                metadata_url=f"{settings.authority_host}/organizations/v2.0/.well-known/openid-configuration",
                transport=self.transport(),
                timeout=settings.graph_timeout_seconds,
            )
            return MultiTenantAuthenticator(audiences=settings.api_audiences, keys=keys)

        return self._once("_bearer_validator", build)

    def blob_service(self) -> BlobServiceClient:
        """ONE Blob service client for the app's storage account (``AzureWebJobsStorage``)."""
        return self._once(
            "_blob_service", lambda: clients.blob_service(self.settings().storage, pooled(self.transport()))
        )

    def table_service(self) -> TableServiceClient:
        """ONE Table service client for the ``AzureWebJobsStorage`` account (sessions, flows, audit)."""
        return self._once(
            "_table_service", lambda: clients.table_service(self.settings().storage, pooled(self.transport()))
        )

    def azure_transport(self) -> Any:
        """An azure-core transport over the process's pooled session; None when the transport is a fake."""
        http = pooled(self.transport())
        return http.azure_transport() if http is not None else None

    def secret_client(self) -> SecretClient:
        """ONE Key Vault client for ``KEY_VAULT_URL`` read with the app's identity (the session key)."""

        def build() -> SecretClient:
            from azure.keyvault.secrets import SecretClient  # heavy (azure-core): imported on first use  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

            settings = self.settings()
            options = secret_client_options(settings.vault)  # raises ConfigurationError without KEY_VAULT_URL
            shared = self.azure_transport()  # the vault and its identity send through the pooled session
            if shared is not None:
                options["transport"] = shared
            return SecretClient(
                str(settings.key_vault_url), azure_credential(settings.vault, transport=shared), **options
            )

        return self._once("_secret_client", build)

    def session_keys(self) -> SessionKeyRing:
        """The session key ring (``SESSION_KEY_NAME`` in Key Vault): seals sessions and flows, signs."""
        return self._once(
            "_session_keys",
            lambda: build_key_ring(self.settings().vault, self.secret_client, clock=self._clock),
        )

    def sessions(self) -> SessionStore:
        """Signed-in people's sessions in ``SESSION_TABLE``."""

        def build() -> SessionStore:
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
            table = EnsuredTable(self.table_service(), self.settings().auth_flow_table)
            return FlowStore(table, self.session_keys())

        return self._once("_auth_flows", build)

    def sign_in(self) -> SignInClient:
        """People's sign-in (MSAL auth-code flow, silent acquisition), with the app's own credential."""

        def build() -> SignInClient:
            tokens = self.tenant().tokens()
            if not isinstance(tokens, TokenProvider):
                raise ConfigurationError("Sign-in needs the app's TokenProvider (its client credential)")
            transport = self.transport()
            http_client = transport.msal_http_client() if isinstance(transport, RequestsTransport) else None
            return SignInClient(
                self.settings().sign_in, credential=tokens.credential, http_client=http_client
            )

        return self._once("_sign_in", build)

    def role_confirmation(self) -> RoleConfirmation:
        """Re-confirms people's app roles with Entra on the endpoints that need one (every 5 minutes)."""
        return self._once(
            "_role_confirmation", lambda: RoleConfirmation(sign_in=self.sign_in(), sessions=self.sessions())
        )

    def notifications(self) -> NotificationServices:
        """Mail ingestion: the webhook intake, the worker, each tenant's subscriptions and catch-up."""
        return self._once("_notifications", lambda: NotificationServices(self))

    def sign_in_settings(self) -> SignInSettings:
        """The settings the sign-in steps read."""
        return self.settings().sign_in


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """The process's runtime (built from ``os.environ`` on first use). Called by the edge only."""
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
