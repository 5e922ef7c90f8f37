"""Control routes of the vault, mounted under ``/_emulator`` on every origin (see emulator/control.py).

* ``PATCH /vault/secrets/{name}`` ``{"enabled": bool, "version"?: str, "allVersions"?: bool}``: enable or
  disable the latest version (default), one version, or every version.
* ``PUT /vault/secrets/{name}`` ``{"value", "contentType"?, "tags"?, "enabled"?, "managed"?}``: add a version
  outside the data plane (no access check; also for certificate-backed secrets, e.g. a certificate rotation).
* ``GET /vault/secrets/{name}/versions``: the versions and their attributes, never the values.
* ``GET /vault/access`` and ``PUT /vault/access/{principalId}`` ``{"permissions": ["get", "list", "set"]}``:
  the access policies; an empty list revokes. ``principalId`` is an object id (user, group or service
  principal), as in a real access policy, not a client id.

Responses never contain secret values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.clock import CLOCK
from emulator.control import json_body
from emulator.state import EmulatorState
from emulator.vault.store import SecretVersion
from emulator.vault.wire import NAME_RE

#: Secret permissions of a Key Vault access policy.
SECRET_PERMISSIONS = ("get", "list", "set", "delete", "backup", "restore", "recover", "purge")


def _bad(message: str, status: int = 400) -> JSONResponse:
    code = "BadRequest" if status == 400 else "NotFound"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _summary(item: SecretVersion) -> dict[str, Any]:
    def stamp(ts: dt.datetime | None) -> int | None:
        return None if ts is None else int(ts.timestamp())

    return {
        "version": item.version,
        "enabled": item.enabled,
        "contentType": item.content_type,
        "managed": item.managed,
        "tags": dict(item.tags),
        "created": stamp(item.created),
        "updated": stamp(item.updated),
        "nbf": stamp(item.not_before),
        "exp": stamp(item.expires),
    }


def control_routes(state: EmulatorState) -> list[Route]:
    async def secret(request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _bad(str(exc))
        vault, name = state.vault, request.path_params["name"]
        if not NAME_RE.match(name):
            return _bad(f"invalid secret name {name!r}: 1-127 letters, digits and dashes")
        if request.method == "PUT":
            return _add_version(name, body)
        versions = vault.secrets.get(name.lower())
        if not versions:
            return _bad(f"secret {name!r} not found", 404)
        if not isinstance(body.get("enabled"), bool):
            return _bad('body must be {"enabled": true|false, "version"?: "...", "allVersions"?: true}')
        if body.get("allVersions"):
            targets = list(versions)
        elif body.get("version"):
            targets = [v for v in versions if v.version == body["version"]]
            if not targets:
                return _bad(f"secret {name!r} has no version {body['version']!r}", 404)
        else:
            targets = [versions[-1]]
        now = CLOCK.now().replace(microsecond=0)
        for item in targets:
            item.enabled = body["enabled"]
            item.updated = now
        return JSONResponse({"name": vault.display_name(name), "versions": [_summary(v) for v in versions]})

    def _add_version(name: str, body: dict[str, Any]) -> Response:
        value, ctype, tags = body.get("value"), body.get("contentType"), body.get("tags") or {}
        if not isinstance(value, str):
            return _bad("value (a string) is required")
        if ctype is not None and not isinstance(ctype, str):
            return _bad("contentType must be a string")
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            return _bad("tags must be an object of strings")
        vault = state.vault
        managed = bool(body.get("managed", False))
        try:
            item = vault.set(
                name, value, ctype, tags=tags, enabled=bool(body.get("enabled", True)), managed=managed
            )
        except ValueError as exc:  # managed, but the value holds no certificate
            return _bad(str(exc))
        if managed:
            item.key_id = f"{state.config.vault_origin}/keys/{vault.display_name(name)}/{item.version}"
        return JSONResponse({"name": vault.display_name(name), "version": _summary(item)}, status_code=201)

    async def versions(request: Request) -> Response:
        name = request.path_params["name"]
        items = state.vault.secrets.get(name.lower())
        if not items:
            return _bad(f"secret {name!r} not found", 404)
        return JSONResponse(
            {"name": state.vault.display_name(name), "versions": [_summary(v) for v in items]}
        )

    async def access_list(request: Request) -> Response:
        return JSONResponse(
            {
                "vault": state.vault.name,
                "value": [
                    {"principalId": pid, "permissions": sorted(perms)}
                    for pid, perms in sorted(state.vault.access.items())
                ],
            }
        )

    async def access_put(request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _bad(str(exc))
        principal = request.path_params["principal"]
        perms = body.get("permissions")
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            return _bad('body must be {"permissions": ["get", "list", "set", ...]} (an empty list revokes)')
        wanted = {p.lower() for p in perms}
        unknown = sorted(wanted - set(SECRET_PERMISSIONS))
        if unknown:
            return _bad(f"unknown secret permissions {unknown}; known: {list(SECRET_PERMISSIONS)}")
        directory = state.directory
        known = (
            directory.user(principal) is not None
            or directory.group(principal) is not None
            or directory.app_by_sp(principal) is not None
        )
        if not known:
            hint = ""
            app = directory.app(principal)
            if app is not None:
                hint = f" ({principal} is the client id of {app.display_name}; use its object id {app.sp_id})"
            return _bad(
                f"principal {principal!r} is not a user, group or service principal object id{hint}", 404
            )
        if wanted:
            state.vault.access[principal] = wanted
        else:
            state.vault.access.pop(principal, None)
        return JSONResponse({"principalId": principal, "permissions": sorted(wanted)})

    return [
        Route("/vault/secrets/{name}", secret, methods=["PATCH", "PUT"]),
        Route("/vault/secrets/{name}/versions", versions, methods=["GET"]),
        Route("/vault/access", access_list, methods=["GET"]),
        Route("/vault/access/{principal}", access_put, methods=["PUT"]),
    ]
