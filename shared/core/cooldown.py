"""Timing guards shared by the token provider and the signing-key cache.

Two small, thread-safe primitives, on an injectable monotonic clock:

* :class:`Cooldown`: "at most one attempt per interval" (a refetch caused by an unknown key id, a
  credential re-read caused by a rejection, a background refresh during an outage).
* :class:`HeldFailure`: "answer a recent failure from memory" (a vault read, an authority lookup or a
  token request that just failed is re-raised to later callers for a hold period, so an outage costs the
  dependency one attempt per period however many callers arrive).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable

from shared.core.errors import GraphFunctionsError

Clock = Callable[[], float]


class Cooldown:
    """Allows one attempt, then none until ``interval`` seconds have passed since the last one started.

    A new cooldown is ready at once (no attempt yet).
    """

    def __init__(self, interval: float, *, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def ready(self) -> bool:
        """True when no attempt started within the interval (does not start one)."""
        last = self._last
        return last is None or self._clock() - last >= self.interval

    def try_start(self) -> bool:
        """Start an attempt now if :meth:`ready`; True when this caller may go ahead (atomic)."""
        with self._lock:
            if not self.ready():
                return False
            self._last = self._clock()
            return True

    def start(self) -> None:
        """Record an attempt starting now, ready or not."""
        with self._lock:
            self._last = self._clock()

    def remaining(self) -> float:
        """Seconds until :meth:`ready` (0 when ready)."""
        last = self._last
        return 0.0 if last is None else max(0.0, self.interval - (self._clock() - last))


class HeldFailure:
    """Remembers one failure until a deadline; :meth:`raise_if_held` re-raises a copy meanwhile.

    The copy's ``retry_after`` (when the error has one) is the time left in the hold, rounded up, so a
    caller told to come back in N seconds finds the dependency tried again by then.
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._error: GraphFunctionsError | None = None
        self._until = 0.0

    def hold(self, error: GraphFunctionsError, seconds: float) -> None:
        """Answer ``error`` for the next ``seconds`` (replacing any failure held before). An error whose
        ``retry_after`` is shorter than the hold is told the hold's length (rounded up): the caller that
        raises it would otherwise come back into the hold (a 1 s Retry-After under a 5 s hold). A longer
        one is left as it is: the dependency's own advice to callers, while the app tries sooner."""
        if error.retry_after is not None and error.retry_after < seconds:
            error.retry_after = max(1, math.ceil(seconds))
        with self._lock:
            self._error, self._until = error, self._clock() + seconds

    def clear(self) -> None:
        with self._lock:
            self._error, self._until = None, 0.0

    def remaining(self) -> float:
        """Seconds left in the hold (0 when nothing is held)."""
        return max(0.0, self._until - self._clock()) if self._error is not None else 0.0

    def held(self) -> GraphFunctionsError | None:
        """A copy of the held error with ``retry_after`` set to the time left, or None."""
        with self._lock:
            error, remaining = self._error, self._until - self._clock()
        if error is None or remaining <= 0:
            return None
        error = copy.copy(error)
        if error.retry_after is not None:
            error.retry_after = max(1, math.ceil(remaining))
        return error

    def raise_if_held(self) -> None:
        """Raise the held failure (a copy) while the hold lasts; return otherwise."""
        error = self.held()
        if error is not None:
            raise error
