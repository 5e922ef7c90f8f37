"""Services built on first use, exactly once per holder: the base of the process's and each tenant's
service sets (:mod:`shared.app`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


class BuiltOnce:
    """Builds each service on first use and keeps it; thread-safe (double-checked under one lock, which is
    re-entrant because a service's builder asks for the services it needs)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def _once(self, attribute: str, build: Callable[[], _T]) -> _T:
        """The value of ``attribute``, built with ``build`` when it is still None."""
        value: _T | None = getattr(self, attribute)
        if value is None:
            with self._lock:
                value = getattr(self, attribute)
                if value is None:
                    value = build()
                    setattr(self, attribute, value)
        return value
