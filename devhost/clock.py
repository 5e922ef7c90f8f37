"""The served app's clock under devhost: real monotonic time plus an offset that tests move forward.

Azure has no such thing: this exists so that a test can let the app's own time pass (a token's renewal
point, a held failure, a run's retry budget) without sitting through it. It only reaches an app that is
wired to it: devhost's ``--preload`` imports a module before the app (``tests/support/app_clock.py`` builds
the app's runtime with :data:`CLOCK`'s ``monotonic`` and ``sleep``), so production code never reads it and
the app's defaults stay ``time.monotonic`` / ``time.sleep``.

Contract:

* :meth:`DevClock.monotonic` never runs backwards: the offset only grows (:meth:`DevClock.advance` refuses a
  negative amount), so an app that compares two readings never sees a negative duration.
* :meth:`DevClock.sleep` really sleeps, unless sleeps are skipped (:meth:`DevClock.skip_sleeps`): then it
  moves the clock forward by the amount at once, so a retry that waits out a ``Retry-After`` costs no real
  time while every deadline and budget computed on this clock still runs out as it would.
* ``GET /admin/devhost/clock`` answers ``{"offsetSeconds", "skipSleeps"}``; ``POST`` with
  ``{"advanceSeconds": n}`` and/or ``{"skipSleeps": bool}`` changes it (400 ``invalid_clock`` for anything
  else). The devhost of a test starts at offset 0 with real sleeps.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any


class DevClock:
    """Thread-safe; one per process (:data:`CLOCK`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._skip_sleeps = False

    @property
    def offset(self) -> float:
        """Seconds this clock is ahead of ``time.monotonic()``."""
        return self._offset

    @property
    def sleeps_skipped(self) -> bool:
        return self._skip_sleeps

    def monotonic(self) -> float:
        """``time.monotonic()`` plus the offset."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new offset.

        Raises:
            ValueError: ``seconds`` is negative, NaN or infinite (the clock only moves forward).
        """
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError("seconds must be a finite number >= 0 (the clock only moves forward)")
        with self._lock:
            self._offset += seconds
            return self._offset

    def skip_sleeps(self, skip: bool) -> None:
        """With ``skip``, :meth:`sleep` advances the clock instead of sleeping."""
        self._skip_sleeps = skip

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (see :meth:`skip_sleeps`)."""
        if self._skip_sleeps:
            self.advance(max(0.0, seconds))
        else:
            time.sleep(seconds)

    def describe(self) -> dict[str, Any]:
        return {"offsetSeconds": self._offset, "skipSleeps": self._skip_sleeps}

    def apply(self, body: Any) -> dict[str, Any]:
        """Apply a ``POST /admin/devhost/clock`` body; returns :meth:`describe`.

        Raises:
            ValueError: the body is not an object of ``advanceSeconds`` (a number >= 0) and/or
                ``skipSleeps`` (a boolean), or has other keys.
        """
        if not isinstance(body, dict) or not body or set(body) - {"advanceSeconds", "skipSleeps"}:
            raise ValueError("expected {'advanceSeconds': number >= 0} and/or {'skipSleeps': boolean}")
        skip = body.get("skipSleeps")
        if skip is not None and not isinstance(skip, bool):
            raise ValueError("skipSleeps must be a boolean")
        seconds = body.get("advanceSeconds")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("advanceSeconds must be a number")
            self.advance(float(seconds))
        if skip is not None:
            self.skip_sleeps(skip)
        return self.describe()


#: The process's clock (devhost serves one app per process).
CLOCK = DevClock()
