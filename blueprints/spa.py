"""``GET /spa/`` and its files: the single-page client (MSAL.js sign-in, then the API with the person's own
token; docs/on-behalf-of.md). Public: the client holds no secret; ``/spa/config.json`` names the
registration (``SPA_CLIENT_ID``) and answers 404 without it."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.app import current
from shared.core import GraphFunctionsError
from shared.web import SpaConfig, new_blueprint, spa_asset_response, spa_config_response

bp = new_blueprint()
logger = logging.getLogger(__name__)


@bp.function_name("spa")
@bp.route(route="spa/{*path}", methods=[func.HttpMethod.GET])
def spa(req: func.HttpRequest) -> func.HttpResponse:
    """The client's files (strict CSP, no inline script) and its configuration."""
    path = req.route_params.get("path") or ""
    config: SpaConfig | None = None
    sign_in_origin = ""
    try:
        settings = current().settings()
        sign_in_origin = settings.authority_host
        if settings.spa_client_id:
            config = SpaConfig(
                client_id=settings.spa_client_id,
                authority=settings.authority,
                api_scope=f"api://{settings.client_id}/access_as_user",
            )
    except GraphFunctionsError as error:  # a misconfiguration: the files still load, config.json is a 404
        logger.warning("The single-page client has no configuration: %s", error.code)
    if path == "config.json":
        return spa_config_response(config, sign_in_origin=sign_in_origin)
    return spa_asset_response(path, sign_in_origin=sign_in_origin)
