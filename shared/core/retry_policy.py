"""The Graph client's retry policy as data and pure functions: which answers are retried for which
methods, how long to wait, and how long one call can last. No I/O; used by :mod:`shared.graph.client` and by
settings validation (:mod:`shared.core.settings`), so it imports only the standard library."""

from __future__ import annotations

import email.utils
import re
import time

RETRYABLE_STATUSES = frozenset({429, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
_DELTA_SECONDS = r"[0-9]{1,9}"


def worst_case_call_seconds(timeout: float, budget: float) -> float:
    """The longest one Graph call can take (``shared.graph.client`` module docstring): every attempt, the
    token renewal one included, starts within the budget, and lasts at most a connect timeout plus a read
    timeout.
    Token acquisition and the time a request waits for a worker thread come on top."""
    return budget + 2 * timeout


def backoff_seconds(retries: int, jitter: float) -> float:
    """Exponential backoff with "equal jitter" (``jitter`` in [0, 1)): half fixed, half random, capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2.0**retries))
    return ceiling / 2 + jitter * ceiling / 2


def may_resend(method: str, status: int, retry_after: float | None) -> bool:
    """True when a retryable ``status`` may be retried for ``method``: always for idempotent methods;
    for others only when Graph says it did not process the request (:func:`not_processed`)."""
    return method in IDEMPOTENT_METHODS or not_processed(status, retry_after)


def not_processed(status: int, retry_after: float | None) -> bool:
    """True when Graph says it did not process the request: a 429, or a 503 that names a retry time.
    A 504 (or a 503 without ``Retry-After``) may come from a gateway after the service acted on it."""
    return status == 429 or (status == 503 and retry_after is not None)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), None if absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(_DELTA_SECONDS, text):
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
