"""Liveness while every worker thread is busy: ``/api/health`` is ``async``, so it answers from devhost's
event loop while slow Graph calls hold all the sync threads (before: 28.7 s measured with 6 threads)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import call
from tests.integration.fixtures import FreshHosts
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

THREADS = 2
GRAPH_LATENCY_MS = 6000
#: Generous next to the Graph latency: a health check queued behind the threads would take >= 6 s.
HEALTH_BOUND_SECONDS = 2.5


def test_health_answers_while_every_worker_thread_waits_for_graph(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller
) -> None:
    host: DevHostProcess = fresh_hosts.start(
        tenant, "busy-threads", env={"PYTHON_THREADPOOL_THREAD_COUNT": str(THREADS)}
    )
    token = caller.token()
    assert call(host, "/api/users", token, {"top": "1"}).status_code == 200  # warm: token and keys cached
    tenant.control(  # status 0: latency only, then Graph's own answer
        "POST",
        "/faults",
        {"service": "graph", "path": "^/v1.0/users$", "status": 0, "latencyMs": GRAPH_LATENCY_MS},
        expect=201,
    )
    finished: list[float] = []
    statuses: list[int] = []

    def slow_listing() -> None:
        response = call(host, "/api/users", token, {"top": "1"})
        statuses.append(response.status_code)
        finished.append(time.monotonic())

    workers = [threading.Thread(target=slow_listing) for _ in range(THREADS * 2)]  # busy threads + a queue
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # let the worker threads pick the listings up and block on Graph
    started = time.monotonic()
    health = call(host, "/api/health", timeout=30)
    answered = time.monotonic()
    for worker in workers:
        worker.join(timeout=60)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert statuses == [200] * len(workers), host.log()[-4000:]  # the listings ran (slowly) meanwhile
    assert answered < min(finished), "health waited for a busy worker thread"
    assert answered - started < HEALTH_BOUND_SECONDS, answered - started
