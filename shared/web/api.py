"""The HTTP layer every JSON endpoint goes through: request ids, JSON responses, error translation.

:func:`json_endpoint` turns a handler ``(req, request_id) -> JsonBody | JsonResponse`` into an Azure
Functions HTTP function ``(req: func.HttpRequest) -> func.HttpResponse`` that

* assigns a request id (a sane incoming ``x-request-id`` / ``client-request-id``, else a uuid4), makes it
  current for the invocation (:mod:`shared.core.context`) and returns it as ``x-request-id``;
* renders results as UTF-8 JSON with ``cache-control: no-store``;
* translates :class:`GraphFunctionsError` to ``{"error": {"code", "message", "requestId"}}`` with its status
  and headers (``Retry-After``, ``WWW-Authenticate``), and any other exception to a 500 ``internal_error``
  whose body has no stack trace (the trace goes to the log, with the request id). Configuration and
  credential errors answer a generic sentence; their details go to the log under the request id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

import azure.functions as func

from shared.core.context import choose_request_id, request_scope
from shared.core.errors import GraphFunctionsError
from shared.core.records import Record

logger = logging.getLogger(__name__)

#: No headers beyond the defaults (read-only: one value shared by every such response).
EMPTY_HEADERS: Mapping[str, str] = MappingProxyType({})

JsonBody: TypeAlias = dict[str, Any]

BASE_HEADERS: Mapping[str, str] = {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


class JsonResponse(Record):
    """A handler result with a status or headers other than 200 / the defaults."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = EMPTY_HEADERS


#: A JSON handler: the Functions request and its request id in, a body or a response out.
Handler = Callable[[func.HttpRequest, str], JsonBody | JsonResponse]
HttpFunction = Callable[[func.HttpRequest], func.HttpResponse]


def new_blueprint() -> func.Blueprint:
    """A Functions blueprint (``azure.functions`` leaves its constructor unannotated; typed here once)."""
    return func.Blueprint()  # type: ignore[no-untyped-call]


def json_response(
    body: Any, *, status: int = 200, request_id: str, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    """A JSON ``HttpResponse`` with the standard headers."""
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return func.HttpResponse(
        payload,
        status_code=status,
        headers={**BASE_HEADERS, **(headers or {}), "x-request-id": request_id},
        mimetype="application/json",
        charset="utf-8",
    )


def error_response(error: GraphFunctionsError, *, request_id: str) -> func.HttpResponse:
    """The JSON error envelope for ``error``, with its status and headers. The message is the error's
    public one: operator details (settings, vault names, AADSTS text) stay in the log."""
    body = {"error": {"code": error.code, "message": error.public_message, "requestId": request_id}}
    return json_response(body, status=error.status, request_id=request_id, headers=error.response_headers())


def internal_error_response(*, request_id: str) -> func.HttpResponse:
    body = {
        "error": {
            "code": "internal_error",
            "message": "An unexpected error occurred. Quote the request id when reporting it.",
            "requestId": request_id,
        }
    }
    return json_response(body, status=500, request_id=request_id)


def json_endpoint(handler: Handler) -> HttpFunction:
    """Wrap ``handler`` as a Functions HTTP function (see module docstring).

    The wrapper deliberately has the exact signature the Functions worker binds, ``(req: HttpRequest)``, and
    no ``__wrapped__``: the worker inspects the signature to match parameters to bindings.
    """
    name = handler.__name__

    def respond(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
        try:
            result = handler(req, request_id)
            if isinstance(result, JsonResponse):
                return json_response(
                    result.body, status=result.status, headers=result.headers, request_id=request_id
                )
            return json_response(result, request_id=request_id)
        except GraphFunctionsError as error:
            _log_error(name, request_id, error)
            return error_response(error, request_id=request_id)
        except Exception:
            logger.exception("Unhandled error in %s (request %s)", name, request_id)
            return internal_error_response(request_id=request_id)

    return http_function(handler, respond)


def http_function(
    handler: Callable[..., Any], respond: Callable[[func.HttpRequest, str], func.HttpResponse]
) -> HttpFunction:
    """The Functions HTTP function for ``handler`` (its name, docstring and module): it assigns the request
    id (:func:`~shared.core.context.choose_request_id`), makes it current while ``respond(req, request_id)``
    builds the response, and logs the outcome at debug level. Shared by JSON endpoints and HTML pages.

    The function has the exact signature the worker binds, ``(req: HttpRequest)``, real annotation classes
    (not the strings ``from __future__ import annotations`` leaves: the worker checks them) and no
    ``__wrapped__``.
    """
    name = handler.__name__

    def function(req: func.HttpRequest) -> func.HttpResponse:
        request_id = choose_request_id(req.headers.get("x-request-id"), req.headers.get("client-request-id"))
        started = time.perf_counter()
        with request_scope(request_id):
            response = respond(req, request_id)
        logger.debug(  # the host records every request already; this line adds the request id
            "%s %s -> %d in %.1f ms (request %s)",
            req.method,
            name,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response

    function.__name__ = name
    function.__qualname__ = handler.__qualname__
    function.__doc__ = handler.__doc__
    function.__module__ = handler.__module__
    function.__annotations__ = {"req": func.HttpRequest, "return": func.HttpResponse}
    return function


def _log_error(name: str, request_id: str, error: GraphFunctionsError) -> None:
    if error.status >= 500:
        logger.error(
            "%s failed with %d %s: %s (graph code %s, graph request-id %s, request %s)",
            name,
            error.status,
            error.code,
            error.message,
            error.graph_code,
            error.graph_request_id,
            request_id,
        )
    else:
        logger.info("%s rejected with %d %s (request %s)", name, error.status, error.code, request_id)
