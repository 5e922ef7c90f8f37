"""``GET /api/health``: anonymous liveness. No settings, no secrets, no upstream calls.

It is ``async def`` on purpose: the Python worker awaits coroutines on its event loop, while ``def``
functions wait for a free thread of its pool (``PYTHON_THREADPOOL_THREAD_COUNT``). When every thread is
busy with slow Graph calls, a sync health check queues behind them (28.7 s was measured with 6 threads
under a Graph latency fault) and a liveness probe would restart a healthy instance. The body never blocks,
so it can run on the loop. (No ``from __future__ import annotations``: the worker reads the real classes.)
"""

import azure.functions as func

from shared.core import choose_request_id
from shared.version import __version__
from shared.web import json_response, new_blueprint

bp = new_blueprint()


@bp.function_name("health")
@bp.route(route="api/health", methods=[func.HttpMethod.GET])
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """``{"status": "ok", "version": "<app version>"}`` whenever the worker's event loop runs, with the
    standard JSON headers and ``x-request-id`` of every endpoint (:mod:`shared.web.api`)."""
    request_id = choose_request_id(req.headers.get("x-request-id"), req.headers.get("client-request-id"))
    return json_response({"status": "ok", "version": __version__}, request_id=request_id)
