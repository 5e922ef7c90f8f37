"""Which storage account a queue trigger's ``connection`` names, resolved the way the Functions host does.

``connection`` is the name of an app setting (empty means ``AzureWebJobsStorage``). As in the host's
``StorageClientProvider`` (azure-webjobs-sdk ``AzureComponentFactory``), the setting ``<name>`` is read
first and then ``AzureWebJobs<name>``; names compare case-insensitively, like .NET configuration keys:

* a value is a connection string (``UseDevelopmentStorage=true`` is Azurite on 127.0.0.1:10000-10002);
* otherwise an identity-based section, environment variables ``<name>__queueServiceUri`` (or
  ``<name>__serviceUri``) or ``<name>__accountName`` (``https://<account>.queue.core.windows.net``),
  reached with ``DefaultAzureCredential`` (``<name>__clientId`` selects a user-assigned identity).

Nothing configured is an error naming the setting; the function is then reported in error and not run, and the
others start, as with the host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devhost.azurite import connection_string as azurite_connection_string

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

__all__ = ["ConnectionSettingError", "StorageConnection", "queue_client", "resolve_connection"]

_DEFAULT_CONNECTION = "AzureWebJobsStorage"
_DEVELOPMENT_STORAGE = "usedevelopmentstorage=true"
# Short timeouts and no SDK retries: the listener backs off itself, so an outage never stalls a poll for long.
_TIMEOUTS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 15}
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 0}


class ConnectionSettingError(ValueError):
    """The ``connection`` of a queue trigger names no usable app setting."""


@dataclass(frozen=True)
class StorageConnection:
    setting: str  # the app setting (or section) that was used, for messages; never its value
    connection_string: str | None = None
    account_url: str | None = None  # identity-based
    client_id: str | None = None

    @property
    def description(self) -> str:
        kind = "connection string" if self.connection_string is not None else f"identity, {self.account_url}"
        return f"{self.setting} ({kind})"


def resolve_connection(connection: str, environ: Mapping[str, str]) -> StorageConnection:
    """The account ``connection`` names; raises ConnectionSettingError when nothing is configured."""
    name = connection.strip() or _DEFAULT_CONNECTION
    lowered = {key.lower(): value for key, value in environ.items()}
    candidates = [name]
    if not name.lower().startswith("azurewebjobs"):
        candidates.append(f"AzureWebJobs{name}")
    for candidate in candidates:
        value = lowered.get(candidate.lower(), "").strip()
        if value:
            if value.replace(" ", "").lower().rstrip(";") == _DEVELOPMENT_STORAGE:
                value = azurite_connection_string("127.0.0.1", 10000, 10001, 10002)
            return StorageConnection(setting=candidate, connection_string=value)
        prefix = f"{candidate.lower()}__"
        section = {key[len(prefix) :]: value for key, value in lowered.items() if key.startswith(prefix)}
        url = section.get("queueserviceuri") or section.get("serviceuri")
        if not url and section.get("accountname"):
            url = f"https://{section['accountname']}.queue.core.windows.net"
        if url:
            return StorageConnection(
                setting=candidate, account_url=url.rstrip("/"), client_id=section.get("clientid") or None
            )
    raise ConnectionSettingError(
        f"Storage account connection string '{candidates[-1]}' does not exist. Make sure that it is a "
        f"defined App Setting (a connection string, or {name}__queueServiceUri / {name}__accountName "
        "for an identity)"
    )


def queue_client(connection: StorageConnection, queue_name: str) -> QueueClient:
    """A client for ``queue_name`` that sends and receives message text as is (devhost decodes base64 itself,
    so that a message that is not base64 can go to the poison queue unchanged, as the host moves it)."""
    from azure.storage.queue import QueueClient

    if connection.connection_string is not None:
        endpoint = QueueClient.from_connection_string(connection.connection_string, queue_name).url
        return QueueClient.from_connection_string(
            connection.connection_string, queue_name, transport=_transport(endpoint), **_CLIENT_OPTIONS
        )
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(
        exclude_interactive_browser_credential=True, managed_identity_client_id=connection.client_id
    )
    url = connection.account_url or ""
    return QueueClient(url, queue_name, credential=credential, transport=_transport(url), **_CLIENT_OPTIONS)


def _transport(endpoint: str) -> Any:
    """azure-core's requests transport with the timeouts above, over a session that has read the
    environment (proxies, ``NO_PROXY``, the CA variables) for ``endpoint`` once: left to itself, requests
    reads it again for every request, scanning the whole environment, about 0.3 ms of CPU per poll."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.utils import get_environ_proxies

    session = requests.Session()
    session.trust_env = False  # what it would read per request is set once here
    session.proxies = get_environ_proxies(endpoint)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return RequestsTransport(session=session, session_owner=True, **_TIMEOUTS)
