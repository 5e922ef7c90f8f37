"""Per-invocation context: the request id, readable anywhere below the HTTP layer.

The HTTP layer sets it for the duration of one invocation (the Functions worker runs each synchronous
invocation on one thread, and context variables are per thread), so the Graph client can forward it as
``client-request-id`` and log lines can quote it, without threading it through every signature.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import uuid
from collections.abc import Iterator

from shared.core.patterns import is_guid

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "graph_functions_request_id", default=None
)

# A "sane" incoming id: short, printable, no separators that could forge log lines or headers.
_SANE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


def choose_request_id(*candidates: str | None) -> str:
    """The first candidate that is a sane token (<=128 chars of ``[A-Za-z0-9._:-]``), else a new uuid4."""
    for candidate in candidates:
        if candidate and re.fullmatch(_SANE_ID, candidate.strip()):
            return candidate.strip()
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    """The request id of the invocation running on this thread, if any."""
    return _request_id.get()


def correlation_guid() -> str:
    """A GUID to send as Graph's ``client-request-id``: the request id when it is a GUID, else a new one."""
    rid = _request_id.get()
    return rid if rid and is_guid(rid) else str(uuid.uuid4())


@contextlib.contextmanager
def request_scope(request_id: str) -> Iterator[None]:
    """Make ``request_id`` current for the duration of the ``with`` block."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)
