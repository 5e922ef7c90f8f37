"""One uvicorn server, one listening socket per service, one Starlette app per origin.

Uvicorn serves the same ASGI callable on every socket; :class:`PortDispatch` routes each connection to
its service by the local port it arrived on, so audiences, issuers and error shapes never mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from emulator.config import CONTROL_PREFIX, PRODUCTION_HOSTS, SERVICE_OFFSETS
from emulator.directory.model import Application
from emulator.envfile import env_values, write_env_file
from emulator.observe import ObserveMiddleware
from emulator.request_client import ClientResolver
from emulator.state import EmulatorState
from emulator.tenants.scope import TenantScope

log = logging.getLogger("emulator")

#: How long a TLS connection closed at shutdown may take to answer our close_notify before it is dropped.
TLS_CLOSE_GRACE_SECONDS = 0.2
#: uvicorn refreshes its Date header once a second; an idle server wakes only for that.
DATE_REFRESH_SECONDS = 1.0


class _PromptlyClosingH11(H11Protocol):
    """uvicorn's h11 connection, except that a TLS connection does not hold the shutdown open once it is
    closed.

    At shutdown uvicorn closes each idle keep-alive connection at once, and each busy one when its response
    is complete. Over TLS, asyncio's close sends close_notify and then waits for the peer's own close_notify
    before it lets the connection go. A pooled client connection (MSAL's, an SDK's, a test's) is not read
    by anyone between requests, so that answer never comes, and uvicorn waited out its whole graceful
    timeout (5 s) on every stop of the tenant. Such a connection is aborted after a short grace now. A
    request in progress when the stop comes still gets its whole answer first."""

    _stopping = False

    def shutdown(self) -> None:
        self._stopping = True
        super().shutdown()
        self._drop_when_closed()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._stopping:
            self._drop_when_closed()

    def _drop_when_closed(self) -> None:
        if self.transport.is_closing() and self.transport.get_extra_info("sslcontext") is not None:
            self.loop.call_later(TLS_CLOSE_GRACE_SECONDS, self.transport.abort)


class _IdleServer(uvicorn.Server):
    """uvicorn's server without its idle tick: uvicorn wakes ten times a second to see whether it should stop,
    about 3.3 ms of CPU a second in a tenant doing nothing, for as long as a test session keeps it. This one
    sleeps until SIGINT/SIGTERM, waking once a second to refresh the ``Date`` header as the tick did."""

    _stop: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._stop is not None:  # a signal handler: the loop may be asleep in its selector
            loop, event = self._stop
            loop.call_soon_threadsafe(event.set)

    async def main_loop(self) -> None:
        event = asyncio.Event()
        self._stop = (asyncio.get_running_loop(), event)
        try:
            while not await self.on_tick(0):  # tick 0 refreshes the Date header, then checks should_exit
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), DATE_REFRESH_SECONDS)
        finally:
            self._stop = None


class PortDispatch:
    """Routes by local port; a port shared by several services (443 in production-hostnames mode) is
    further routed by the Host header, as the cloud's front doors do."""

    def __init__(self, apps: dict[int, ASGIApp], by_host: dict[str, ASGIApp] | None = None) -> None:
        self.apps = apps
        self.by_host = by_host or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        port = (scope.get("server") or ("", 0))[1]
        app = self.apps.get(port)
        if app is None and self.by_host:
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            app = self.by_host.get(host.rsplit(":", 1)[0].lower()) or self._wildcard(host)
        if app is None:
            response = PlainTextResponse(
                "No service for this host name on the local tenant.", status_code=421
            )
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    def _wildcard(self, host: str) -> ASGIApp | None:
        name = host.rsplit(":", 1)[0].lower()
        for pattern, app in self.by_host.items():
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                return app
        return None


def build_apps(state: EmulatorState) -> dict[str, ASGIApp]:
    """The ASGI app of each service, wrapped in the observation middleware."""
    from emulator import control
    from emulator.entra import build_app as build_entra
    from emulator.graph import build_app as build_graph
    from emulator.managed_identity import build_app as build_identity
    from emulator.sharepoint import build_app as build_sharepoint
    from emulator.vault import build_app as build_vault

    builders: dict[str, Callable[[EmulatorState], ASGIApp]] = {
        "graph": build_graph,
        "vault": build_vault,
        "sharepoint": build_sharepoint,
        "identity": build_identity,
    }
    apps: dict[str, ASGIApp] = {
        "login": Starlette(
            routes=[Mount(CONTROL_PREFIX, app=control.build_app(state)), Mount("/", app=build_entra(state))]
        ),
    }
    for name, builder in builders.items():
        apps[name] = Starlette(
            routes=[Mount(CONTROL_PREFIX, app=control.build_app(state)), Mount("/", app=builder(state))]
        )

    def identities() -> tuple[Application, ...]:
        return (state.ids.system_identity, state.ids.user_identity)

    return {
        name: ObserveMiddleware(
            TenantScope(app, state, name),
            name,
            state.obs,
            CONTROL_PREFIX,
            ClientResolver(name, identities if name == "identity" else None),
        )
        for name, app in apps.items()
    }


def bind_sockets(host: str, first_port: int, ports: dict[str, int] | None = None) -> dict[str, socket.socket]:
    """One listening socket per distinct port; ``ports`` overrides the default range per service."""
    sockets: dict[str, socket.socket] = {}
    by_port: dict[int, socket.socket] = {}
    try:
        for name, offset in SERVICE_OFFSETS.items():
            port = (ports or {}).get(name, first_port + offset)
            if port in by_port:
                sockets[name] = by_port[port]
                continue
            # IPPROTO_TCP explicitly: asyncio turns Nagle off on accepted connections only when the
            # listener names its protocol, and Nagle plus delayed ACKs would stall responses ~40 ms.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                raise SystemExit(
                    f"emulator: cannot listen on {host}:{port} for {name} ({exc.strerror}). "
                    f"It needs ports {first_port}-{first_port + len(SERVICE_OFFSETS) - 1}"
                    f"{' and 443' if ports else ''}; choose another range with --port."
                ) from exc
            sock.listen(2048)
            sock.set_inheritable(True)
            sockets[name] = by_port[port] = sock
    except BaseException:
        for s in by_port.values():
            s.close()
        raise
    return sockets


async def serve(state: EmulatorState, started_at: float, env_file: Path | None) -> None:
    config = state.config
    ports = {name: config.port_of(name) for name in SERVICE_OFFSETS} if config.production_hostnames else None
    sockets = bind_sockets(config.host, config.port, ports)
    apps = build_apps(state)
    if config.production_hostnames:
        shared = {name for name in apps if config.port_of(name) == 443}
        dispatch = PortDispatch(
            {sockets[n].getsockname()[1]: app for n, app in apps.items() if n not in shared},
            {PRODUCTION_HOSTS[n]: apps[n] for n in shared}
            | {"*.vault.azure.net": apps["vault"], "*.sharepoint.com": apps["sharepoint"]},
        )
    else:
        dispatch = PortDispatch({sockets[name].getsockname()[1]: app for name, app in apps.items()})
    uv_config = uvicorn.Config(
        dispatch,
        ssl_certfile=str(state.tls.server_cert),
        ssl_keyfile=str(state.tls.server_key),
        http=_PromptlyClosingH11,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=30,
        server_header=False,
        date_header=True,
    )
    server = _IdleServer(uv_config)
    task = asyncio.create_task(server.serve(sockets=list({id(s): s for s in sockets.values()}.values())))
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if server.started:
        if env_file is not None:
            write_env_file(env_file, env_values(state))
        log.warning(
            "local tenant ready in %.2fs: %d users, login %s, graph %s, vault %s, sharepoint %s, "
            "identity %s%s",
            time.perf_counter() - started_at,
            len(state.directory.users),
            state.config.authority_host,
            state.config.graph_origin,
            state.config.vault_origin,
            state.config.sharepoint_origin,
            state.config.identity_endpoint,
            f", env file {env_file}" if env_file else "",
        )
    await task


def run(state: EmulatorState, started_at: float, env_file: Path | None) -> int:
    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler underneath
    # turns that into a clean return, so SIGINT/SIGTERM end the process with exit code 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    asyncio.run(serve(state, started_at, env_file))
    return 0
