"""The report run's view of the HTTP seam: counts what the run sent, and asks delta rounds for minimal
answers.

:class:`shared.graph.client.GraphClient` retries inside one call and reports only the outcome; the summary and
the status resource want the run's requests and retries, so the run's own client sends through a
:class:`ReportTransport` wrapping the process's pooled transport (same connections, its own counters).

The Graph client has no per-call headers, so this is also where ``Prefer: return=minimal`` is added to
``/users/delta`` requests: a changed user then carries only the properties that changed (user-delta:
"returns only the properties that have changed since the last round").
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from shared.core.http import Response, Transport, TransportError

_RETRIED_STATUSES = frozenset({429, 503, 504})


class ReportTransport:
    """A :class:`~shared.core.http.Transport` over ``inner`` with per-run counters. Thread-safe."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.requests = 0
        self.throttled = 0
        self.failed = 0

    @property
    def retries(self) -> int:
        """Requests answered 429/503/504 or lost on the wire: each was (or would have been) sent again."""
        return self.throttled + self.failed

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float,
    ) -> Response:
        sent = dict(headers or {})
        if urlsplit(url).path.rstrip("/").endswith("/users/delta"):
            sent["Prefer"] = "return=minimal"
        with self._lock:
            self.requests += 1
        try:
            response = self._inner.send(method, url, headers=sent, params=params, data=data, timeout=timeout)
        except TransportError:
            with self._lock:
                self.failed += 1
            raise
        if response.status_code in _RETRIED_STATUSES:
            with self._lock:
                self.throttled += 1
        return response
