"""The ASGI app (Starlette) and the HTTP server (uvicorn) of devhost.

Routes, checked in this order:

* ``GET /admin/host/status``: ``{"id", "state": "Running", "version", ...}``;
  tests wait on it before sending requests.
* ``GET /admin/functions``: the indexed functions and their bindings.
* ``POST /admin/functions/{name}`` with ``{"input": ""}``: run a non-HTTP
  (timer) function now, like Core Tools; 202 Accepted, the invocation runs in
  the background. Errors are JSON ``{"error": {"code", "message"}}``.
* ``GET|POST /admin/devhost/clock``: the served app's clock (:mod:`devhost.clock`; devhost only, tests
  move it forward).
* anything else: the functions' routes (``routePrefix`` + template).

Auth levels are not enforced, as with Core Tools. A function that raises,
returns something that is not an HTTP response, or runs past ``functionTimeout``
gives 500 with a plain-text body, and the exception is logged; one still running
after Azure's 230 s HTTP limit gets a warning in the log. One log line per request: method, path
(without the query string), status and duration; never headers or bodies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from devhost.clock import CLOCK
from devhost.convert import (
    RequestTooLargeError,
    UnsupportedResultError,
    read_body,
    to_func_request,
    to_response,
)
from devhost.cors import CoreToolsCors
from devhost.discovery import FunctionSpec
from devhost.invoke import Invoker, new_invocation_id
from devhost.limits import (
    HTTP_RESPONSE_LIMIT_SECONDS,
    FunctionTimeoutError,
    log_function_timeout,
    warn_when_slow,
)
from devhost.queues import QueueScheduler
from devhost.quiet_server import QuietServer
from devhost.routing import Router
from devhost.settings import DEFAULT_BODY_LIMIT
from devhost.timers import TimerScheduler

__all__ = ["HostState", "build_app", "serve"]

_log = logging.getLogger("devhost")
_http_log = logging.getLogger("devhost.http")
_HOME_PAGE = "<!doctype html><title>devhost</title><p>Your Functions app is up and running (devhost).</p>"


@dataclass
class HostState:
    host_id: str
    functions: dict[str, FunctionSpec]
    router: Router[FunctionSpec]
    invoker: Invoker
    scheduler: TimerScheduler
    queues: QueueScheduler
    errors: dict[str, str] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    body_limit: int = DEFAULT_BODY_LIMIT
    http_response_limit: float = HTTP_RESPONSE_LIMIT_SECONDS
    started: float = field(default_factory=time.monotonic)


def build_app(
    state: HostState,
    *,
    cors_origins: tuple[str, ...] = (),
    cors_credentials: bool = False,
) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with state.scheduler.running(), state.queues.running():
            yield

    async def host_status(_: Request) -> Response:
        return JSONResponse(
            {
                "id": state.host_id,
                "state": "Running",
                "version": "devhost",
                "processUptime": round((time.monotonic() - state.started) * 1000),
                "errors": [f"{name}: {error}" for name, error in state.errors.items()],
            }
        )

    async def list_functions(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse([_describe(spec, state, base) for spec in state.functions.values()])

    async def invoke_function(request: Request) -> Response:
        name = request.path_params["name"]
        spec = _find(state.functions, name)
        if spec is None:
            return _error(404, "FunctionNotFound", f"no function named '{name}'")
        if spec.http is not None:
            return _error(400, "HttpFunction", f"'{spec.name}' is an HTTP function: call its URL")
        if not await _valid_invoke_body(request):
            return _error(400, "InvalidRequestBody", 'the body must be JSON like {"input": ""}')
        if spec.name in state.errors:
            return _error(409, "FunctionInError", state.errors[spec.name])
        if spec.name in state.disabled:
            return _error(409, "FunctionDisabled", f"'{spec.name}' is disabled")
        if spec.name not in state.scheduler.timers:
            return _error(400, "UnsupportedTrigger", f"devhost cannot invoke {spec.trigger_type}")
        if not state.scheduler.trigger_now(spec.name):
            return _error(503, "HostStopping", "the host is shutting down")
        return Response(status_code=202)

    async def dev_clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                return JSONResponse(CLOCK.apply(json.loads(await request.body() or b"null")))
            except ValueError as error:  # json.JSONDecodeError is a ValueError
                return _error(400, "invalid_clock", str(error))
        return JSONResponse(CLOCK.describe())

    async def dispatch(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else str(raw_path)
        match = state.router.resolve(request.method, path)
        if match is None:
            if path.strip("/") == "" and request.method in ("GET", "HEAD"):
                return Response(_HOME_PAGE, media_type="text/html; charset=utf-8")
            return Response(status_code=404)
        spec = match.target
        try:
            body = await read_body(request, state.body_limit)
        except RequestTooLargeError:
            return PlainTextResponse("Request body too large", status_code=413)
        invocation_id = new_invocation_id()
        func_request = to_func_request(request, body, match.route_params)
        try:
            with warn_when_slow(state.http_response_limit, spec.name, invocation_id):
                result = await state.invoker.invoke(
                    spec,
                    func_request,
                    invocation_id=invocation_id,
                    trace_parent=request.headers.get("traceparent"),
                )
            return to_response(result)
        except FunctionTimeoutError as error:
            log_function_timeout(error)
        except UnsupportedResultError as error:
            _log.error("Function 'Functions.%s' (Id=%s): %s", spec.name, invocation_id, error)
        except Exception:  # a failing function gives 500, never stops the host
            _log.exception("Function 'Functions.%s' raised (Id=%s)", spec.name, invocation_id)
        return PlainTextResponse("Internal Server Error", status_code=500)

    middleware = [Middleware(RequestLogMiddleware)]
    if cors_origins:
        # Outermost but for the request log: a preflight is answered before any function runs.
        middleware.append(Middleware(CoreToolsCors, origins=cors_origins, credentials=cors_credentials))
    routes = [
        Route("/admin/host/status", host_status, methods=["GET"]),
        Route("/admin/functions", list_functions, methods=["GET"]),
        Route("/admin/functions/{name}", invoke_function, methods=["POST"]),
        Route("/admin/devhost/clock", dev_clock, methods=["GET", "POST"]),
        # An ASGI endpoint (not a function) accepts every method; the router
        # below decides, answering 404 like the host for a method it lacks.
        Route("/{path:anything}", _AsgiEndpoint(dispatch)),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


class _AnythingConvertor(Convertor[str]):
    """Like Starlette's ``path`` convertor, but also across line breaks: ``.*`` stops at a decoded ``%0A``,
    which would answer Starlette's plain-text 404 instead of routing the request like the host does."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anything", _AnythingConvertor())


class _AsgiEndpoint:
    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._handler(Request(scope, receive))
        await response(scope, receive, send)


class RequestLogMiddleware:
    """One line per request: method, path (no query string), status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            raw_path = scope.get("raw_path")
            path = raw_path.decode("latin-1") if raw_path else scope.get("path", "")
            _http_log.info(
                "%s %s %d %.1fms",
                scope.get("method", "-"),
                path.split("?", 1)[0],
                status,
                (time.perf_counter() - started) * 1000,
            )


class _TlsH11(H11Protocol):
    """The HTTPS listener's connections: once a stop has closed one, it is dropped after a short grace.

    asyncio closes a TLS connection by waiting for the peer's close_notify, which a pooled client (the
    local tenant's webhook client) never sends between requests, so each stop waited out the whole graceful
    timeout. A request in progress when the stop comes still gets its whole answer first."""

    _stopping = False

    def shutdown(self) -> None:
        self._stopping = True
        super().shutdown()
        self._drop_if_closing()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._stopping:
            self._drop_if_closing()

    def _drop_if_closing(self) -> None:
        if self.transport.is_closing():
            self.loop.call_later(0.2, self.transport.abort)


class TlsListener:
    """A second, HTTPS listener on the same app (dev only): Microsoft Graph calls only https webhook URLs,
    so the local tenant, as strict, reaches the app over TLS with a certificate its CA signed."""

    def __init__(self, *, port: int, cert_file: str, key_file: str) -> None:
        self.port = port
        self.cert_file = cert_file
        self.key_file = key_file


def _serve_tls(
    app: Starlette, host: str, tls: TlsListener, graceful_timeout: int
) -> tuple[QuietServer, threading.Thread]:
    """Start the HTTPS listener in a thread of its own (no lifespan: the timers and queues are the main
    listener's; no signal handlers: the main listener stops it)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=tls.port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        http=_TlsH11,
        # Webhook posts are short: a connection _TlsH11 does not drop (still open after the main listener's
        # stop, with no request running) must not hold the stop for the whole graceful timeout either.
        timeout_graceful_shutdown=min(graceful_timeout, 2),
        ssl_certfile=tls.cert_file,
        ssl_keyfile=tls.key_file,
    )
    server = QuietServer(config)
    thread = threading.Thread(target=server.run, name="devhost-https", daemon=True)
    thread.start()
    return server, thread


def serve(
    app: Starlette, *, host: str, port: int, graceful_timeout: int, tls: TlsListener | None = None
) -> bool:
    """Serve until SIGINT/SIGTERM (and HTTPS too with ``tls``); True if the server started and stopped
    cleanly."""
    secure = _serve_tls(app, host, tls, graceful_timeout) if tls is not None else None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = QuietServer(config)
    try:
        server.run()
    finally:
        if secure is not None:
            secure[0].should_exit = True
            secure[1].join(graceful_timeout + 5)
    return server.started and (secure is None or secure[0].started)


def _find(functions: dict[str, FunctionSpec], name: str) -> FunctionSpec | None:
    lowered = name.lower()
    return next((s for n, s in functions.items() if n.lower() == lowered), None)


async def _valid_invoke_body(request: Request) -> bool:
    body = await request.body()
    if not body.strip():
        return True
    try:
        document = await request.json()
    except ValueError:
        return False
    return isinstance(document, dict)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _describe(spec: FunctionSpec, state: HostState, base_url: str) -> dict[str, Any]:
    description: dict[str, Any] = {
        "name": spec.name,
        "language": "python",
        "isDisabled": spec.name in state.disabled,
        "config": {"bindings": list(spec.bindings)},
    }
    if spec.http is not None:
        prefix = state.router.route_prefix
        template = "/".join(p for p in (prefix, spec.http.route) if p)
        description["invoke_url_template"] = f"{base_url}/{template}"
    if spec.name in state.errors:
        description["error"] = state.errors[spec.name]
    return description
