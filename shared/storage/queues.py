"""A queue of the app's storage account that exists when first used (created once per process), and whose
sends raise the app's storage errors: what the notification webhook, worker and timer enqueue with."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.storage.tables import storage_call

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient


class EnsuredQueue:
    """Sends to one queue (base64, the host's encoding: :func:`shared.storage.clients.queue_client`),
    creating it on first use. Thread-safe."""

    def __init__(self, factory: Callable[[], QueueClient], name: str) -> None:
        self.name = name
        self._factory = factory
        self._lock = threading.Lock()
        self._client: QueueClient | None = None

    def client(self) -> QueueClient:
        """The queue's client, the queue created if missing. Raises StorageUnavailable, ConfigurationError."""
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                queue = self._factory()
                with storage_call(f"creating queue '{self.name}'"), contextlib.suppress(ResourceExistsError):
                    queue.create_queue()
                self._client = queue
            return self._client

    def send(self, body: bytes) -> None:
        """Put ``body`` on the queue. Raises StorageUnavailable (503), ConfigurationError."""
        client = self.client()
        with storage_call(f"sending to queue '{self.name}'"):
            client.send_message(body)
