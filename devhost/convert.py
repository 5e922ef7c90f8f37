"""Starlette request -> ``func.HttpRequest`` and function result -> Starlette response.

Request, as the Functions host builds the worker's ``RpcHttp``:

* ``url`` is the full URL including the query string.
* ``headers``: names are case-insensitive; a header sent several times is one
  value joined with ``,`` (.NET ``StringValues.ToString()``, which skips empty
  values).
* ``params``: the query string as ASP.NET Core's ``Request.Query`` holds it:
  keys compare **case-insensitively** (``?top=1&TOP=2`` is one key, spelled as
  it first appeared, ``"1,2"``), values are joined like headers, and a key whose
  joined value is empty is **left out** (``?top=`` and ``?top`` give no ``top``):
  the host's ``ToRpcHttp`` only copies non-empty values for the Python worker.
* ``route_params``: values matched by the route template.
* ``body``: read only when ``Content-Length`` is greater than 0, as in
  ``ToRpcHttp``; a chunked body (no ``Content-Length``) reaches the function
  empty, and devhost logs a warning saying so.

Response, as the Python worker encodes ``func.HttpResponse``:

* Content-Type is the response's own header when set, else ``mimetype`` plus
  ``; charset=...`` for ``text/*`` types.
* Every ``Set-Cookie`` header is kept (``headers.add("Set-Cookie", ...)`` once
  per cookie). For any other header set more than once, the last value wins, as
  in the worker, which turns headers into a dict.
* A ``str`` result is a 200 ``text/plain; charset=utf-8`` body; ``None`` gives
  204 No Content; anything else is an error (the worker cannot encode it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import azure.functions as func
from azure.functions import _abc as func_abc
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "RequestTooLargeError",
    "UnsupportedResultError",
    "read_body",
    "to_func_request",
    "to_response",
]

_log = logging.getLogger("devhost")
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


class RequestTooLargeError(Exception):
    """The request body exceeds the limit (answered with 413)."""


class UnsupportedResultError(TypeError):
    """The function returned something that is not an HTTP response."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body the host forwards: empty unless ``Content-Length`` is above 0.

    Raises ``RequestTooLargeError`` for a declared length above ``limit``.
    """
    declared = request.headers.get("content-length", "").strip()
    if not declared.isdigit() or int(declared) == 0:
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            # Why: the host's ToRpcHttp checks ContentLength > 0 only, so such a
            # body never reaches a Python function in Azure either.
            _log.warning(
                "%s %s: the body has no Content-Length (chunked); the Functions host "
                "passes it to the function as empty",
                request.method,
                request.url.path,
            )
        return b""
    if int(declared) > limit:
        raise RequestTooLargeError
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise RequestTooLargeError
    return bytes(chunks)


def to_func_request(request: Request, body: bytes, route_params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=_joined_headers(request.headers),
        params=_joined_query(request.query_params),
        route_params=route_params,
        body=body,
    )


def to_response(result: object) -> Response:
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return Response(result, media_type="text/plain; charset=utf-8")
    if not isinstance(result, func_abc.HttpResponse):
        raise UnsupportedResultError(
            f"an HTTP function must return func.HttpResponse, str or None, not {type(result).__name__}"
        )
    status = result.status_code
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise UnsupportedResultError(f"invalid HTTP status code {status!r}")
    response = Response(result.get_body(), status_code=status)
    response.raw_headers.extend(_response_headers(result))
    return response


def _joined_headers(headers: Headers) -> dict[str, str]:
    joined: dict[str, list[str]] = {}
    for name, value in headers.items():
        joined.setdefault(name.lower(), []).append(value)
    return {name: _string_values(values) for name, values in joined.items()}


def _joined_query(query: QueryParams) -> dict[str, str]:
    spelling: dict[str, str] = {}  # folded key -> the key as first seen
    joined: dict[str, list[str]] = {}
    for name, value in query.multi_items():
        key = spelling.setdefault(_ordinal_ignore_case(name), name)
        joined.setdefault(key, []).append(value)
    values = {name: _string_values(parts) for name, parts in joined.items()}
    return {name: value for name, value in values.items() if value}


def _string_values(values: list[str]) -> str:
    """.NET ``StringValues.ToString()``: the non-empty values joined with ``,``."""
    return ",".join(value for value in values if value)


def _ordinal_ignore_case(text: str) -> str:
    """A key for .NET ``StringComparer.OrdinalIgnoreCase``: per-character simple upper case
    (``str.upper`` alone would also equate ``ß`` with ``SS``, which .NET does not)."""
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in text)


def _response_headers(result: func_abc.HttpResponse) -> list[tuple[bytes, bytes]]:
    cookies: list[str] = []
    single: dict[str, tuple[str, str]] = {}
    for name, value in _header_items(result.headers):
        lowered = name.lower()
        if lowered == "set-cookie":
            cookies.append(value)
        elif lowered not in _HOP_BY_HOP:
            single[lowered] = (name, value)
    if "content-type" not in single:
        mimetype, charset = result.mimetype, result.charset
        content_type = f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        single["content-type"] = ("Content-Type", content_type)
    pairs = [*single.values(), *(("Set-Cookie", cookie) for cookie in cookies)]
    # Starlette (and ASGI) expect lower-case header names; HTTP ignores case.
    return [(_encode(name.lower()), _encode(value)) for name, value in pairs]


def _header_items(headers: object) -> Iterable[tuple[str, str]]:
    items = getattr(headers, "items", None)
    if items is None:
        return []
    # werkzeug Headers (func.HttpResponse.headers) yields repeated names too.
    return [(str(name), str(value)) for name, value in items()]


def _encode(text: str) -> bytes:
    if any(char in text for char in "\r\n\0"):
        raise UnsupportedResultError("a response header contains a line break or NUL")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")
