"""The local tenant's clock: real time plus an offset that tests move forward (``/_emulator/clock``).

Everything in the tenant that ages reads this clock: token ``iat``/``nbf``/``exp`` and lifetimes, the
expiry of authorization codes, sign-in flows, browser sessions and refresh tokens, sign-in frequency,
client-assertion and ``jti`` windows, Key Vault ``created``/``updated``, Graph throttle windows and
delayed mail, and the timestamps in error bodies. A test that used to sleep until something expired
advances the clock instead, the way Lowkey Vault's time shift does for Key Vault.

Contract:

* :meth:`TenantClock.advance` only moves forward (a negative amount is refused), so time never runs
  backwards under a running flow.
* :meth:`TenantClock.rewind` returns to real time; ``POST /_emulator/reset`` calls it, so each test
  starts from the seeded tenant at real time. Tokens issued while the clock was ahead carry future
  ``iat``/``nbf`` after a rewind, as they would for a client whose clock is behind Entra's.
* The TLS certificates (``emulator.pki``) keep real time: the clients checking them read their own
  clocks, not the tenant's.

One tenant runs per process, so the clock is one object per process (:data:`CLOCK`): the handlers that
read the time have no state object at hand, and a second clock could only disagree with the first.
"""

from __future__ import annotations

import datetime as dt
import threading
import time as _time

UTC = dt.UTC


class TenantClock:
    """Real time shifted by a non-negative offset. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    @property
    def offset(self) -> float:
        """Seconds the tenant is ahead of real time."""
        return self._offset

    def time(self) -> float:
        """The tenant's Unix time (what ``time.time()`` would answer in the tenant's timeline)."""
        return _time.time() + self._offset

    def monotonic(self) -> float:
        """A monotonic reading that advances with the offset too (throttle windows, delayed mail)."""
        return _time.monotonic() + self._offset

    def now(self) -> dt.datetime:
        """The tenant's current time, timezone-aware UTC."""
        return dt.datetime.now(UTC) + dt.timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> float:
        """Move the tenant's time forward by ``seconds``; returns the new offset.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        if not seconds >= 0 or seconds == float("inf"):
            raise ValueError("seconds must be a finite number >= 0 (the clock only moves forward)")
        with self._lock:
            self._offset += seconds
            return self._offset

    def rewind(self) -> None:
        """Back to real time (the reset of the whole tenant)."""
        with self._lock:
            self._offset = 0.0


#: The process's tenant clock.
CLOCK = TenantClock()
