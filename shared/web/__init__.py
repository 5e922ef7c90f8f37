"""The HTTP surface shared by every capability: JSON responses and the error envelope (:mod:`.api`), pages
(:mod:`.pages`: Jinja2, CSP, error pages, form checks), the browser's origin, cookies and ``next`` paths
(:mod:`.cookies`) and the OpenAPI building blocks (:mod:`.openapi_parts`)."""

from shared.web.api import JsonBody, JsonResponse, json_response, new_blueprint
from shared.web.cookies import (
    CALLBACK_PATH,
    CONSENT_CALLBACK_PATH,
    FLOW_COOKIE,
    FLOW_COOKIE_SECONDS,
    SESSION_COOKIE,
    app_origin,
    clear_cookie,
    cookie_value,
    safe_next,
    set_cookie,
)
from shared.web.pages import (
    STATIC_DIR,
    Chrome,
    Page,
    PageRequest,
    Redirect,
    require_csrf_token,
    require_same_origin,
)
from shared.web.spa import SpaConfig
from shared.web.spa import asset_response as spa_asset_response
from shared.web.spa import config_response as spa_config_response

__all__ = [
    "CALLBACK_PATH",
    "CONSENT_CALLBACK_PATH",
    "FLOW_COOKIE",
    "FLOW_COOKIE_SECONDS",
    "SESSION_COOKIE",
    "STATIC_DIR",
    "Chrome",
    "JsonBody",
    "JsonResponse",
    "Page",
    "PageRequest",
    "Redirect",
    "SpaConfig",
    "app_origin",
    "clear_cookie",
    "cookie_value",
    "json_response",
    "new_blueprint",
    "require_csrf_token",
    "require_same_origin",
    "safe_next",
    "set_cookie",
    "spa_asset_response",
    "spa_config_response",
]
