"""The local tenant's clock: real time plus an offset that tests move forward (``/_emulator/clock``).

Everything in the tenant that ages reads this clock: token ``iat``/``nbf``/``exp`` and lifetimes, the
expiry of authorization codes, sign-in flows, browser sessions and refresh tokens, sign-in frequency,
client-assertion and ``jti`` windows, Key Vault ``created``/``updated``, Graph throttle windows and
delayed mail, and the timestamps in error bodies. A test that used to sleep until something expired
advances the clock instead, the way Lowkey Vault's time shift does for Key Vault.

Contract:

* :meth:`TenantClock.advance` only moves forward (a negative amount is refused), so time never runs
  backwards under a running flow.
* :meth:`TenantClock.freeze` stops it (only ``advance`` moves it then) and :meth:`TenantClock.thaw`
  lets it run again at real time plus the offset: frozen time is skipped forward, never replayed.
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
    """Real time shifted by a non-negative offset, optionally frozen. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        #: (time.time(), time.monotonic()) when frozen; None while running.
        self._frozen: tuple[float, float] | None = None

    @property
    def offset(self) -> float:
        """Seconds the tenant is ahead of real time (while frozen: at the moment it froze)."""
        return self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def time(self) -> float:
        """The tenant's Unix time (what ``time.time()`` would answer in the tenant's timeline)."""
        frozen = self._frozen
        return (frozen[0] if frozen else _time.time()) + self._offset

    def monotonic(self) -> float:
        """A monotonic reading that advances with the offset too (throttle windows, delayed mail)."""
        frozen = self._frozen
        return (frozen[1] if frozen else _time.monotonic()) + self._offset

    def now(self) -> dt.datetime:
        """The tenant's current time, timezone-aware UTC."""
        return dt.datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> float:
        """Move the tenant's time forward by ``seconds`` (frozen or not); returns the new offset.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        if not seconds >= 0 or seconds == float("inf"):
            raise ValueError("seconds must be a finite number >= 0 (the clock only moves forward)")
        with self._lock:
            self._offset += seconds
            return self._offset

    def freeze(self) -> None:
        """Stop the tenant's time where it is: only :meth:`advance` moves it (a token bucket does not
        refill, a Retry-After does not run out, however slow the machine)."""
        with self._lock:
            if self._frozen is None:
                self._frozen = (_time.time(), _time.monotonic())

    def thaw(self) -> None:
        """Run again, at real time plus the offset: the time the clock stood still is skipped forward,
        never replayed backwards."""
        with self._lock:
            self._frozen = None

    def rewind(self) -> None:
        """Back to real time, running (the reset of the whole tenant)."""
        with self._lock:
            self._offset = 0.0
            self._frozen = None


#: The process's tenant clock.
CLOCK = TenantClock()
