"""Background work of the app's own: one daemon thread per job, named for what it does (thread dumps and
logs show it), never joined (a process that stops abandons the job, which is then redone on demand)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def start_daemon(target: Callable[[], None], *, name: str) -> None:
    """Run ``target`` on a new daemon thread called ``name``."""
    threading.Thread(target=target, name=name, daemon=True).start()
