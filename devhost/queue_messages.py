"""Queue message bodies: the host's decoding, the back-off between polls, and the value a function gets."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.functions.queue import QueueMessage as FunctionQueueMessage

from devhost.discovery import FunctionSpec

if TYPE_CHECKING:
    from azure.storage.queue import QueueMessage

__all__ = ["Backoff", "decode_body", "trigger_value"]


class Backoff:
    """The host's ``RandomizedExponentialBackoffStrategy`` (randomization factor 0.2, step = minimum)."""

    def __init__(
        self, minimum: dt.timedelta, maximum: dt.timedelta, rng: Callable[[], float] = random.random
    ):
        self.minimum = minimum.total_seconds()
        self.maximum = max(maximum.total_seconds(), self.minimum)
        self._rng = rng
        self._current = self.minimum
        self._exponent = 1

    def next_delay(self, succeeded: bool) -> float:
        """Seconds to wait before the next poll; ``succeeded``: messages were found since the last wait."""
        if succeeded:
            self._current, self._exponent = self.minimum, 1
        elif self._current != self.maximum:
            factor = 0.8 + 0.4 * self._rng()
            interval = self.minimum + factor * 2 ** (self._exponent - 1) * self.minimum
            if interval < self.maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current


def decode_body(text: str, encoding: str) -> bytes | None:
    """The message body; None when ``base64`` encoding is configured and ``text`` is not base64.

    .NET's ``Convert.FromBase64String`` ignores white space and requires correct padding."""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def trigger_value(spec: FunctionSpec, message: QueueMessage, body: bytes, dequeue_count: int) -> Any:
    kind = spec.queue.parameter_type if spec.queue else "message"
    if kind == "bytes":
        return body
    if kind == "str":
        return body.decode("utf-8", errors="replace")
    return FunctionQueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )
