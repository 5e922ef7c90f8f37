"""The served app's clock under devhost: real monotonic time plus an offset that tests move forward.

Azure has no such thing: this exists so that a test can let the app's own time pass (a token's renewal
point, a held failure, a run's retry budget) without sitting through it. It only reaches an app that is
wired to it: devhost's ``--preload`` imports a module before the app (``tests/support/app_clock.py`` builds
the app's runtime with :data:`CLOCK`'s ``monotonic`` and ``sleep``), so production code never reads it and
the app's defaults stay ``time.monotonic`` / ``time.sleep``.

Contract:

* :meth:`DevClock.monotonic` never runs backwards (:meth:`DevClock.advance` refuses a negative amount), so
  an app that compares two readings never sees a negative duration.
* :meth:`DevClock.freeze` stops it (only :meth:`DevClock.advance` moves it then), so a test's steps do not
  depend on how fast a loaded machine runs them; thawing lets it run again from where it stood (the frozen
  span is not replayed, the clock never jumps back or forward).
* :meth:`DevClock.sleep` really sleeps, unless sleeps are skipped (:meth:`DevClock.skip_sleeps`): then it
  moves the clock forward by the amount at once, so a retry that waits out a ``Retry-After`` costs no real
  time while every deadline and budget computed on this clock still runs out as it would.
* ``GET /admin/devhost/clock`` answers ``{"offsetSeconds", "frozen", "skipSleeps"}``; ``POST`` with any of
  ``{"advanceSeconds": n, "frozen": bool, "skipSleeps": bool}`` changes it (400 ``invalid_clock`` for
  anything else). The devhost of a test starts at offset 0, running, with real sleeps.
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
        self._frozen_at: float | None = None  # time.monotonic() when frozen
        self._skip_sleeps = False

    @property
    def offset(self) -> float:
        """Seconds this clock is ahead of ``time.monotonic()`` (while running; thawing lowers it by the
        frozen span)."""
        return self._offset

    @property
    def sleeps_skipped(self) -> bool:
        return self._skip_sleeps

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def monotonic(self) -> float:
        """``time.monotonic()`` (where it stood when frozen) plus the offset."""
        frozen_at = self._frozen_at
        return (time.monotonic() if frozen_at is None else frozen_at) + self._offset

    def freeze(self, frozen: bool) -> None:
        """Stop the clock (``frozen``) or let it run again from where it stands."""
        with self._lock:
            now = time.monotonic()
            if frozen and self._frozen_at is None:
                self._frozen_at = now
            elif not frozen and self._frozen_at is not None:
                # Running again from the frozen reading: the real time that passed meanwhile is not counted.
                self._offset -= now - self._frozen_at
                self._frozen_at = None

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
        return {"offsetSeconds": self._offset, "frozen": self.frozen, "skipSleeps": self._skip_sleeps}

    def apply(self, body: Any) -> dict[str, Any]:
        """Apply a ``POST /admin/devhost/clock`` body; returns :meth:`describe`.

        Raises:
            ValueError: the body is not an object of some of ``advanceSeconds`` (a number >= 0),
                ``frozen`` and ``skipSleeps`` (booleans), or has other keys.
        """
        keys = {"advanceSeconds", "frozen", "skipSleeps"}
        if not isinstance(body, dict) or not body or set(body) - keys:
            raise ValueError(
                "expected some of {'advanceSeconds': number >= 0, 'frozen': bool, 'skipSleeps': bool}"
            )
        skip, frozen = body.get("skipSleeps"), body.get("frozen")
        if any(value is not None and not isinstance(value, bool) for value in (skip, frozen)):
            raise ValueError("frozen and skipSleeps must be booleans")
        seconds = body.get("advanceSeconds")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("advanceSeconds must be a number")
            self.advance(float(seconds))
        if skip is not None:
            self.skip_sleeps(skip)
        if frozen is not None:
            self.freeze(frozen)
        return self.describe()


#: The process's clock (devhost serves one app per process).
CLOCK = DevClock()
