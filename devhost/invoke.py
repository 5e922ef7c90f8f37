"""Calling user functions the way the Python worker does.

* The trigger value is passed under the trigger binding's parameter name
  (``req``, ``timer``, ...), and a ``context`` parameter, when declared, gets a
  ``func.Context``.
* ``async def`` functions are awaited on the event loop; plain functions run in
  a thread pool of ``PYTHON_THREADPOOL_THREAD_COUNT`` threads, so slow sync
  functions run concurrently, as in the worker.
* Every invocation is bounded by host.json's ``functionTimeout``: past it, an
  ``async`` function is cancelled, a sync one abandoned (its thread runs on), and
  ``FunctionTimeoutError`` is raised (see ``devhost.limits``).
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import threading
import uuid
from typing import Any, cast

import anyio
import anyio.to_thread
import azure.functions as func
from azure.functions import _abc as func_abc

from devhost.discovery import FunctionSpec
from devhost.limits import FunctionTimeoutError

__all__ = ["InvocationContext", "Invoker", "new_invocation_id"]


def new_invocation_id() -> str:
    return str(uuid.uuid4())


class _NoException(func_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func_abc.RpcException:
        return _NoException()


class _TraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str | None) -> None:
        self._trace_parent = trace_parent or (f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(func.Context):
    """The ``context`` argument: invocation id, function name and directory."""

    def __init__(
        self,
        *,
        invocation_id: str,
        function_name: str,
        function_directory: str,
        trace_parent: str | None = None,
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext(trace_parent)
        self._thread_local = threading.local()
        self._thread_local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The worker hands out an instance although the ABC says "type".
        return cast(type[threading.local], self._thread_local)

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


class Invoker:
    """Runs user functions: async on the loop, sync in a bounded thread pool."""

    def __init__(
        self,
        *,
        thread_count: int,
        function_directory: str,
        function_timeout: dt.timedelta | None = None,
    ) -> None:
        self.thread_count = thread_count
        self.function_timeout = function_timeout
        self._function_directory = function_directory
        self._limiter: anyio.CapacityLimiter | None = None
        self._lock = threading.Lock()
        self._threads_running = 0

    @property
    def threads_running(self) -> int:
        """Sync invocations still running in a worker thread (even if abandoned)."""
        with self._lock:
            return self._threads_running

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: object,
        *,
        invocation_id: str,
        trace_parent: str | None = None,
    ) -> Any:
        """The function's result; ``FunctionTimeoutError`` once ``function_timeout`` passes."""
        if self.function_timeout is None:
            return await self._call(spec, trigger_value, invocation_id, trace_parent)
        with anyio.move_on_after(self.function_timeout.total_seconds()):
            return await self._call(spec, trigger_value, invocation_id, trace_parent)
        raise FunctionTimeoutError(spec.name, self.function_timeout, invocation_id)

    async def _call(
        self, spec: FunctionSpec, trigger_value: object, invocation_id: str, trace_parent: str | None
    ) -> Any:
        kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value}
        if spec.wants_context:
            kwargs["context"] = InvocationContext(
                invocation_id=invocation_id,
                function_name=spec.name,
                function_directory=self._function_directory,
                trace_parent=trace_parent,
            )
        if spec.is_async:
            return await spec.user_function(**kwargs)
        if self._limiter is None:  # created lazily: it needs a running loop
            self._limiter = anyio.CapacityLimiter(self.thread_count)
        call = functools.partial(self._run_counted, spec.user_function, kwargs)
        # abandon_on_cancel: functionTimeout or a graceful-shutdown deadline can
        # give up on a stuck sync function; its thread is never joined.
        return await anyio.to_thread.run_sync(call, limiter=self._limiter, abandon_on_cancel=True)

    def _run_counted(self, function: Any, kwargs: dict[str, Any]) -> Any:
        with self._lock:
            self._threads_running += 1
        try:
            return function(**kwargs)
        finally:
            with self._lock:
                self._threads_running -= 1
