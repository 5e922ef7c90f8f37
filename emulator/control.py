"""The control and observation API, under ``/_emulator`` on every origin (documented in README.md).

Core routes live here; each service adds its own by exposing ``control_routes(state)`` in its package
(``emulator.entra.control``, ``emulator.graph.control``, ``emulator.vault.control``...), collected below.
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.clock import CLOCK
from emulator.envfile import env_values
from emulator.observe import FaultRule
from emulator.state import EmulatorState

SERVICE_CONTROL_MODULES = (
    "emulator.entra.control",
    "emulator.graph.control",
    "emulator.vault.control",
    "emulator.tenants.control",
)


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"code": "BadRequest", "message": message}}, status_code=status)


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object body; raises ValueError with a readable message otherwise."""
    raw = await request.body()
    if not raw:
        return {}
    import json

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def core_routes(state: EmulatorState) -> list[BaseRoute]:
    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "tenantId": state.directory.tenant_id,
                "users": len(state.directory.users),
                "env": env_values(state),
            }
        )

    async def reset(request: Request) -> Response:
        state.reset()
        return Response(status_code=204)

    async def requests_log(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return _bad("since must be an integer")
        entries = state.obs.snapshot(since, request.query_params.get("service"))
        return JSONResponse({"value": entries, "last": entries[-1]["seq"] if entries else since})

    async def counters(request: Request) -> Response:
        return JSONResponse(
            {"byEndpoint": dict(state.obs.by_endpoint), "byClient": dict(state.obs.by_client)}
        )

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"value": [f.public() for f in state.obs.faults]})
        if request.method == "DELETE":
            state.obs.clear_faults()
            return Response(status_code=204)
        try:
            body = await json_body(request)
            rule = FaultRule(
                path=str(body["path"]),
                # A rule that only adds latency (or drops) lets the request through: "latencyMs" alone is a
                # slow service, the way a timeout test needs it, not a slow 503. Any other rule fails with
                # 503 unless it names its status (0: none, the request proceeds).
                status=int(body.get("status", 0 if body.get("latencyMs") or body.get("drop") else 503)),
                service=body.get("service"),
                method=body.get("method"),
                rate=float(body.get("rate", 1.0)),
                retry_after=None if body.get("retryAfter") is None else int(body["retryAfter"]),
                latency_ms=int(body.get("latencyMs", 0)),
                drop=bool(body.get("drop", False)),
                times=None if body.get("times") is None else int(body["times"]),
                client_id=body.get("clientId"),
                tenant_id=body.get("tenantId"),
            )
            if not 0.0 <= rule.rate <= 1.0:
                raise ValueError("rate must be within [0, 1]")
            for key in ("service", "method", "clientId", "tenantId"):
                if body.get(key) is not None and not isinstance(body[key], str):
                    raise ValueError(f"{key} must be a string")
            state.obs.add_fault(rule)
        except KeyError:
            return _bad("path (a regular expression) is required")
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        import re

        try:
            re.compile(rule.path)
        except re.error as exc:
            return _bad(f"path is not a valid regular expression: {exc}")
        return JSONResponse(rule.public(), status_code=201)

    async def delete_fault(request: Request) -> Response:
        fid = int(request.path_params["fid"])
        before = len(state.obs.faults)
        state.obs.faults[:] = [f for f in state.obs.faults if f.id != fid]
        return Response(status_code=204 if len(state.obs.faults) < before else 404)

    async def rotate_keys(request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _bad(str(exc))
        key = state.keys.rotate(retire_previous=bool(body.get("retirePrevious", False)))
        return JSONResponse({"kid": key.kid, "published": [k["kid"] for k in state.keys.jwks("")["keys"]]})

    async def lifetimes(request: Request) -> Response:
        try:
            body = await json_body(request)
            value = body.get("accessToken")
            state.tokens.access_lifetime = None if value is None else int(value)
            if "clockSkew" in body:
                state.tokens.clock_skew = int(body["clockSkew"])
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse(
            {"accessToken": state.tokens.access_lifetime, "clockSkew": state.tokens.clock_skew}
        )

    async def clock(request: Request) -> Response:
        # GET reads the tenant's time; POST {"advanceSeconds": n, "frozen": bool} moves it forward and/or
        # stops or restarts it; DELETE returns to real time (as /reset does). emulator/clock.py says what
        # reads it.
        if request.method == "POST":
            try:
                body = await json_body(request)
                amount, frozen = body.get("advanceSeconds"), body.get("frozen")
                if amount is None and frozen is None:
                    raise ValueError("advanceSeconds (a number of seconds >= 0) or frozen is required")
                if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, float))):
                    raise ValueError("advanceSeconds must be a number of seconds >= 0")
                if frozen is not None and not isinstance(frozen, bool):
                    raise ValueError("frozen must be true or false")
                if amount is not None:
                    CLOCK.advance(float(amount))
                if frozen is True:
                    CLOCK.freeze()
                elif frozen is False:
                    CLOCK.thaw()
            except ValueError as exc:
                return _bad(str(exc))
        elif request.method == "DELETE":
            CLOCK.rewind()
        return JSONResponse(
            {
                "now": CLOCK.now().isoformat().replace("+00:00", "Z"),
                "unixTime": CLOCK.time(),
                "offsetSeconds": CLOCK.offset,
                "frozen": CLOCK.frozen,
            }
        )

    async def throttle(request: Request) -> Response:
        t = state.throttle
        if request.method == "PUT":
            try:
                body = await json_body(request)
                if "identityUnitsPer10s" in body:
                    v = body["identityUnitsPer10s"]
                    t.identity_units_per_10s = None if v is None else int(v)
                if "mailRequestsPer10Min" in body:
                    t.mail_requests_per_10min = int(body["mailRequestsPer10Min"])
                if "mailConcurrency" in body:
                    t.mail_concurrency = int(body["mailConcurrency"])
                if "mailConcurrencyScope" in body:
                    if body["mailConcurrencyScope"] not in ("app", "mailbox"):
                        raise ValueError("mailConcurrencyScope is 'app' or 'mailbox'")
                    t.mail_concurrency_scope = body["mailConcurrencyScope"]
            except (ValueError, TypeError) as exc:
                return _bad(str(exc))
            reset_hook = state.stores.get("graph.throttle_reset")
            if callable(reset_hook):
                reset_hook()
        return JSONResponse(
            {
                "identityUnitsPer10s": t.identity_budget(len(state.directory.users)),
                "mailRequestsPer10Min": t.mail_requests_per_10min,
                "mailConcurrency": t.mail_concurrency,
                "mailConcurrencyScope": t.mail_concurrency_scope,
            }
        )

    return [
        Route("/info", info, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/requests", requests_log, methods=["GET"]),
        Route("/counters", counters, methods=["GET"]),
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/faults/{fid:int}", delete_fault, methods=["DELETE"]),
        Route("/signing-keys/rotate", rotate_keys, methods=["POST"]),
        Route("/lifetimes", lifetimes, methods=["PUT"]),
        Route("/throttle", throttle, methods=["GET", "PUT"]),
        Route("/clock", clock, methods=["GET", "POST", "DELETE"]),
    ]


def build_app(state: EmulatorState) -> Starlette:
    routes = core_routes(state)
    for name in SERVICE_CONTROL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        routes.extend(module.control_routes(state))
    return Starlette(routes=routes)
