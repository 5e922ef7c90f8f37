"""Execution limits of the Functions host: ``functionTimeout`` and Azure's 230 s HTTP limit.

* ``functionTimeout`` (host.json) bounds every invocation, HTTP and timer alike. When
  it passes, the host logs ``Timeout value of 00:05:00 exceeded by function
  'Functions.<name>' (Id: '<id>'). Initiating cancellation.``, the invocation fails
  (an HTTP caller gets 500, a timer run is logged as Failed) and the host restarts the
  Python worker process. devhost cancels an ``async`` function and abandons a sync one
  (its thread runs on, as the worker's would until the restart kills it); it does not
  restart anything, so module state survives here that would be lost in Azure, which
  the log line says.
* Whatever ``functionTimeout`` says, an HTTP function has **230 s** to answer in Azure
  before the front end's load balancer gives up on the request. devhost lets the
  function go on, and logs a warning once it passes that mark, so a hang shows locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

from devhost.timespan import format_timespan

__all__ = ["HTTP_RESPONSE_LIMIT_SECONDS", "FunctionTimeoutError", "log_function_timeout", "warn_when_slow"]

HTTP_RESPONSE_LIMIT_SECONDS = 230.0
_log = logging.getLogger("devhost")


class FunctionTimeoutError(Exception):
    """An invocation ran past ``functionTimeout`` (the host's FunctionTimeoutException)."""

    def __init__(self, function_name: str, timeout: dt.timedelta, invocation_id: str) -> None:
        self.function_name = function_name
        self.timeout = timeout
        self.invocation_id = invocation_id
        super().__init__(
            f"Timeout value of {format_timespan(timeout)} was exceeded by function: Functions.{function_name}"
        )


def log_function_timeout(error: FunctionTimeoutError) -> None:
    """The host's lines for a timed-out invocation, and what devhost does differently."""
    _log.error(
        "Timeout value of %s exceeded by function 'Functions.%s' (Id: '%s'). Initiating cancellation.",
        format_timespan(error.timeout),
        error.function_name,
        error.invocation_id,
    )
    _log.warning(
        "A function timeout has occurred. In Azure the host now restarts the worker process "
        "executing invocationId '%s' (module state is lost, other running invocations fail); "
        "devhost keeps it running",
        error.invocation_id,
    )


@contextlib.contextmanager
def warn_when_slow(seconds: float, function_name: str, invocation_id: str) -> Iterator[None]:
    """Log a warning if the block is still running ``seconds`` after it started.

    Needs a running asyncio loop (uvicorn's); the block itself is never interrupted.
    """
    handle = asyncio.get_running_loop().call_later(
        seconds,
        _log.warning,
        "Function 'Functions.%s' (Id=%s) has not answered after %.0f s: in Azure an HTTP function "
        "must answer within 230 s whatever functionTimeout says, so this caller would already "
        "have had an error from the load balancer",
        function_name,
        invocation_id,
        seconds,
    )
    try:
        yield
    finally:
        handle.cancel()
