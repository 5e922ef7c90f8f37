"""``GET /api/openapi.json``: the OpenAPI document of the JSON API (anonymous; it holds no secrets)."""

from __future__ import annotations

import azure.functions as func

from shared.app import openapi_document
from shared.edge import Call, api
from shared.web import JsonBody, new_blueprint

bp = new_blueprint()


@bp.function_name("openapi_document")
@bp.route(route="api/openapi.json", methods=[func.HttpMethod.GET])
@api(None)
def openapi(call: Call) -> JsonBody:
    """The OpenAPI 3.0.3 document kept in :mod:`shared.app.openapi`."""
    return openapi_document()
