"""Control routes of change notifications and mailbox changes, under ``/_emulator`` (docs/notifications.md).

* ``GET|PUT /graph/notifications/settings`` — delivery, retry, slow/drop, lifetime and quota knobs.
* ``POST /graph/notifications/flush`` — deliver everything due now and wait for the replies.
* ``GET /graph/notifications/log?since=SEQ`` — attempts, validations, lost/dropped/delayed/discarded items.
* ``GET /graph/notifications/queue`` — items waiting (due time, attempts); ``?items=true`` adds each item
  as it will be posted (``item``: clientState and encryptedContent included), for tests that replay or
  tamper with one.
* ``POST /graph/notifications/validation-token`` ``{"appId", "tenantId", "claims"?, "foreignKey"?}`` — a
  ``validationTokens`` entry as delivery mints it, ``claims`` overriding any claim (``null`` removes it),
  ``foreignKey`` signing it with a key the tenant does not publish (a forgery).
* ``PUT /graph/notifications/outage`` ``{"enabled", "lifecycle"?, "sendMissed"?}`` — lose every new
  notification meanwhile; at its end, optionally send ``missed`` to the Outlook subscriptions that lost some.
* ``GET /graph/subscriptions`` — every app's subscriptions with their emulator state.
* ``POST /graph/subscriptions/{id}/lifecycle`` ``{"event"}`` — reauthorizationRequired, subscriptionRemoved,
  missed.
* ``PATCH|DELETE /users/{id}/messages/{messageId}`` — change (isRead, subject, importance, folder = move) or
  delete a message: notifications and messages delta see it.
* ``POST /graph/mail/delta/reset`` — message delta links issued before answer ``410 Gone``.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.clock import CLOCK
from emulator.graph.notify_crypto import validation_token
from emulator.graph.notify_delivery import endpoint_status, ensure_running, flush, sweep
from emulator.graph.notify_events import LIFECYCLE_EVENTS, fire_lifecycle, record_mail_change
from emulator.graph.notify_store import SETTING_NAMES, NotifySettings, notify_store
from emulator.state import EmulatorState

CHOICES = {"lifecycle_shape": ("observed", "documented"), "duplicate_subscriptions": ("conflict", "allow")}


def _bad(message: str, status: int = 400) -> JSONResponse:
    code = {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(status, "BadRequest")
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    from emulator.control import json_body

    return await json_body(request)


def apply_settings(settings: NotifySettings, body: dict[str, Any]) -> None:
    """Set the named knobs, each checked against its default's type.

    Raises:
        ValueError: an unknown name, a wrong type, a negative number or an unknown choice.
    """
    for name, value in body.items():
        attr = SETTING_NAMES.get(name)
        if attr is None:
            raise ValueError(f"unknown setting '{name}' (known: {', '.join(sorted(SETTING_NAMES))})")
        current = getattr(settings, attr)
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name} is a boolean")
        elif isinstance(current, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} is a number >= 0")
            if isinstance(current, int) and not isinstance(value, int):
                raise ValueError(f"{name} is an integer")
        elif attr in CHOICES and value not in CHOICES[attr]:
            raise ValueError(f"{name} is one of {', '.join(CHOICES[attr])}")
        setattr(settings, attr, value)
    if not 0 <= settings.duplicate_rate <= 1:
        raise ValueError("duplicateRate is a probability in [0, 1]")


def notify_control_routes(state: EmulatorState) -> list[BaseRoute]:
    store_of = notify_store  # resolved per call: a reset replaces nothing, but keeps this readable

    async def settings(request: Request) -> Response:
        store = store_of(state)
        if request.method == "PUT":
            try:
                body = await _body(request)
                trial = NotifySettings(**store.settings.__dict__)
                apply_settings(trial, body)
            except ValueError as exc:
                return _bad(str(exc))
            store.settings = trial
            ensure_running(state)
        return JSONResponse(store.settings.public())

    async def flush_now(request: Request) -> Response:
        ensure_running(state)
        entries = await flush(state)
        store = store_of(state)
        return JSONResponse({"value": entries, "queued": len(store.queue)})

    async def log(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return _bad("since must be an integer")
        store = store_of(state)
        entries = [e for e in store.log if e["seq"] > since]
        return JSONResponse({"value": entries, "last": store.log_seq})

    async def queue(request: Request) -> Response:
        store = store_of(state)
        now = CLOCK.time()
        return JSONResponse(
            {
                "now": now,
                "value": [
                    {
                        "url": p.url,
                        "subscriptionId": p.sub_id,
                        "kind": p.kind,
                        "dueInSeconds": round(p.due - now, 3),
                        "attempts": p.attempts,
                        "changeType": p.item.get("changeType"),
                        "lifecycleEvent": p.item.get("lifecycleEvent"),
                        "resource": p.item.get("resource"),
                        **({"item": p.item} if request.query_params.get("items") == "true" else {}),
                    }
                    for p in store.queue
                ],
            }
        )

    async def outage(request: Request) -> Response:
        store = store_of(state)
        missed: list[str] = []
        if request.method == "PUT":
            try:
                body = await _body(request)
                enabled = body.get("enabled")
                lifecycle, send_missed = body.get("lifecycle", False), body.get("sendMissed", False)
                if not all(isinstance(v, bool) for v in (enabled, lifecycle, send_missed)):
                    raise ValueError("enabled (and lifecycle, sendMissed, optional) are booleans")
            except ValueError as exc:
                return _bad(str(exc))
            store.outage, store.outage_lifecycle = enabled, lifecycle and enabled
            store.record({"event": "outage", "enabled": enabled, "lifecycle": store.outage_lifecycle})
            if not enabled:
                lost, store.outage_lost = store.outage_lost, set()
                # Graph tells Outlook subscribers with a lifecycle URL that notifications were missed
                for sid in sorted(lost) if send_missed else ():
                    sub = store.subscriptions.get(sid)
                    if sub is not None and sub.is_outlook and fire_lifecycle(state, sub, "missed"):
                        missed.append(sid)
                ensure_running(state)
        return JSONResponse(
            {"enabled": store.outage, "lifecycle": store.outage_lifecycle, "missedSentTo": missed}
        )

    async def all_subscriptions(request: Request) -> Response:
        store = store_of(state)
        sweep(store)
        now = CLOCK.time()
        return JSONResponse(
            {
                "value": [
                    {
                        **sub.to_graph(),
                        "reauthorizationRequired": sub.reauthorization_required,
                        "lastNotification": sub.last_notification,
                        "endpoint": endpoint_status(store, sub.notification_url, now),
                        "tenantId": sub.tenant_id,
                    }
                    for sub in store.subscriptions.values()
                ]
            }
        )

    async def lifecycle(request: Request) -> Response:
        store = store_of(state)
        sweep(store)
        sub = store.subscriptions.get(request.path_params["sid"])
        if sub is None:
            return _bad(f"no subscription '{request.path_params['sid']}'", 404)
        try:
            body = await _body(request)
        except ValueError as exc:
            return _bad(str(exc))
        event = body.get("event")
        if event not in LIFECYCLE_EVENTS:
            return _bad(f"event is one of {', '.join(LIFECYCLE_EVENTS)}")
        if event != "reauthorizationRequired" and not sub.is_outlook:
            # the lifecycle page: subscriptionRemoved and missed are sent for Outlook (and Teams) only
            return _bad(f"{event} is sent for Outlook resources only", 409)
        sent = fire_lifecycle(state, sub, event)
        ensure_running(state)
        return JSONResponse({"subscriptionId": sub.id, "event": event, "queued": sent})

    async def change_message(request: Request) -> Response:
        user = state.directory.user(request.path_params["uid"])
        box = state.mailbox(user) if user is not None else None
        if user is None or box is None:
            return _bad(f"no mailbox for '{request.path_params['uid']}'", 404)
        message = next((m for m in box.messages if m.id == request.path_params["mid"]), None)
        if message is None:
            return _bad(f"no message '{request.path_params['mid']}'", 404)
        if request.method == "DELETE":
            box.messages.remove(message)
            record_mail_change(state, user.id, message, "deleted")
            return Response(status_code=204)
        try:
            body = await _body(request)
            allowed = {"isRead": bool, "subject": str, "importance": str, "folder": str}
            for key, value in body.items():
                if key not in allowed or not isinstance(value, allowed[key]):
                    raise ValueError(f"a message change is {{{', '.join(allowed)}}} with the right types")
            if body.get("importance", "normal") not in ("low", "normal", "high"):
                raise ValueError("importance is low, normal or high")
            folder = box.folder(body["folder"]) if "folder" in body else None
            if "folder" in body and folder is None:
                return _bad(f"no folder '{body['folder']}'", 404)
        except ValueError as exc:
            return _bad(str(exc))
        old_folder = message.folder_id
        before = copy.copy(message)
        message.is_read = body.get("isRead", message.is_read)
        message.subject = body.get("subject", message.subject)
        message.importance = body.get("importance", message.importance)
        if folder is not None:
            message.folder_id = folder.id
        message.version += 1
        message.modified = CLOCK.now().replace(microsecond=0)
        record_mail_change(state, user.id, message, "updated", old_folder, before)
        return JSONResponse({"id": message.id, "folderId": message.folder_id})

    async def mint_validation_token(request: Request) -> Response:
        data = await _body(request)
        app_id, tenant_id = data.get("appId"), data.get("tenantId")
        claims = data.get("claims") or {}
        if not isinstance(app_id, str) or not isinstance(tenant_id, str) or not isinstance(claims, dict):
            return _bad("appId and tenantId (strings) are required; claims must be an object")
        token = validation_token(
            state.tokens, app_id, tenant_id, claims, foreign=data.get("foreignKey") is True
        )
        return JSONResponse({"token": token})

    async def reset_mail_delta(request: Request) -> Response:
        store_of(state).mail_delta_reset += 1
        return Response(status_code=204)

    return [
        Route("/graph/notifications/settings", settings, methods=["GET", "PUT"]),
        Route("/graph/notifications/flush", flush_now, methods=["POST"]),
        Route("/graph/notifications/log", log, methods=["GET"]),
        Route("/graph/notifications/queue", queue, methods=["GET"]),
        Route("/graph/notifications/validation-token", mint_validation_token, methods=["POST"]),
        Route("/graph/notifications/outage", outage, methods=["GET", "PUT"]),
        Route("/graph/subscriptions", all_subscriptions, methods=["GET"]),
        Route("/graph/subscriptions/{sid}/lifecycle", lifecycle, methods=["POST"]),
        Route("/users/{uid}/messages/{mid}", change_message, methods=["PATCH", "DELETE"]),
        Route("/graph/mail/delta/reset", reset_mail_delta, methods=["POST"]),
    ]
