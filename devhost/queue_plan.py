"""Which queue each queue-triggered function listens to: ``%SETTING%`` names, connections, poison queues."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from devhost.discovery import FunctionSpec
from devhost.ncrontab import ScheduleError, resolve_app_settings
from devhost.queue_connection import ConnectionSettingError, StorageConnection, resolve_connection

__all__ = ["PlannedQueue", "plan_queues", "poison_queue_name"]

_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_POISON_SUFFIX = "-poison"


@dataclass(frozen=True)
class PlannedQueue:
    spec: FunctionSpec
    queue_name: str
    poison_name: str | None
    connection: StorageConnection


def poison_queue_name(queue_name: str) -> str | None:
    """``<queue>-poison``, or None where the host has no poison queue (already ``-poison``, or too long)."""
    if queue_name.endswith(_POISON_SUFFIX) or len(queue_name) + len(_POISON_SUFFIX) > 63:
        return None
    return queue_name + _POISON_SUFFIX


def plan_queues(
    specs: list[FunctionSpec], environ: Mapping[str, str]
) -> tuple[list[PlannedQueue], dict[str, str]]:
    """Resolve ``%SETTING%`` queue names and connections; returns the queues and, per function, the error of
    those that cannot run (the host reports them and starts the others)."""
    planned: list[PlannedQueue] = []
    errors: dict[str, str] = {}
    for spec in specs:
        if spec.queue is None:
            continue
        try:
            # The host lower-cases the resolved name ("must be lowercase, coerce here to be nice").
            name = resolve_app_settings(spec.queue.queue_name, environ).strip().lower()
            if not _QUEUE_NAME.match(name):
                raise ConnectionSettingError(
                    f"Invalid queue name: '{name}'. A queue name is 3-63 lowercase letters, digits and "
                    "single hyphens, starting and ending with a letter or digit"
                )
            connection = resolve_connection(spec.queue.connection, environ)
        except (ScheduleError, ConnectionSettingError) as error:
            errors[spec.name] = str(error)
            continue
        planned.append(PlannedQueue(spec, name, poison_queue_name(name), connection))
    return planned, errors
