"""Group commit of the webhook's queue writes: concurrent posts share one queue message.

At hundreds of notifications per second each post's own queue write (an HTTP call to Storage through the
SDK's pipeline) is most of the request's time and CPU. Here the first post to arrive becomes the leader:
it waits :data:`WINDOW_SECONDS` for others, then writes every item gathered (split under the queue's size
limit) and releases each post once every write of the gathering succeeded; a post never answers before its
items are stored, and a failed write fails every post of its gathering (503: Graph retries them; items a
first write of the gathering had stored are then taken twice, which the worker's de-duplication absorbs).
Alone, a post pays the window and one write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

#: How long a leader gathers other posts' items before writing.
WINDOW_SECONDS = 0.002
#: The most items one gathering takes (the rest go in the next).
MAX_ITEMS = 500


class GroupCommit:
    """Shares queue writes between concurrent callers (module docstring). Thread-safe."""

    def __init__(
        self,
        encode: Callable[[list[dict[str, Any]]], list[bytes]],
        send: Callable[[bytes], None],
        *,
        window: float = WINDOW_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._encode = encode
        self._send = send
        self._window = window
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pending: list[tuple[list[dict[str, Any]], Future[None]]] = []
        self._leading = False

    def submit(self, items: list[dict[str, Any]]) -> None:
        """Return once ``items`` are on the queue.

        Raises:
            What the write raised (StorageUnavailable, ...): the items are not stored.
        """
        done: Future[None] = Future()
        with self._lock:
            self._pending.append((items, done))
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._sleep(self._window)
            self._drain()
        done.result()

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch: list[tuple[list[dict[str, Any]], Future[None]]] = []
                count = 0
                while self._pending and (not batch or count + len(self._pending[0][0]) <= MAX_ITEMS):
                    entry = self._pending.pop(0)
                    batch.append(entry)
                    count += len(entry[0])
                if not batch:
                    self._leading = False
                    return
            self._write(batch)

    def _write(self, batch: list[tuple[list[dict[str, Any]], Future[None]]]) -> None:
        try:
            for message in self._encode([item for items, _ in batch for item in items]):
                self._send(message)
        except BaseException as error:  # each waiting post gets the failure of the write holding its items
            for _, done in batch:
                done.set_exception(error)
            return
        for _, done in batch:
            done.set_result(None)
