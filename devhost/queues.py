"""Storage queue triggers, with the Functions host's ``QueueListener`` / ``QueueProcessor`` semantics.

Per queue-triggered function, one listener:

1. **Polls** the queue for ``batchSize`` messages, received invisible for 10 minutes (the host's fixed
   ``_visibilityTimeout``; renewed every 5 minutes while the function runs, so a long run is not redelivered).
   A queue that does not exist yet, or storage that is down, counts as an empty poll (logged once per outage).
2. **Backs off** as the host's ``RandomizedExponentialBackoffStrategy``: 100 ms after a poll that found
   messages, then ``100 ms + 100 ms * 2^(n-1) * random(0.8, 1.2)`` per empty poll, capped at
   ``maxPollingInterval``.
3. **Bounds concurrency**: after a batch, the next poll waits until at most ``newBatchThreshold`` messages are
   still being processed, so at most ``batchSize + newBatchThreshold`` run at once.
4. **Processes** each message (``QueueProcessor``): a message already dequeued more than
   ``maxDequeueCount`` times goes to the poison queue unprocessed; one that is not valid base64 (with
   ``messageEncoding: base64``) goes there at once, unchanged. Otherwise the function gets a
   ``func.QueueMessage`` (or the body as ``str`` / ``bytes`` when the parameter is so annotated). Success
   deletes the message. A failure (an exception, or ``functionTimeout``) on the ``maxDequeueCount``-th
   dequeue moves it to ``<queue>-poison`` (created if missing, message text unchanged); earlier failures
   make it visible again after ``visibilityTimeout``. A queue whose name ends in ``-poison``, or is too
   long for the suffix, has no poison queue: a failed message is then left invisible (until the 10 minutes
   pass), as the host does to avoid a hot retry loop.

Invocations go through devhost's ``Invoker`` (sync functions in its thread pool, ``async`` ones on the loop,
``functionTimeout`` enforced). Storage calls run in their own small thread pool so they never wait behind busy
functions. On shutdown polling stops, running invocations get the graceful timeout to finish (and complete
their message), then are abandoned (their messages reappear when the invisibility lapses).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
from azure.core.exceptions import AzureError, ResourceNotFoundError

from devhost.invoke import Invoker, new_invocation_id
from devhost.limits import FunctionTimeoutError, log_function_timeout
from devhost.queue_connection import queue_client
from devhost.queue_messages import Backoff, decode_body, trigger_value
from devhost.queue_options import MIN_POLLING_INTERVAL, QueueOptions
from devhost.queue_plan import PlannedQueue

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueMessage

__all__ = ["QueueScheduler"]

_log = logging.getLogger("devhost")
_T = TypeVar("_T")
_RECEIVE_VISIBILITY = dt.timedelta(minutes=10)  # QueueListener._visibilityTimeout
_STORAGE_THREADS = 8


class _Listener:
    def __init__(self, planned: PlannedQueue, owner: QueueScheduler) -> None:
        self.planned = planned
        self._owner = owner
        self._options = owner.options
        self._client: QueueClient = queue_client(planned.connection, planned.queue_name)
        self._poison: QueueClient | None = (
            queue_client(planned.connection, planned.poison_name) if planned.poison_name else None
        )
        self._in_flight = 0
        self._changed = anyio.Event()
        self._outage: str | None = None
        self.sleep_scope: anyio.CancelScope | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def wake(self) -> None:
        """Stop waiting: for a slot below newBatchThreshold, or for the next poll."""
        self._changed.set()
        if self.sleep_scope is not None:
            self.sleep_scope.cancel()

    async def poll(self, group: TaskGroup) -> None:
        backoff = Backoff(MIN_POLLING_INTERVAL, self._options.max_polling_interval)
        found_since_delay = False
        while not self._owner.stopping:
            while self._in_flight > self._options.new_batch_threshold and not self._owner.stopping:
                self._changed = anyio.Event()
                await self._changed.wait()
            if self._owner.is_stopping():
                return
            messages = await self._receive()
            if messages and self._owner.is_stopping():
                await self._release_unprocessed(messages)  # received as the host stopped: leave them
                return
            if messages:
                found_since_delay = True
                for message in messages:
                    self._in_flight += 1
                    group.start_soon(self._process, message)
                continue
            delay = backoff.next_delay(found_since_delay)
            found_since_delay = False
            with anyio.CancelScope() as scope:
                self.sleep_scope = scope
                await anyio.sleep(delay)
            self.sleep_scope = None

    async def _receive(self) -> list[QueueMessage]:
        count = self._options.batch_size
        visibility = int(_RECEIVE_VISIBILITY.total_seconds())

        def receive() -> list[QueueMessage]:
            pages = self._client.receive_messages(
                messages_per_page=count, max_messages=count, visibility_timeout=visibility
            ).by_page()
            return list(next(pages, []))

        try:
            messages = await self._owner.storage(receive)
        except ResourceNotFoundError:
            self._report_outage(f"queue '{self.planned.queue_name}' does not exist yet", error=False)
            return []
        except (AzureError, OSError) as error:
            self._report_outage(f"{type(error).__name__}: {_first_line(error)}", error=True)
            return []
        if self._outage is not None:
            _log.info(
                "Function '%s': polling queue '%s' again", self.planned.spec.name, self.planned.queue_name
            )
            self._outage = None
        return messages

    async def _release_unprocessed(self, messages: list[QueueMessage]) -> None:
        for message in messages:
            release = functools.partial(
                self._client.update_message, message.id, message.pop_receipt, visibility_timeout=0
            )
            with contextlib.suppress(AzureError, OSError):  # else visible when its invisibility lapses
                await self._owner.storage(release)

    def _report_outage(self, reason: str, *, error: bool) -> None:
        if self._outage == reason:
            return  # once per outage, not once per poll
        self._outage = reason
        _log.log(
            logging.WARNING if error else logging.INFO,
            "Function '%s': cannot poll queue '%s' (%s); polling on with back-off",
            self.planned.spec.name,
            self.planned.queue_name,
            reason,
        )

    async def _process(self, message: QueueMessage) -> None:
        try:
            await self._process_one(message)
        except (AzureError, OSError) as error:  # completing failed: the message reappears later
            _log.error(
                "Function '%s': storage error completing message %s (%s); it becomes visible again later",
                self.planned.spec.name,
                message.id,
                type(error).__name__,
            )
        except Exception:  # a devhost bug must not stop the listener or the host
            _log.exception("Function '%s': processing message %s failed", self.planned.spec.name, message.id)
        finally:
            self._in_flight -= 1
            self._changed.set()

    async def _process_one(self, message: QueueMessage) -> None:
        name, queue, options = self.planned.spec.name, self.planned.queue_name, self._options
        dequeue_count = int(message.dequeue_count or 0)
        if dequeue_count > options.max_dequeue_count and self._poison is not None:
            await self._to_poison(message, message.pop_receipt or "")
            return
        body = decode_body(str(message.content or ""), options.message_encoding)
        if body is None:
            _log.warning(
                "Message decoding has failed! Check MessageEncoding settings. MessageId=%s.", message.id
            )
            await self._to_poison(message, message.pop_receipt or "")
            return
        receipt = [message.pop_receipt or ""]
        async with anyio.create_task_group() as renewals:
            renewals.start_soon(self._keep_invisible, message, receipt)
            succeeded = await self._execute(message, body, dequeue_count)
            renewals.cancel_scope.cancel()
        if succeeded:
            await self._owner.storage(functools.partial(self._client.delete_message, message.id, receipt[0]))
        elif self._poison is None:
            _log.warning(
                "Function '%s': queue '%s' has no poison queue; message %s stays invisible until its "
                "visibility timeout passes",
                name,
                queue,
                message.id,
            )
        elif dequeue_count >= options.max_dequeue_count:
            await self._to_poison(message, receipt[0])
        else:
            release = functools.partial(
                self._client.update_message,
                message.id,
                receipt[0],
                visibility_timeout=int(options.visibility_timeout.total_seconds()),
            )
            await self._owner.storage(release)

    async def _execute(self, message: QueueMessage, body: bytes, dequeue_count: int) -> bool:
        spec = self.planned.spec
        value: object = trigger_value(spec, message, body, dequeue_count)
        invocation_id = new_invocation_id()
        _log.info(
            "Executing 'Functions.%s' (Reason='New queue message detected on '%s'.', Id=%s)",
            spec.name,
            self.planned.queue_name,
            invocation_id,
        )
        _log.info(
            "Trigger Details: MessageId: %s, DequeueCount: %d, InsertedOn: %s",
            message.id,
            dequeue_count,
            message.inserted_on.isoformat() if message.inserted_on else "",
        )
        started = time.perf_counter()
        outcome = "Succeeded"
        try:
            await self._owner.invoker.invoke(spec, value, invocation_id=invocation_id)
        except FunctionTimeoutError as error:
            outcome = "Failed"
            log_function_timeout(error)
        except Exception:  # user code must never stop the host
            outcome = "Failed"
            _log.exception("Function 'Functions.%s' raised (Id=%s)", spec.name, invocation_id)
        _log.info(
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)",
            spec.name,
            outcome,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return outcome == "Succeeded"

    async def _keep_invisible(self, message: QueueMessage, receipt: list[str]) -> None:
        """Renew the invisibility every half period (the host's UpdateQueueMessageVisibilityCommand)."""
        period = _RECEIVE_VISIBILITY.total_seconds()
        while True:
            await anyio.sleep(period / 2)
            renew = functools.partial(
                self._client.update_message, message.id, receipt[0], visibility_timeout=int(period)
            )
            try:
                with anyio.CancelScope(shield=True):  # never lose the new pop receipt half-way
                    updated = await self._owner.storage(renew)
            except (AzureError, OSError) as error:
                _log.warning(
                    "Renewing the invisibility of message %s failed (%s)", message.id, type(error).__name__
                )
                continue
            receipt[0] = updated.pop_receipt or receipt[0]

    async def _to_poison(self, message: QueueMessage, pop_receipt: str) -> None:
        poison = self._poison
        if poison is None:
            return
        _log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count,
            self.planned.poison_name,
        )
        text = str(message.content or "")

        def copy() -> None:  # AddMessageAndCreateIfNotExistsAsync
            try:
                poison.send_message(text)
            except ResourceNotFoundError:
                poison.create_queue()
                poison.send_message(text)

        await self._owner.storage(copy)
        await self._owner.storage(functools.partial(self._client.delete_message, message.id, pop_receipt))


class QueueScheduler:
    """Runs one listener per queue-triggered function in one task group."""

    def __init__(
        self,
        queues: list[PlannedQueue],
        *,
        options: QueueOptions,
        invoker: Invoker,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.options = options
        self.invoker = invoker
        self.queues = {planned.spec.name: planned for planned in queues}
        self._shutdown_timeout = shutdown_timeout
        self._listeners: list[_Listener] = []
        self._limiter: anyio.CapacityLimiter | None = None
        self.stopping = False

    def is_stopping(self) -> bool:
        return self.stopping

    async def storage(self, call: Callable[[], _T]) -> _T:
        """Run a blocking storage call in the storage thread pool (never the functions' pool)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(_STORAGE_THREADS)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter, abandon_on_cancel=True)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start polling; on exit stop polling and let running invocations finish (up to the timeout)."""
        async with anyio.create_task_group() as group:
            self._listeners = [_Listener(planned, self) for planned in self.queues.values()]
            for listener in self._listeners:
                group.start_soon(_guarded, listener, group, name=f"queue {listener.planned.spec.name}")
            try:
                yield
            finally:
                await self._stop(group)

    async def _stop(self, group: TaskGroup) -> None:
        self.stopping = True
        if self._listeners:
            _log.info("Stopping %d queue listener(s)", len(self._listeners))
        for listener in self._listeners:
            listener.wake()
        with anyio.move_on_after(self._shutdown_timeout):
            while any(listener.in_flight for listener in self._listeners):
                await anyio.sleep(0.05)
        running = sum(listener.in_flight for listener in self._listeners)
        if running:
            _log.warning(
                "Abandoning %d queue invocation(s) still running after %.0f s",
                running,
                self._shutdown_timeout,
            )
        group.cancel_scope.cancel()


async def _guarded(listener: _Listener, group: TaskGroup) -> None:
    try:
        await listener.poll(group)
    except Exception:  # one broken listener must not take the host down
        _log.exception("Queue listener of '%s' stopped", listener.planned.spec.name)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]
