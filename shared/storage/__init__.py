"""The app's storage account (``AzureWebJobsStorage``): table, blob and queue clients by connection
string or identity, and the table helpers (ensured tables, storage errors)."""

from shared.storage.clients import blob_service, queue_client, queue_service, table_service
from shared.storage.tables import EnsuredTable, storage_call

__all__ = ["EnsuredTable", "blob_service", "queue_client", "queue_service", "storage_call", "table_service"]
