"""``GET /api/health``: anonymous liveness. No settings, no secrets, no upstream calls."""

from __future__ import annotations

import azure.functions as func

from shared.api import ApiRequest, JsonBody, json_endpoint, new_blueprint
from shared.version import __version__

bp = new_blueprint()


@bp.function_name("health")
@bp.route(route="api/health", methods=[func.HttpMethod.GET])
@json_endpoint
def health(request: ApiRequest) -> JsonBody:
    """``{"status": "ok", "version": "<app version>"}`` whenever the worker can run Python."""
    return {"status": "ok", "version": __version__}
