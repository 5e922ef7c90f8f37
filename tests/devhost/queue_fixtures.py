"""Helpers for the queue-trigger tests: the queue sample app run by devhost, and queue clients for Azurite."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    QueueServiceClient,
)

from tests.devhost.fixtures import DevHostProcess, start_devhost

QUEUE_APP = Path(__file__).resolve().parent / "queue_app"
# The queue app's fixed queues (and poison queues), removed around each module: modules share one Azurite.
APP_QUEUES = ("always-fails", "slow-work", "async-text", "hangs")


def delete_app_queues(connection_string: str) -> None:
    """Remove the queue app's fixed queues, so that a module starts without another module's messages."""
    service = QueueServiceClient.from_connection_string(connection_string)
    for name in APP_QUEUES:
        for queue in (name, f"{name}-poison"):
            with contextlib.suppress(ResourceNotFoundError):
                service.delete_queue(queue)


def records(out_dir: Path, function: str) -> list[dict[str, Any]]:
    """What ``function`` of the queue app received, one dict per invocation."""
    path = out_dir / f"{function}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_queue_host(
    tmp_path: Path, connection_string: str, *, env: Mapping[str, str] | None = None, app_dir: Path = QUEUE_APP
) -> tuple[DevHostProcess, Path]:
    out_dir = tmp_path / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    host = start_devhost(
        app_dir,
        log_path=tmp_path / "devhost.log",
        env={
            "DEVHOST_FIXTURE_OUT": str(out_dir),
            "AzureWebJobsStorage": connection_string,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            **(env or {}),
        },
        args=("--settings", str(tmp_path / "no.settings.json"), "--no-timers"),
    )
    return host, out_dir


def base64_queue(connection_string: str, name: str, *, create: bool = True) -> QueueClient:
    """A queue that sends bytes base64-encoded, as the app does (shared/storage.queue_client)."""
    client = QueueClient.from_connection_string(
        connection_string,
        name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    if create:
        client.create_queue()
    return client


def raw_queue(connection_string: str, name: str) -> QueueClient:
    """A queue whose message text is sent and read as is."""
    return QueueClient.from_connection_string(connection_string, name)


def peek_texts(client: QueueClient) -> list[str]:
    return [str(message.content) for message in client.peek_messages(max_messages=32)]


def safe_peek(client: QueueClient) -> list[str]:
    """The message texts, or none while the queue does not exist."""
    try:
        return peek_texts(client)
    except ResourceNotFoundError:
        return []


def decoded(text: str) -> str:
    return base64.b64decode(text).decode("utf-8")
