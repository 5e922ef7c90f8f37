"""Endpoints Microsoft Graph calls (change and lifecycle notifications): anonymous at the host, because
Graph sends no token; what authenticates a post is what Graph puts in it (each notification's
``clientState``, checked by the handler). :func:`webhook` answers Graph's validation handshake first and
alone (the ``validationToken`` echoed as ``text/plain``, 200): no settings, no storage, no key is touched,
so a cold process answers well inside Graph's 10 s. Any other post goes to the handler with the process's
services and is answered 202 (accepted; the work is queued) or with the JSON error envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from shared.app import services as process
from shared.app.services import Runtime
from shared.core.errors import GraphFunctionsError
from shared.notifications.wire import MAX_BODY_BYTES, PayloadTooLargeError, validation_reply
from shared.web.api import HttpFunction, error_response, http_function, internal_error_response

logger = logging.getLogger(__name__)

WebhookHandler = Callable[[Runtime, bytes], object]
_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def webhook(handler: WebhookHandler) -> HttpFunction:
    """A Graph webhook endpoint (module docstring): ``handler(runtime, body)`` takes a post's body; its
    result is not sent back (202 says only that the post was taken, never a verdict on its items)."""
    name = handler.__name__

    def respond(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
        headers = {**_HEADERS, "x-request-id": request_id}
        try:
            echo = validation_reply(req.params.get("validationToken"))
            if echo is not None:
                return func.HttpResponse(
                    echo, status_code=200, mimetype="text/plain", charset="utf-8", headers=headers
                )
            declared = req.headers.get("content-length") or ""
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise PayloadTooLargeError(
                    f"A notification post may hold at most {MAX_BODY_BYTES} bytes", code="payload_too_large"
                )
            handler(process.current(), req.get_body())
            return func.HttpResponse(status_code=202, headers=headers)
        except GraphFunctionsError as error:
            log = logger.warning if error.status >= 500 else logger.info
            log("%s answered %d %s (request %s)", name, error.status, error.code, request_id)
            return error_response(error, request_id=request_id)
        except Exception:
            logger.exception("Unhandled error in %s (request %s)", name, request_id)
            return internal_error_response(request_id=request_id)

    return http_function(handler, respond)
