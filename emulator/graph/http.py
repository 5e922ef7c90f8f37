"""Request plumbing of the Graph origin: common headers, the error type, JSON responses, the context.

Every response carries ``request-id``, ``client-request-id`` (the caller's, echoed), ``x-ms-ags-diagnostic``
and ``Strict-Transport-Security``; handlers raise :class:`GraphError` anywhere and the endpoint wrapper
renders it in Graph's shape through :func:`emulator.errors.graph_error`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import graph_error

if TYPE_CHECKING:
    from emulator.graph.auth import Principal
    from emulator.state import EmulatorState

#: What Graph sends as the content type of its JSON payloads.
ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
DIAGNOSTIC = (
    '{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"LOCAL"}}'
)
REQUEST_ID_KEY = "graph.request_id"
CLIENT_REQUEST_ID_KEY = "graph.client_request_id"


class GraphError(Exception):
    """An error answer in Graph's shape; raised from anywhere below an endpoint."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def request_ids(scope: Scope) -> tuple[str, str]:
    state = scope.setdefault("state", {})
    rid = state.get(REQUEST_ID_KEY)
    if rid is None:
        rid = str(uuid.uuid4())
        state[REQUEST_ID_KEY] = rid
    crid = state.get(CLIENT_REQUEST_ID_KEY)
    if crid is None:
        for key, value in scope.get("headers", []):
            if key.lower() == b"client-request-id":
                crid = value.decode("latin-1")[:200]
                break
        crid = crid or rid
        state[CLIENT_REQUEST_ID_KEY] = crid
    return rid, crid


def render_error(scope: Scope, err: GraphError) -> Response:
    rid, crid = request_ids(scope)
    return graph_error(
        err.status, err.code, err.message, request_id=rid, client_request_id=crid, headers=err.headers
    )


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, media_type=ODATA_JSON, headers=headers)


class GraphHeaders:
    """Stamps Graph's common headers on every response of the origin (errors and 404s included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, crid = request_ids(scope)

        async def stamp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in (
                    ("request-id", rid),
                    ("client-request-id", crid),
                    ("x-ms-ags-diagnostic", DIAGNOSTIC),
                    ("strict-transport-security", "max-age=31536000"),
                    ("odata-version", "4.0"),
                    ("cache-control", "no-cache"),
                ):
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamp)


@dataclass
class Ctx:
    """What a handler gets: the request, the emulator state and the authenticated caller."""

    request: Request
    state: EmulatorState
    principal: Principal
    query: dict[str, str] = field(default_factory=dict)  # system query options, lower-cased names

    @property
    def origin(self) -> str:
        return self.state.config.graph_origin

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    @property
    def advanced_header(self) -> bool:
        return (self.header("consistencylevel") or "").strip().lower() == "eventual"


async def read_json(request: Request) -> Any:
    """The JSON body, refused with Graph's messages when absent or unreadable."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not raw.strip():
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    if not ctype.endswith("json"):
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type "
            "header is set and payload is of valid JSON format.",
        )
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type "
            "header is set and payload is of valid JSON format.",
        ) from exc
