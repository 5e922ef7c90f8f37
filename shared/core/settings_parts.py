"""The parts of :class:`~shared.core.settings.Settings` that services receive: each service gets only the
settings it reads, never the whole set (``Settings.vault``, ``.storage``, ``.sign_in``, ``.report``).

Field names are the ``Settings`` attribute names they copy, so a setting reads the same wherever it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from shared.core.records import Record

CredentialMode = Literal["keyvault", "managed-identity"]
Tenancy = Literal["single", "multi"]
IngestionMode = Literal["webhook", "poll", "off"]
_P = TypeVar("_P")


class VaultSettings(Record):
    """The app's credential and the vault holding it and the session key (``ENTRA_CREDENTIAL``,
    ``KEY_VAULT_URL``, ``ENTRA_CREDENTIAL_NAME``, ``ENTRA_MANAGED_IDENTITY_CLIENT_ID``,
    ``SESSION_KEY_NAME``)."""

    credential_mode: CredentialMode
    key_vault_url: str | None
    credential_name: str | None
    managed_identity_client_id: str | None
    session_key_name: str
    #: Per-request timeout of vault reads (``GRAPH_TIMEOUT_SECONDS``: they sit on callers' request paths).
    graph_timeout_seconds: float
    #: Whether ``ENTRA_AUTHORITY_HOST`` is one of Microsoft's (else instance discovery is turned off).
    authority_is_microsoft_cloud: bool


class StorageSettings(Record):
    """The storage account ``AzureWebJobsStorage`` names (connection string or identity). ``repr`` leaves
    the connection string (it may hold an account key) out."""

    storage_connection: str | None
    storage_account_name: str | None
    storage_client_id: str | None
    storage_service_uris: Mapping[str, str]
    managed_identity_client_id: str | None
    graph_timeout_seconds: float
    #: The cloud whose storage suffix derives the service URIs (``ENTRA_AUTHORITY_HOST``'s).
    authority_host: str
    authority_is_microsoft_cloud: bool

    def __repr__(self) -> str:
        uris = dict(self.storage_service_uris)
        return f"StorageSettings(account={self.storage_account_name!r}, uris={uris!r})"


class EntraApp(Record):
    """This app's registration as one tenant's authority sees it (MSAL confidential clients)."""

    client_id: str
    authority: str
    authority_is_microsoft_cloud: bool


class SignInSettings(Record):
    """People's sign-in: the registration, the tenant, the resources asked for, the session lifetime."""

    client_id: str
    tenant_id: str
    authority: str
    authority_is_microsoft_cloud: bool
    #: ``ENTRA_TENANCY``: when ``multi``, people sign in at :attr:`sign_in_authority` (``/organizations``)
    #: and their tenant is checked against the onboarded organisations by the caller, not here.
    tenancy: Tenancy
    sign_in_authority: str
    graph_endpoint: str
    sharepoint_site_url: str | None
    session_max_age_hours: int


class ReportSettings(Record):
    """The daily report: where it is stored and queued, who gets the mail, the run's Graph budget."""

    report_container: str
    report_queue: str
    report_recipients: tuple[str, ...]
    report_sender: str | None
    report_top_departments: int
    report_time_zone: str | None
    public_base_url: str | None
    graph_timeout_seconds: float
    graph_retry_budget_seconds: float


class NotificationSettings(Record):
    """Mail ingestion (:mod:`shared.notifications`): the mode, its queues and table, where Graph calls back,
    and the mailbox scope it follows."""

    mail_ingestion_mode: IngestionMode
    mail_events_queue: str
    mail_notification_queue: str
    notification_table: str
    notification_base_url: str | None
    public_base_url: str | None
    mailbox_scope: str | None
    client_id: str
    tenant_id: str
    #: ``NOTIFICATION_CERTIFICATE_NAME``: rich notifications' certificate in Key Vault (None: basic ones).
    notification_certificate_name: str | None
    authority_host: str


def part_of(settings: Any, part: type[_P]) -> _P:
    """``part`` (a NamedTuple) filled from the same-named attributes of ``settings``."""
    return part(**{name: getattr(settings, name) for name in part._fields})  # type: ignore[attr-defined]
