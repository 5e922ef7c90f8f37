"""Clients for the app's own storage (tables, blobs, queues), from the same account the Functions host uses.

The account is the one ``AzureWebJobsStorage`` names, configured either way the Functions host accepts:

* a connection string, ``AzureWebJobsStorage`` (``UseDevelopmentStorage=true`` is Azurite on its default
  ports, as the host reads it);
* identity-based, ``AzureWebJobsStorage__accountName`` (the service URIs derived as
  ``https://{account}.{service}.{suffix}``, the storage suffix of ``ENTRA_AUTHORITY_HOST``'s cloud, e.g.
  ``core.windows.net``, ``core.usgovcloudapi.net``) or explicit ``AzureWebJobsStorage__{blob,queue,table}
  ServiceUri``, authenticated with the Function App's managed identity (``AzureWebJobsStorage__clientId``
  for a user-assigned one; otherwise ``ENTRA_MANAGED_IDENTITY_CLIENT_ID``) through ``DefaultAzureCredential``.

Each factory builds ONE service client; :class:`~shared.app.services.Runtime` keeps them per process (their
connection pools are reused). Given the process's :class:`~shared.core.http.RequestsTransport` (``http``),
a client sends through its pooled session, which reads the environment once per origin instead of on every
request, with each attempt bounded by the storage timeout on the transport (an SDK client given a transport
ignores its own timeout options). The azure.storage / azure.data.tables packages are imported on first use.

Raises :class:`~shared.core.errors.ConfigurationError` when no storage is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from shared.core.errors import ConfigurationError
from shared.core.http import RequestsTransport
from shared.core.settings_parts import StorageSettings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient, QueueServiceClient

Service = Literal["blob", "queue", "table"]

#: Azurite's well-known development account (what ``UseDevelopmentStorage=true`` means to the host).
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)

_MISSING = (
    "AzureWebJobsStorage is missing: set it to a storage connection string (UseDevelopmentStorage=true for "
    "Azurite locally) or use identity-based storage with AzureWebJobsStorage__accountName (and "
    "AzureWebJobsStorage__clientId for a user-assigned identity), in local.settings.json (locally) or the "
    "Function App's configuration (in Azure)"
)


def connection_string(storage: StorageSettings) -> str | None:
    """The connection string to use, with ``UseDevelopmentStorage=true`` expanded; None when storage is
    identity-based."""
    value = storage.storage_connection
    if value is None:
        return None
    if value.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
        return DEVELOPMENT_STORAGE
    return value


def service_uri(storage: StorageSettings, service: Service) -> str:
    """The service endpoint of identity-based storage: ``AzureWebJobsStorage__{service}ServiceUri`` if set,
    else derived from the account name with the storage suffix of ``ENTRA_AUTHORITY_HOST``'s cloud.

    Raises ConfigurationError when none is configured, or for a Microsoft cloud whose suffix is not known."""
    explicit = storage.storage_service_uris.get(service)
    if explicit:
        return explicit
    if storage.storage_account_name:
        # The storage suffix of the cloud ENTRA_AUTHORITY_HOST belongs to (Bicep's environment().suffixes
        # .storage). Another Microsoft cloud has no suffix known here: its service URIs must be explicit.
        # A non-Microsoft authority (the local tenant) keeps the public suffix, as before.
        suffixes = {
            "login.microsoftonline.com": "core.windows.net",
            "login.microsoft.com": "core.windows.net",
            "login.windows.net": "core.windows.net",
            "sts.windows.net": "core.windows.net",
            "login.microsoftonline.us": "core.usgovcloudapi.net",
            "login.usgovcloudapi.net": "core.usgovcloudapi.net",
            "login-us.microsoftonline.com": "core.usgovcloudapi.net",
            "login.chinacloudapi.cn": "core.chinacloudapi.cn",
            "login.partner.microsoftonline.cn": "core.chinacloudapi.cn",
        }
        host = storage.authority_host.split("://", 1)[-1].split("/", 1)[0].lower()
        suffix = suffixes.get(host)
        if suffix is None and storage.authority_is_microsoft_cloud:
            raise ConfigurationError(
                f"No storage endpoint suffix is known for the cloud of {storage.authority_host}: set "
                f"AzureWebJobsStorage__{service}ServiceUri (the account's {service} endpoint) next to "
                "AzureWebJobsStorage__accountName"
            )
        return f"https://{storage.storage_account_name}.{service}.{suffix or 'core.windows.net'}"
    raise ConfigurationError(_MISSING)


def storage_credential(storage: StorageSettings) -> TokenCredential:
    """The identity that reaches identity-based storage."""
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    options: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    client_id = storage.storage_client_id or storage.managed_identity_client_id
    if client_id:
        options["managed_identity_client_id"] = client_id
    return DefaultAzureCredential(**options)


def _client_options(storage: StorageSettings, http: RequestsTransport | None) -> dict[str, Any]:
    # Storage sits on request paths (sessions, audit): fail fast rather than hold a worker thread.
    timeout = storage.graph_timeout_seconds
    if http is not None:
        return {"transport": http.azure_transport(timeout=timeout), "retry_total": 2}
    return {"connection_timeout": timeout, "read_timeout": timeout, "retry_total": 2}


#: Blob and queue clients back off 15 s, then 15 + 3 s (azure-storage's ExponentialRetry defaults): about
#: 35 s of waiting per call with 2 retries, far from failing fast. Seconds instead (the tables SDK has its own
#: short backoff and takes no such options).
_BLOB_QUEUE_BACKOFF: dict[str, Any] = {"initial_backoff": 1, "increment_base": 2, "random_jitter_range": 1}


def table_service(storage: StorageSettings, http: RequestsTransport | None = None) -> TableServiceClient:
    """ONE Table service client for the account, sending through ``http``'s session when given (module
    docstring). Raises ConfigurationError without storage."""
    from azure.data.tables import TableServiceClient  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    text = connection_string(storage)
    if text is not None:
        return TableServiceClient.from_connection_string(text, **_client_options(storage, http))
    return TableServiceClient(
        endpoint=service_uri(storage, "table"),
        credential=storage_credential(storage),
        **_client_options(storage, http),
    )


def blob_service(storage: StorageSettings, http: RequestsTransport | None = None) -> BlobServiceClient:
    """ONE Blob service client for the account, sending through ``http``'s session when given (module
    docstring). Raises ConfigurationError without storage."""
    from azure.storage.blob import BlobServiceClient  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    text = connection_string(storage)
    if text is not None:
        return BlobServiceClient.from_connection_string(
            text, **_client_options(storage, http), **_BLOB_QUEUE_BACKOFF
        )
    return BlobServiceClient(
        account_url=service_uri(storage, "blob"),
        credential=storage_credential(storage),
        **_client_options(storage, http),
        **_BLOB_QUEUE_BACKOFF,
    )


def queue_service(storage: StorageSettings, http: RequestsTransport | None = None) -> QueueServiceClient:
    """ONE Queue service client for the account, sending through ``http``'s session when given (module
    docstring). Raises ConfigurationError without storage.

    Get queues through :func:`queue_client`: the service client does not pass message encoding on."""
    from azure.storage.queue import QueueServiceClient  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    text = connection_string(storage)
    if text is not None:
        return QueueServiceClient.from_connection_string(
            text, **_client_options(storage, http), **_BLOB_QUEUE_BACKOFF
        )
    return QueueServiceClient(
        account_url=service_uri(storage, "queue"),
        credential=storage_credential(storage),
        **_client_options(storage, http),
        **_BLOB_QUEUE_BACKOFF,
    )


def queue_client(service: QueueServiceClient, name: str) -> QueueClient:
    """The queue ``name`` with base64 message encoding, the Functions host's default for queue triggers
    (``extensions.queues.messageEncoding``), so the host decodes what the app enqueues."""
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    return service.get_queue_client(
        name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
