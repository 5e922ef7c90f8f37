"""Checks shared by devhost's and the local tenant's uvicorn servers, which sleep while idle.

uvicorn's own main loop wakes ten times a second; both servers replace it with one that sleeps until it is
asked to stop, waking only to refresh the ``Date`` header. :func:`check_sleeps_and_stops_at_once` runs such
a server in a thread, with that refresh made a minute long, and checks the two halves of the mechanism."""

from __future__ import annotations

import threading
from collections.abc import Callable

import requests
import uvicorn
from starlette.types import Receive, Scope, Send

#: Long enough that a server only stopping on its next Date refresh would fail the join below.
STOP_WITHIN_SECONDS = 10.0
#: How long the check watches an idle server: uvicorn's own loop ticks at least twice in that time.
IDLE_WATCH_SECONDS = 0.25


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every HTTP request 200 with an empty body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def check_sleeps_and_stops_at_once(
    server: uvicorn.Server, url: str, stop: Callable[[uvicorn.Server], None]
) -> None:
    """Start ``server`` (its Date refresh set to a minute by the caller), check that it answers with a
    ``Date`` header and ticks once while idle, then ``stop`` it from this thread: it must return at once,
    not at its next refresh."""
    ticks: list[int] = []
    on_tick = server.on_tick

    async def counting(counter: int) -> bool:
        ticks.append(counter)
        return await on_tick(counter)

    server.on_tick = counting  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        started = threading.Event()
        while not server.started and thread.is_alive():
            started.wait(0.01)
        assert server.started, "the server did not start"
        response = requests.get(url, timeout=5)
        assert response.status_code == 200
        assert response.headers.get("date"), "no Date header: the first tick did not set the default headers"
        threading.Event().wait(IDLE_WATCH_SECONDS)
        assert len(ticks) == 1, f"an idle server ticked {len(ticks)} times in {IDLE_WATCH_SECONDS} s"
    finally:
        stop(server)
        thread.join(STOP_WITHIN_SECONDS)
    assert not thread.is_alive(), "the stop did not wake the server: it waited for its next Date refresh"
    assert len(ticks) == 2, ticks  # one more, to see the stop
