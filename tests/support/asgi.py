"""Call an ASGI app in-process, without sockets or an HTTP client library (httpx is not a dependency).

For handler-level tests of the local tenant's services: ``call(app, "GET", "/secrets/x?api-version=7.6",
headers={...})`` returns the status, the headers (lower-cased names, last value wins) and the body.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message


@dataclass
class AsgiResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


async def _call(
    app: ASGIApp, method: str, target: str, headers: dict[str, str], body: bytes, port: int, client_host: str
) -> AsgiResponse:
    parts = urlsplit(target)
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if body and "content-length" not in {k.lower() for k in headers}:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "https",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "root_path": "",
        "query_string": parts.query.encode("latin-1"),
        "headers": raw_headers,
        "server": ("127.0.0.1", port),
        "client": (client_host, 50000),
    }
    sent_body = False
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    header_list = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start.get("headers", [])]
    payload = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return AsgiResponse(start["status"], dict(header_list), payload, header_list)


def call(
    app: ASGIApp,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | str | dict[str, Any] | None = None,
    port: int = 443,
    client_host: str = "127.0.0.1",
) -> AsgiResponse:
    """One request; a dict ``body`` is sent as JSON (with its content type unless one is given)."""
    hdrs = dict(headers or {})
    raw: bytes
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body or b""
    return asyncio.run(_call(app, method, target, hdrs, raw, port, client_host))
