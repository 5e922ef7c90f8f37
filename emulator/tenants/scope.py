"""Which organisation a request is for, chosen before the service runs (an ASGI middleware per service).

* login (Entra): the first path segment when it is an organisation's tenant id or verified domain
  (``/{tenant}/oauth2/v2.0/token``, ``/{tenant}/v2.0/adminconsent``…). ``common``/``organizations`` start at
  the home tenant; the sign-in step moves to the user's organisation (:mod:`emulator.tenants.signin`).
* graph, sharepoint: the bearer token's ``tid`` read without verification. The service then validates the
  token with that organisation's token service (signature, issuer, ``tid``), so a token can only ever open
  the directory it was minted in; a token of an unknown tenant stays on the home tenant and fails there.
* vault, identity: always the home tenant (the function app's own resources).
* the control API (``/_emulator``): the ``X-Emulator-Tenant`` header (tenant id or domain); an unknown
  one gets a 404, so a test never mutates the home tenant by mistake.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.config import CONTROL_PREFIX
from emulator.tenants.registry import TenantSlot, by_segment, enter, leave

if TYPE_CHECKING:
    from emulator.state import EmulatorState

TENANT_HEADER = b"x-emulator-tenant"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def unverified_tid(authorization: str | None) -> str | None:
    """The ``tid`` claim of a bearer JWT, unverified (only to choose whose keys and directory check it)."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    parts = authorization[7:].strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    tid = payload.get("tid") if isinstance(payload, dict) else None
    return tid if isinstance(tid, str) and len(tid) <= 64 else None


def request_tenant(service: str, path: str, authorization: str | None) -> str | None:
    """The tenant a request names, for the request log and fault rules: the first path segment on the
    login origin (an id, a domain, ``organizations``…), the bearer token's ``tid`` on Graph and SharePoint."""
    if service == "login":
        return path.lstrip("/").partition("/")[0] or None
    if service in ("graph", "sharepoint"):
        return unverified_tid(authorization)
    return None


class TenantScope:
    """Runs the wrapped service app with the request's organisation active."""

    def __init__(self, app: ASGIApp, state: EmulatorState, service: str) -> None:
        self.app = app
        self.state = state
        self.service = service

    def pick(self, scope: Scope) -> TenantSlot | JSONResponse | None:
        path: str = scope.get("path", "")
        if path.startswith(CONTROL_PREFIX + "/"):
            named = _header(scope, TENANT_HEADER)
            if named is None or not named.strip():
                return None
            slot = by_segment(self.state, named)
            if slot is None and named.strip().lower() not in (
                self.state.home.tenant_id,
                self.state.home.directory.domain.lower(),
            ):
                return JSONResponse(
                    {"error": {"code": "tenant_not_found", "message": f"No organisation {named!r}."}},
                    status_code=404,
                )
            return slot
        if self.service == "login":
            segment = path.lstrip("/").partition("/")[0]
            return by_segment(self.state, segment) if segment else None
        if self.service in ("graph", "sharepoint"):
            tid = unverified_tid(_header(scope, b"authorization"))
            return by_segment(self.state, tid) if tid else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        picked = self.pick(scope)
        if isinstance(picked, JSONResponse):
            await picked(scope, receive, send)
            return
        token = enter(picked)
        try:
            await self.app(scope, receive, send)
        finally:
            leave(token)
