"""host.json ``extensions.queues``: the queue trigger's options, as the host's ``QueuesOptions`` reads them.

* ``batchSize``: 16; 1-32 messages fetched per poll.
* ``newBatchThreshold``: ``batchSize // 2 * N`` (N: processors; 1 on Consumption, ``WEBSITE_SKU=Dynamic``);
  >= 0. A new batch is fetched once at most this many messages are still being processed.
* ``maxPollingInterval``: 1 minute, 2 s in Development; a TimeSpan >= 100 ms, the longest wait between polls
  of an empty queue.
* ``visibilityTimeout``: 0; a TimeSpan, how long a failed message stays invisible before its retry.
* ``maxDequeueCount``: 5; >= 1, attempts before the message moves to ``<queue>-poison``.
* ``messageEncoding``: ``base64`` (or ``none``).

An app setting ``AzureFunctionsJobHost__extensions__queues__<name>`` overrides host.json's ``<name>`` (the
host's documented override of host.json values: https://learn.microsoft.com/azure/azure-functions/
functions-host-json#override-hostjson-values), so a test host can shorten ``visibilityTimeout`` without its
own host.json.

A value the host would refuse (``ArgumentOutOfRangeException`` at start) raises ``QueueOptionsError``, so
devhost stops at start (exit 2) as the host does. ``maxPollingInterval`` follows ``TimeSpan.Parse``: a bare
number is **days** (``2000`` is 2000 days, not 2 s: Azure/azure-webjobs-sdk#2967), so a value above one hour
gets a warning.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devhost.timespan import format_timespan, parse_timespan

__all__ = ["MIN_POLLING_INTERVAL", "QueueOptions", "QueueOptionsError", "parse_queue_options"]

MIN_POLLING_INTERVAL = dt.timedelta(milliseconds=100)  # the host's QueuePollingIntervals.Minimum
_DEFAULT_MAX_POLLING = dt.timedelta(minutes=1)  # QueuePollingIntervals.DefaultMaximum
_DEVELOPMENT_MAX_POLLING = dt.timedelta(seconds=2)  # StorageQueuesWebJobsBuilderExtensions, IsDevelopment()
_MAX_BATCH_SIZE = 32
_SUSPICIOUS_POLLING = dt.timedelta(hours=1)
_OVERRIDE_PREFIX = "AzureFunctionsJobHost__extensions__queues__"
_log = logging.getLogger("devhost")


class QueueOptionsError(ValueError):
    """``extensions.queues`` has a value the host refuses."""


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: dt.timedelta = _DEFAULT_MAX_POLLING
    visibility_timeout: dt.timedelta = dt.timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: Literal["base64", "none"] = "base64"

    def describe(self) -> str:
        """The options in effect, as host.json spells them (for the start-up log)."""
        return (
            f"batchSize {self.batch_size}, newBatchThreshold {self.new_batch_threshold}, maxPollingInterval "
            f"{_span(self.max_polling_interval)}, visibilityTimeout {_span(self.visibility_timeout)}, "
            f"maxDequeueCount {self.max_dequeue_count}, messageEncoding {self.message_encoding}"
        )


def _span(interval: dt.timedelta) -> str:
    text = format_timespan(interval)
    milliseconds = interval.microseconds // 1000
    return f"{text}.{milliseconds:03d}" if milliseconds else text


def parse_queue_options(
    path: Path, raw: object, environ: Mapping[str, str] | None = None, processor_count: int | None = None
) -> QueueOptions:
    """The options in ``raw`` (host.json ``extensions.queues``, or None); raises QueueOptionsError."""
    values = os.environ if environ is None else environ
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise QueueOptionsError(f"{path}: extensions.queues must be an object")
    options = {key.lower(): value for key, value in raw.items()}
    prefix = _OVERRIDE_PREFIX.lower()
    for name, value in values.items():
        if name.lower().startswith(prefix) and name[len(prefix) :]:
            options[name[len(prefix) :].lower()] = value
    batch_size = _integer(path, options, "batchSize", 16, low=1, high=_MAX_BATCH_SIZE)
    processors = processor_count or os.cpu_count() or 1
    if values.get("WEBSITE_SKU", "").lower() == "dynamic":
        processors = 1  # the host's SkuUtility.ProcessorCount on Consumption
    threshold = _integer(path, options, "newBatchThreshold", batch_size // 2 * processors, low=0)
    development = values.get("AZURE_FUNCTIONS_ENVIRONMENT", "").lower() == "development"
    polling_default = _DEVELOPMENT_MAX_POLLING if development else _DEFAULT_MAX_POLLING
    max_polling = _timespan(path, options, "maxPollingInterval", polling_default)
    if max_polling < MIN_POLLING_INTERVAL:
        raise QueueOptionsError(
            f"{path}: extensions.queues.maxPollingInterval must not be less than 00:00:00.1"
        )
    if max_polling > _SUSPICIOUS_POLLING:
        _log.warning(
            "%s: extensions.queues.maxPollingInterval is %s: an empty queue is polled that rarely. A bare "
            'number is days for the host\'s TimeSpan parser; write a TimeSpan such as "00:00:02"',
            path,
            max_polling,
        )
    encoding = str(options.get("messageencoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise QueueOptionsError(f'{path}: extensions.queues.messageEncoding must be "base64" or "none"')
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        max_polling_interval=max_polling,
        visibility_timeout=_timespan(path, options, "visibilityTimeout", dt.timedelta(0)),
        max_dequeue_count=_integer(path, options, "maxDequeueCount", 5, low=1),
        message_encoding="base64" if encoding == "base64" else "none",
    )


def _integer(
    path: Path, options: Mapping[str, object], name: str, default: int, *, low: int, high: int | None = None
) -> int:
    raw = options.get(name.lower())
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise QueueOptionsError(f"{path}: extensions.queues.{name} must be an integer")
    try:
        value = int(raw)
    except ValueError as error:
        raise QueueOptionsError(f"{path}: extensions.queues.{name} must be an integer") from error
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise QueueOptionsError(f"{path}: extensions.queues.{name} must be {bounds} (got {value})")
    return value


def _timespan(path: Path, options: Mapping[str, object], name: str, default: dt.timedelta) -> dt.timedelta:
    raw = options.get(name.lower())
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise QueueOptionsError(f'{path}: extensions.queues.{name} must be a TimeSpan such as "00:00:02"')
    try:
        return parse_timespan(str(raw))
    except ValueError as error:
        raise QueueOptionsError(f"{path}: extensions.queues.{name}: {error}") from error
