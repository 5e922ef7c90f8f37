"""Error bodies in each service's real shape. Handlers and fault injection share these builders."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from starlette.responses import JSONResponse

from emulator.clock import CLOCK

UTC = dt.UTC


def _stamp() -> str:
    return CLOCK.now().strftime("%Y-%m-%d %H:%M:%SZ")


def aadsts(
    code: int,
    error: str,
    message: str,
    *,
    status: int = 400,
    suberror: str | None = None,
    correlation_id: str | None = None,
) -> JSONResponse:
    """Entra's token-endpoint error: ``{"error", "error_description": "AADSTSnnn: …", "error_codes", …}``."""
    trace, corr, stamp = str(uuid.uuid4()), correlation_id or str(uuid.uuid4()), _stamp()
    body: dict[str, Any] = {
        "error": error,
        # The real service separates the parts with CRLF.
        "error_description": (
            f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    if suberror:
        body["suberror"] = suberror
    return JSONResponse(
        body, status_code=status, headers={"Cache-Control": "no-store, no-cache", "x-ms-request-id": trace}
    )


def graph_error(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    client_request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Microsoft Graph's error: ``{"error": {"code", "message", "innerError": {date, request-id, …}}}``."""
    rid = request_id or str(uuid.uuid4())
    inner: dict[str, Any] = {
        "date": CLOCK.now().strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": rid,
        "client-request-id": client_request_id or rid,
    }
    all_headers = {
        "request-id": rid,
        "client-request-id": client_request_id or rid,
        "Cache-Control": "no-store",
        "Strict-Transport-Security": "max-age=31536000",
        "x-ms-ags-diagnostic": '{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"5",'
        '"ScaleUnit":"000","RoleInstance":"LOCAL"}}',
    }
    all_headers.update(headers or {})
    return JSONResponse(
        {"error": {"code": code, "message": message, "innerError": inner}},
        status_code=status,
        headers=all_headers,
    )


def vault_error(
    status: int,
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Key Vault's error: ``{"error": {"code", "message", "innererror"?}}``."""
    err: dict[str, Any] = {"code": code, "message": message}
    if inner_code:
        err["innererror"] = {"code": inner_code}
    all_headers = {
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-keyvault-service-version": "1.9.0.0",
        "x-ms-keyvault-region": "local",
    }
    all_headers.update(headers or {})
    return JSONResponse({"error": err}, status_code=status, headers=all_headers)


def sharepoint_error(
    status: int,
    message: str,
    *,
    code: str = "-2147024891, System.UnauthorizedAccessException",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """SharePoint REST errors. 401s from the front door carry only ``error_description``."""
    if status == 401:
        body: dict[str, Any] = {"error_description": message}
    else:
        body = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}
    return JSONResponse(body, status_code=status, headers=headers or {})


def identity_error(status: int, message: str) -> JSONResponse:
    """App Service managed-identity endpoint errors: ``{"statusCode", "message", "correlationId"}``."""
    return JSONResponse(
        {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}, status_code=status
    )


_FAULT_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    507: "InsufficientStorage",
}


def fault_response(service: str, status: int, retry_after: int | None) -> JSONResponse:
    """An injected failure in the shape of ``service``."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    message = "Injected fault (local tenant control API)."
    if service == "graph":
        return graph_error(status, _FAULT_CODES.get(status, "UnknownError"), message, headers=headers)
    if service == "vault":
        return vault_error(
            status, "Throttled" if status == 429 else "ServiceUnavailable", message, headers=headers
        )
    if service == "login":
        resp = aadsts(90033 if status != 429 else 50196, "temporarily_unavailable", message, status=status)
        resp.headers.update(headers)
        return resp
    if service == "identity":
        resp = identity_error(status, message)
        resp.headers.update(headers)
        return resp
    return sharepoint_error(
        status, message, code="-2147024860, Microsoft.SharePoint.SPQueryThrottledException", headers=headers
    )
