"""CORS as Core Tools applies ``local.settings.json`` ``Host.CORS`` / ``Host.CORSCredentials``: ASP.NET Core's
CORS middleware with a policy of the listed origins (``*``: any origin), any method, any header.

What that means on the wire (learn.microsoft.com aspnet/core/security/cors, "How CORS works", "Preflight
requests"), and what the Function App's platform CORS does in Azure (``siteConfig.cors``):

* **A preflight** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered here,
  **204**, without running any function: for an allowed origin with ``Access-Control-Allow-Origin`` (the
  origin, or ``*`` for any origin without credentials), ``Access-Control-Allow-Methods`` (the method
  asked), ``Access-Control-Allow-Headers`` (the headers asked) and, with credentials,
  ``Access-Control-Allow-Credentials: true``; for any other origin with no CORS header at all (the browser
  then blocks the call).
* **Other requests** run as usual; an allowed origin's answer gets ``Access-Control-Allow-Origin`` (and
  credentials), with ``Vary: Origin`` when the answer depends on the origin.

The ``Origin`` is compared exactly (scheme, host and port; case-insensitively, as ASP.NET Core does).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CoreToolsCors"]


class CoreToolsCors:
    """ASGI middleware applying ``origins`` (``Host.CORS``) and ``credentials`` (``Host.CORSCredentials``)."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str], credentials: bool = False) -> None:
        self._app = app
        self._any = "*" in origins
        self._origins = {origin.rstrip("/").lower() for origin in origins if origin != "*"}
        self._credentials = credentials

    def _allowed(self, origin: str) -> bool:
        return self._any or origin.rstrip("/").lower() in self._origins

    def _allow_origin(self, origin: str) -> str:
        # Any origin with credentials must name the origin: a browser refuses ``*`` with credentials.
        return "*" if self._any and not self._credentials else origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self._app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, headers, send)
            return
        if not self._allowed(origin):
            await self._app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer["Access-Control-Allow-Origin"] = self._allow_origin(origin)
                if self._credentials:
                    answer["Access-Control-Allow-Credentials"] = "true"
                if self._allow_origin(origin) != "*":
                    answer.add_vary_header("Origin")
            await send(message)

        await self._app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, headers: Headers, send: Send) -> None:
        answer: list[tuple[bytes, bytes]] = [(b"content-length", b"0")]
        if self._allowed(origin):
            allow = {
                "access-control-allow-origin": self._allow_origin(origin),
                "access-control-allow-methods": headers["access-control-request-method"],
            }
            requested = headers.get("access-control-request-headers")
            if requested:
                allow["access-control-allow-headers"] = requested
            if self._credentials:
                allow["access-control-allow-credentials"] = "true"
            if allow["access-control-allow-origin"] != "*":
                allow["vary"] = "Origin"
            answer += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in allow.items()]
        await send({"type": "http.response.start", "status": 204, "headers": answer})
        await send({"type": "http.response.body", "body": b""})
