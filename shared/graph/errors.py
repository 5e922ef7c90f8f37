"""Microsoft Graph error responses mapped to the app's typed errors (codes in ``docs/errors.md``)."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any

from shared.core.errors import BadRequest, GraphFunctionsError, NotFound, UpstreamError
from shared.core.http import Response

logger = logging.getLogger(__name__)


def graph_error_details(response: Response) -> tuple[str | None, str | None, str | None]:
    """(code, message, request-id) from a Graph error response; any part may be None."""
    request_id = response.headers.get("request-id")
    try:
        body = response.json()
    except ValueError:
        return None, None, request_id
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, request_id
    inner = error.get("innerError") or error.get("innererror") or {}
    if request_id is None and isinstance(inner, dict):
        inner_id = inner.get("request-id")
        request_id = inner_id if isinstance(inner_id, str) else None
    code = error.get("code")
    message = error.get("message")
    return (
        code if isinstance(code, str) else None,
        message[:300] if isinstance(message, str) else None,
        request_id,
    )


_CHALLENGE_PARAM = r'([A-Za-z_]+)="([^"]*)"'


def claims_challenge(response: Response) -> str | None:
    """The claims (JSON text) of a CAE ``WWW-Authenticate: Bearer ... error="insufficient_claims",
    claims="<base64>"`` challenge, or None (learn.microsoft.com,
    app-resilience-continuous-access-evaluation)."""
    header = response.headers.get("WWW-Authenticate") or ""
    params = dict(re.findall(_CHALLENGE_PARAM, header))
    if params.get("error") != "insufficient_claims" or not params.get("claims"):
        return None
    encoded = params["claims"]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def error_from_response(response: Response, *, client_input: bool = False) -> GraphFunctionsError:
    """Map a non-success Graph response to a typed error (codes documented in ``docs/errors.md``)."""
    status = response.status_code
    graph_code, graph_message, request_id = graph_error_details(response)
    ids: dict[str, Any] = {
        "graph_code": graph_code,
        "graph_request_id": request_id,
        "graph_message": graph_message,
    }
    logger.warning("Graph answered %d %s (request-id %s)", status, graph_code, request_id)
    if status == 404:
        return NotFound("The requested object does not exist in the directory", **ids)
    if status == 400 and client_input:
        detail = f": {graph_message}" if graph_message else ""
        return BadRequest(f"Microsoft Graph rejected the query{detail}", **ids)
    if status == 400:
        return UpstreamError(
            f"Microsoft Graph rejected the app's request ({graph_code})", code="upstream_bad_request", **ids
        )
    if status == 401:
        return UpstreamError(
            "Microsoft Graph rejected the app's access token", code="upstream_unauthorized", **ids
        )
    if status == 403:
        return UpstreamError(
            "Microsoft Graph denied the app access: grant the app registration the required application "
            "permission (e.g. User.Read.All) with admin consent",
            code="upstream_forbidden",
            **ids,
        )
    return UpstreamError(f"Microsoft Graph answered HTTP {status}", **ids)
