"""Build real azure-core exceptions around a minimal response object (no network, no patching)."""

from __future__ import annotations

import json
from typing import Any


class AzureResponse:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers = headers or {}
        self.content_type = "application/json"
        self.request = None
        self._text = json.dumps(body) if body is not None else ""

    def text(self, encoding: str | None = None) -> str:
        return self._text

    def body(self) -> bytes:
        return self._text.encode()


def vault_error(
    status: int,
    code: str,
    message: str = "message",
    inner: str | None = None,
    headers: dict[str, str] | None = None,
) -> Exception:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )

    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    response = AzureResponse(status, {"error": error}, headers)
    kind = {404: ResourceNotFoundError, 401: ClientAuthenticationError}.get(status, HttpResponseError)
    return kind(response=response)
