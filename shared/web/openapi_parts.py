"""Building blocks of the OpenAPI document shared by its parts (users and caller endpoints in
:mod:`shared.app.openapi`, mail in :mod:`shared.mail.openapi`, reports in :mod:`shared.report.openapi`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The shared error responses under ``components/responses``, by status.
RESPONSE_NAMES: Mapping[str, str] = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "500": "ServerError",
    "502": "BadGateway",
    "503": "ServiceUnavailable",
}


def ref(kind: str, name: str) -> dict[str, str]:
    """A ``$ref`` to ``#/components/{kind}/{name}``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def ok_response(description: str, schema: str, *, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON success response of ``schema`` with the ``x-request-id`` header (and ``headers``)."""
    return {
        "description": description,
        "headers": {"x-request-id": ref("headers", "RequestId"), **(headers or {})},
        "content": {"application/json": {"schema": ref("schemas", schema)}},
    }


def error_refs(*codes: str, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """References to the shared error responses for ``codes``; ``names`` replaces some (e.g. a 404 of its
    own)."""
    table = {**RESPONSE_NAMES, **(names or {})}
    return {code: ref("responses", table[code]) for code in codes}
