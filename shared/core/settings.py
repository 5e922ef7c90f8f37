"""Application settings: read once from the environment, validated at start, frozen afterwards.

Every setting is documented in ``docs/settings.md`` and has a sample value in ``local.settings.sample.json``.
Validation collects *all* problems and raises one :class:`~shared.core.errors.ConfigurationError`, each
problem saying what to set and where, so a broken deployment is fixed in one round trip.

The Graph timeout and retry budget are also checked together against the host's limits: the retry policy
alone must never let one Graph call outlast Azure's 230 s HTTP response limit or host.json's
``functionTimeout`` (:func:`check_retry_bounds`).

This module uses only the standard library: it is imported when ``function_app`` is indexed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from shared.core.clouds import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_ENDPOINT, MICROSOFT_AUTHORITY_HOSTS
from shared.core.errors import ConfigurationError
from shared.core.host_limits import HOST_JSON, check_retry_bounds, function_timeout_seconds
from shared.core.patterns import is_guid
from shared.core.records import Record
from shared.core.settings_parts import (
    CredentialMode,
    EntraApp,
    IngestionMode,
    NotificationSettings,
    ReportSettings,
    SignInSettings,
    StorageSettings,
    Tenancy,
    VaultSettings,
    part_of,
)
from shared.core.settings_reader import WHERE, Reader, notification_certificate

CREDENTIAL_MODES: tuple[CredentialMode, ...] = ("keyvault", "managed-identity")
#: ``MAIL_INGESTION_MODE``: Graph change notifications + delta, delta from a timer alone, or nothing.
INGESTION_MODES: tuple[IngestionMode, ...] = ("webhook", "poll", "off")


DEFAULT_SESSION_KEY_NAME = "graph-functions-session-key"
DEFAULT_REPORT_SCHEDULE = "0 0 6 * * *"
_STORAGE_ACCOUNT = r"^[a-z0-9]{3,24}$"
# An NCRONTAB expression with seconds (six fields), as the Functions timer trigger takes it.
_NCRONTAB = r"^\S+( \S+){5}$"
_EMAIL = r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$"
_STORAGE_SERVICES = ("blob", "queue", "table")

#: Every application setting the app reads in production (the Functions host's own settings aside). The
#: infrastructure test compares this with the app settings infra/ deploys; a unit test checks that
#: :meth:`Settings.from_env` reads exactly these.
SETTING_NAMES: tuple[str, ...] = (
    "ENTRA_TENANT_ID",
    "ENTRA_TENANCY",
    "TENANTS_TABLE",
    "ENTRA_CLIENT_ID",
    "ENTRA_AUTHORITY_HOST",
    "ENTRA_CREDENTIAL",
    "KEY_VAULT_URL",
    "ENTRA_CREDENTIAL_NAME",
    "ENTRA_MANAGED_IDENTITY_CLIENT_ID",
    "GRAPH_ENDPOINT",
    "SHAREPOINT_SITE_URL",
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "GRAPH_TIMEOUT_SECONDS",
    "GRAPH_RETRY_BUDGET_SECONDS",
    "GRAPH_MAX_RETRIES",
    "PUBLIC_BASE_URL",
    "SESSION_KEY_NAME",
    "SESSION_TABLE",
    "AUTH_FLOW_TABLE",
    "SESSION_IDLE_MINUTES",
    "SESSION_MAX_AGE_HOURS",
    "MAILBOX_SCOPE",
    "MAILBOX_SCOPE_CACHE_SECONDS",
    "AUDIT_TABLE",
    "REPORT_SCHEDULE",
    "REPORT_CONTAINER",
    "REPORT_QUEUE",
    "REPORT_RECIPIENTS",
    "REPORT_SENDER",
    "REPORT_TOP_DEPARTMENTS",
    "WEBSITE_TIME_ZONE",
    "API_ALLOWED_CLIENT_APPS",
    "SPA_CLIENT_ID",
    "MAIL_INGESTION_MODE",
    "MAIL_EVENTS_QUEUE",
    "MAIL_NOTIFICATION_QUEUE",
    "NOTIFICATION_TABLE",
    "NOTIFICATION_BASE_URL",
    "NOTIFICATION_CERTIFICATE_NAME",
)


class Settings(Record, hidden=("storage_connection",)):
    """Validated, immutable application settings. Build with :meth:`from_env`.

    Attributes mirror the environment variables documented in ``docs/settings.md``. URLs are normalised
    (lower-case scheme and host, no trailing slash except ``key_vault_url``, which keeps exactly one).
    ``repr`` leaves the storage connection string (it may hold an account key) out.
    """

    tenant_id: str
    client_id: str
    authority_host: str = DEFAULT_AUTHORITY_HOST
    #: ``ENTRA_TENANCY``: ``single`` (the home tenant only) or ``multi`` (onboarded organisations too).
    tenancy: Tenancy = "single"
    #: ``TENANTS_TABLE``: the onboarded organisations (multi-tenant only).
    tenants_table: str = "tenants"
    credential_mode: CredentialMode = "keyvault"
    key_vault_url: str | None = None
    credential_name: str | None = None
    managed_identity_client_id: str | None = None
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    sharepoint_site_url: str | None = None
    storage_connection: str | None = None
    storage_account_name: str | None = None
    storage_client_id: str | None = None
    storage_service_uris: Mapping[str, str] = MappingProxyType({})
    graph_timeout_seconds: float = 10.0
    graph_retry_budget_seconds: float = 30.0
    graph_max_retries: int = 5
    # Sign-in and sessions
    public_base_url: str | None = None
    session_key_name: str = DEFAULT_SESSION_KEY_NAME
    session_table: str = "sessions"
    auth_flow_table: str = "authflows"
    session_idle_minutes: int = 480
    session_max_age_hours: int = 24
    # Mailbox reads
    mailbox_scope: str | None = None
    mailbox_scope_cache_seconds: int = 300
    audit_table: str = "mailaudit"
    # Daily user report
    report_schedule: str = DEFAULT_REPORT_SCHEDULE
    report_container: str = "reports"
    report_queue: str = "report-runs"
    report_recipients: tuple[str, ...] = ()
    report_sender: str | None = None
    report_top_departments: int = 10
    #: ``WEBSITE_TIME_ZONE``: the platform's zone for timers (UTC when unset), so also the report's day.
    report_time_zone: str | None = None
    # Callers holding a person's token (docs/on-behalf-of.md)
    api_allowed_client_apps: tuple[str, ...] = ()
    spa_client_id: str | None = None
    # Mail ingestion (change notifications, delta catch-up, mail events): shared.notifications
    mail_ingestion_mode: IngestionMode = "off"
    mail_events_queue: str = "mail-events"
    mail_notification_queue: str = "mail-notifications"
    notification_table: str = "mailnotifications"
    #: Where Graph posts notifications (https); None: ``PUBLIC_BASE_URL``.
    notification_base_url: str | None = None
    #: Key Vault secret with the PEM certificate + key of rich notifications; None: basic notifications.
    notification_certificate_name: str | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, host_json: Path | None = HOST_JSON
    ) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``); ``host_json`` gives ``functionTimeout``
        (None: check against the 230 s HTTP limit only).

        Empty or whitespace-only values count as unset. Raises:
            ConfigurationError: listing every problem found, each with the fix.
        """
        source = os.environ if env is None else env
        reader = Reader(source)
        tenant_id = reader.guid("ENTRA_TENANT_ID", "your directory (tenant) ID")
        client_id = reader.guid("ENTRA_CLIENT_ID", "the application (client) ID of this app's registration")
        authority_host = reader.origin("ENTRA_AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST)
        tenancy = tenancy_of(reader)
        mode_raw = (reader.get("ENTRA_CREDENTIAL") or "keyvault").lower()
        credential_mode: CredentialMode = "keyvault"
        if mode_raw == "managed-identity":
            credential_mode = "managed-identity"
        elif mode_raw != "keyvault":
            reader.problem(
                f"ENTRA_CREDENTIAL is '{mode_raw}': set it to 'keyvault' (the client secret or certificate "
                "is read from Key Vault) or 'managed-identity' (secretless federated credential)"
            )
        key_vault_url = reader.vault_url("KEY_VAULT_URL", required=credential_mode == "keyvault")
        credential_name = reader.get("ENTRA_CREDENTIAL_NAME")
        if credential_mode == "keyvault":
            if credential_name is None:
                reader.problem(
                    "ENTRA_CREDENTIAL_NAME is missing: set it to the name of the Key Vault secret that holds "
                    f"this app's client secret or certificate, {WHERE}"
                )
            else:
                reader.secret_name("ENTRA_CREDENTIAL_NAME", credential_name)
        mi_client_id = reader.guid(
            "ENTRA_MANAGED_IDENTITY_CLIENT_ID",
            "the client ID of the user-assigned managed identity (leave empty for system-assigned)",
            required=False,
        )
        graph_endpoint = reader.origin("GRAPH_ENDPOINT", DEFAULT_GRAPH_ENDPOINT)
        sharepoint = reader.https_url("SHAREPOINT_SITE_URL")
        storage_account = reader.get("AzureWebJobsStorage__accountName")
        if storage_account is not None and not re.fullmatch(_STORAGE_ACCOUNT, storage_account):
            reader.problem(
                f"AzureWebJobsStorage__accountName '{storage_account}' is not a storage account name: use "
                "3-24 lower-case letters and digits"
            )
        service_uris = {
            service: uri
            for service in _STORAGE_SERVICES
            if (uri := reader.https_url(f"AzureWebJobsStorage__{service}ServiceUri")) is not None
        }
        storage_connection = reader.get("AzureWebJobsStorage")
        storage_client_id = reader.guid(
            "AzureWebJobsStorage__clientId",
            "the client ID of the user-assigned managed identity that reaches storage",
            required=False,
        )
        public_base_url = reader.base_url("PUBLIC_BASE_URL")
        session_key_name = reader.get("SESSION_KEY_NAME") or DEFAULT_SESSION_KEY_NAME
        reader.secret_name("SESSION_KEY_NAME", session_key_name)
        mailbox_scope = reader.get("MAILBOX_SCOPE")
        if mailbox_scope is not None and mailbox_scope != "*" and not is_guid(mailbox_scope):
            reader.problem(
                f"MAILBOX_SCOPE '{mailbox_scope}' must be the object ID (a GUID) of the security group whose "
                "members' mailboxes may be read, or * for every mailbox of the tenant"
            )
        report_schedule = reader.get("REPORT_SCHEDULE") or DEFAULT_REPORT_SCHEDULE
        if not re.fullmatch(_NCRONTAB, report_schedule):
            reader.problem(
                f"REPORT_SCHEDULE '{report_schedule}' is not an NCRONTAB expression with six fields "
                f"(second minute hour day month day-of-week), e.g. '{DEFAULT_REPORT_SCHEDULE}' (06:00 daily)"
            )
        recipients = tuple(
            part.strip()
            for part in (reader.get("REPORT_RECIPIENTS") or "").replace(";", ",").split(",")
            if part.strip()
        )
        for address in recipients:
            if not re.fullmatch(_EMAIL, address):
                reader.problem(f"REPORT_RECIPIENTS: '{address}' is not an email address")
        report_sender = reader.get("REPORT_SENDER")
        if report_sender is not None and not re.fullmatch(_EMAIL, report_sender):
            reader.problem(
                f"REPORT_SENDER '{report_sender}' must be the address of the mailbox that sends the report"
            )
        if bool(recipients) != (report_sender is not None):
            reader.problem(
                "REPORT_RECIPIENTS and REPORT_SENDER go together: set both to mail the daily summary, or "
                "neither"
            )
        mode_text = (reader.get("MAIL_INGESTION_MODE") or "off").lower()
        ingestion_mode: IngestionMode = "off"
        if mode_text in INGESTION_MODES:
            ingestion_mode = mode_text
        else:
            reader.problem(
                f"MAIL_INGESTION_MODE is '{mode_text}': set it to 'webhook' (Graph change notifications with "
                "delta catch-up), 'poll' (delta from a timer alone, for deployments Graph cannot reach) or "
                "'off'"
            )
        settings = cls(
            tenant_id=(tenant_id or "").lower(),
            client_id=(client_id or "").lower(),
            authority_host=authority_host,
            tenancy=tenancy,
            tenants_table=reader.table_name("TENANTS_TABLE", "tenants"),
            credential_mode=credential_mode,
            key_vault_url=key_vault_url,
            credential_name=credential_name,
            managed_identity_client_id=mi_client_id.lower() if mi_client_id else None,
            graph_endpoint=graph_endpoint,
            sharepoint_site_url=sharepoint,
            storage_connection=storage_connection,
            storage_account_name=storage_account,
            storage_client_id=storage_client_id.lower() if storage_client_id else None,
            storage_service_uris=service_uris,
            graph_timeout_seconds=reader.number("GRAPH_TIMEOUT_SECONDS", 10.0, float, 1, 120),
            graph_retry_budget_seconds=reader.number("GRAPH_RETRY_BUDGET_SECONDS", 30.0, float, 0, 300),
            graph_max_retries=reader.number("GRAPH_MAX_RETRIES", 5, int, 0, 10),
            public_base_url=public_base_url,
            session_key_name=session_key_name,
            session_table=reader.table_name("SESSION_TABLE", "sessions"),
            auth_flow_table=reader.table_name("AUTH_FLOW_TABLE", "authflows"),
            session_idle_minutes=reader.number("SESSION_IDLE_MINUTES", 480, int, 5, 10080),
            session_max_age_hours=reader.number("SESSION_MAX_AGE_HOURS", 24, int, 1, 720),
            mailbox_scope=mailbox_scope.lower() if mailbox_scope else None,
            mailbox_scope_cache_seconds=reader.number("MAILBOX_SCOPE_CACHE_SECONDS", 300, int, 0, 3600),
            audit_table=reader.table_name("AUDIT_TABLE", "mailaudit"),
            report_schedule=report_schedule,
            report_container=reader.container_name("REPORT_CONTAINER", "reports"),
            report_queue=reader.container_name("REPORT_QUEUE", "report-runs"),
            report_recipients=recipients,
            report_sender=report_sender,
            report_top_departments=reader.number("REPORT_TOP_DEPARTMENTS", 10, int, 1, 100),
            report_time_zone=reader.get("WEBSITE_TIME_ZONE"),
            api_allowed_client_apps=reader.guid_list(
                "API_ALLOWED_CLIENT_APPS", "the client ids of the apps that may call for a person"
            ),
            spa_client_id=_lower(reader.guid("SPA_CLIENT_ID", "the single-page client's id", required=False)),
            mail_ingestion_mode=ingestion_mode,
            mail_events_queue=reader.container_name("MAIL_EVENTS_QUEUE", "mail-events"),
            mail_notification_queue=reader.container_name("MAIL_NOTIFICATION_QUEUE", "mail-notifications"),
            notification_table=reader.table_name("NOTIFICATION_TABLE", "mailnotifications"),
            notification_base_url=reader.base_url("NOTIFICATION_BASE_URL"),
            notification_certificate_name=notification_certificate(reader, key_vault_url),
        )
        limit = check_retry_bounds(
            settings.graph_timeout_seconds,
            settings.graph_retry_budget_seconds,
            function_timeout_seconds(host_json) if host_json is not None else None,
        )
        if limit is not None:
            reader.problem(limit)
        if reader.problems:
            raise ConfigurationError(reader.problems)
        return settings

    @property
    def authority(self) -> str:
        """The tenant's Entra authority, ``{ENTRA_AUTHORITY_HOST}/{ENTRA_TENANT_ID}``."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def is_multi_tenant(self) -> bool:
        """``ENTRA_TENANCY=multi``: organisations other than the home tenant are served once onboarded."""
        return self.tenancy == "multi"

    @property
    def sign_in_authority(self) -> str:
        """Where people sign in: the home tenant's authority, or ``{host}/organizations`` when
        multi-tenant (any organisation's account; the allow-list is the app's own check)."""
        return f"{self.authority_host}/organizations" if self.is_multi_tenant else self.authority

    @property
    def authority_is_microsoft_cloud(self) -> bool:
        """True for Microsoft's own authority hosts; False for anything else (e.g. a local tenant)."""
        return (urlsplit(self.authority_host).hostname or "") in MICROSOFT_AUTHORITY_HOSTS

    @property
    def graph_scope(self) -> str:
        """App-only scope for Graph. National clouds need their own Graph host, hence derived, not fixed."""
        return f"{self.graph_endpoint}/.default"

    @property
    def graph_base_url(self) -> str:
        """Root of Graph v1.0 calls, ``{GRAPH_ENDPOINT}/v1.0``."""
        return f"{self.graph_endpoint}/v1.0"

    @property
    def api_audiences(self) -> tuple[str, str]:
        """Audiences accepted in callers' tokens: the client id (v2 tokens) and the ``api://`` URI."""
        return (self.client_id, f"api://{self.client_id}")

    # The parts services receive (shared.core.settings_parts): each reads only its own.
    @property
    def vault(self) -> VaultSettings:
        return part_of(self, VaultSettings)

    @property
    def storage(self) -> StorageSettings:
        return part_of(self, StorageSettings)

    @property
    def entra_app(self) -> EntraApp:
        """The registration under the home tenant's authority."""
        return part_of(self, EntraApp)

    @property
    def sign_in(self) -> SignInSettings:
        return part_of(self, SignInSettings)

    @property
    def report(self) -> ReportSettings:
        return part_of(self, ReportSettings)

    @property
    def notifications(self) -> NotificationSettings:
        return part_of(self, NotificationSettings)


def tenancy_of(reader: Reader) -> Tenancy:
    """``ENTRA_TENANCY``: ``single`` (default) or ``multi``; anything else is a problem that says both."""
    raw = (reader.get("ENTRA_TENANCY") or "single").lower()
    if raw == "multi":
        return "multi"
    if raw != "single":
        reader.problem(
            f"ENTRA_TENANCY is '{raw}': set it to 'single' (only ENTRA_TENANT_ID is served, the default) or "
            "'multi' (organisations whose administrators onboard at /onboard are served too; the app "
            "registration's signInAudience must then be AzureADMultipleOrgs, see docs/multi-tenant.md)"
        )
    return "single"


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None
