"""``/v1.0/subscriptions``: create (with the validation handshake), list, get, renew (PATCH), delete and
``POST /subscriptions/{id}/reauthorize``, as Microsoft Graph answers them (docs/notifications.md).

The handshake: ``POST {url}?validationToken=…`` (text/plain, empty body) to the notificationUrl and, if
given, the lifecycleNotificationUrl (twice when they are equal); the endpoint must answer 200, ``text/plain``
and the URL-decoded token exactly, within 10 s; otherwise the subscription is not created and the caller
gets Graph's 400. A PATCH of ``notificationUrl`` re-validates; a PATCH of the expiry alone does not.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from emulator.graph.http import Ctx, GraphError, json_response, read_json
from emulator.graph.notify_delivery import ensure_running, sweep, webhook_client
from emulator.graph.notify_store import Subscription, notify_store
from emulator.graph.subscription_rules import (
    CREATE_FIELDS,
    PATCH_FIELDS,
    TLS_VERSIONS,
    certificate,
    change_types,
    check_access,
    expiration,
    https_url,
    invalid,
    parse_resource,
    quota,
    rich_rules,
    string_field,
    throttle_writes,
    unknown_property,
    visible,
)

VALIDATION_FAILED = "Subscription validation request failed."
MUST_200 = "Notification endpoint must respond with 200 OK to validation request."


async def handshake(ctx: Ctx, url: str) -> None:
    """Validate ``url`` as Graph does, or raise the 400 Graph answers."""
    store = notify_store(ctx.state)
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    timeout = store.settings.validation_timeout_ms / 1000
    reply = await webhook_client(ctx.state).validate(url, token, timeout)
    store.record(
        {
            "event": "validation",
            "url": url,
            "status": reply.status,
            "error": reply.error,
            "ms": round(reply.elapsed * 1000, 1),
        }
    )
    if reply.error == "timeout":
        raise invalid("Subscription validation request timed out.")
    if reply.error == "tls":
        raise invalid("The underlying connection was closed: An unexpected error occurred on a send.")
    if reply.status is None:
        raise invalid(f"{VALIDATION_FAILED} {MUST_200}", "ValidationError")  # [INFERRED] unreachable
    if reply.status != 200:
        raise invalid(
            f"{VALIDATION_FAILED} HTTP status code is '{reply.reason}'. {MUST_200}", "ValidationError"
        )
    if reply.content_type.split(";")[0].strip().lower() != "text/plain":
        raise invalid(
            f"{VALIDATION_FAILED} Response must be of content type text/plain.", "ValidationError"
        )  # [INFERRED] wording
    if reply.body.decode("utf-8", errors="replace") != token:
        raise invalid(
            f"{VALIDATION_FAILED} Response must exactly match validationToken query parameter.",
            "ValidationError",
        )


def _entity(ctx: Ctx, sub: Subscription) -> dict[str, Any]:
    return {"@odata.context": f"{ctx.origin}/v1.0/$metadata#subscriptions/$entity", **sub.to_graph()}


def _find(ctx: Ctx) -> Subscription:
    store = notify_store(ctx.state)
    sweep(store)
    sid = ctx.request.path_params["sid"]
    sub = store.subscriptions.get(sid)
    if sub is None or not visible(ctx, sub):
        raise GraphError(404, "ResourceNotFound", f"The object '{sid}' was not found.")  # [INFERRED] text
    return sub


async def _object(ctx: Ctx) -> dict[str, Any]:
    data = await read_json(ctx.request)
    if not isinstance(data, dict):
        raise invalid(
            "An unexpected 'StartArray' node was found when reading from the JSON reader. "
            "A 'StartObject' node was expected.",
            "BadRequest",
        )
    return data


async def create_subscription(ctx: Ctx) -> Response:
    store = notify_store(ctx.state)
    sweep(store)
    data = await _object(ctx)
    for key in data:
        if key not in CREATE_FIELDS:
            raise unknown_property(key)
    raw_change = string_field(data, "changeType", required=True) or ""
    notification_url = https_url(string_field(data, "notificationUrl", required=True) or "")
    lifecycle = string_field(data, "lifecycleNotificationUrl")
    if lifecycle is not None:
        lifecycle = https_url(lifecycle, "lifecycle notification")
    target = parse_resource(ctx, string_field(data, "resource", required=True) or "")
    change = change_types(raw_change, target.kind)
    client_state = string_field(data, "clientState")
    if client_state is not None and len(client_state) > 128:
        raise invalid("clientState must be at most 128 characters long.")  # [INFERRED] wording
    tls = string_field(data, "latestSupportedTlsVersion") or "v1_2"
    if tls not in TLS_VERSIONS:
        raise invalid(f"Invalid latestSupportedTlsVersion '{tls}'.")  # [INFERRED] wording
    url_app = string_field(data, "notificationUrlAppId")
    include, cert, cert_id = rich_rules(target, data)
    if target.filter:
        from emulator.graph.notify_events import valid_filter

        valid_filter(target.filter)
    check_access(ctx, target)
    expiry = expiration(data.get("expirationDateTime"), store.settings, target.kind, include)
    quota(store, ctx, target, change)
    throttle_writes(store, ctx)
    await handshake(ctx, notification_url)
    if lifecycle is not None:
        await handshake(ctx, lifecycle)
    quota(store, ctx, target, change)  # the world may have changed during the handshake
    principal = ctx.principal
    app = ctx.state.directory.app(principal.app_id)
    creator = (
        principal.user_id if principal.delegated else (app.sp_id if app is not None else principal.app_id)
    )
    sub = Subscription(
        id=str(uuid.uuid4()),
        app_id=principal.app_id,
        tenant_id=principal.tenant_id,
        creator_id=creator or "",
        delegated_user=principal.user_id if principal.delegated else None,
        resource=(string_field(data, "resource") or "").strip().lstrip("/"),
        kind=target.kind,
        target=target.user_id,
        folder=target.folder_id,
        select=target.select,
        filter=target.filter,
        change_types=change,
        notification_url=notification_url,
        lifecycle_url=lifecycle,
        expiration=expiry,
        client_state=client_state,
        include_resource_data=include,
        certificate=cert if include else None,
        certificate_id=cert_id,
        tls_version=tls,
        notification_url_app_id=url_app,
    )
    store.subscriptions[sub.id] = sub
    store.record({"event": "created", "subscriptionId": sub.id, "resource": sub.resource})
    ensure_running(ctx.state)
    return json_response(_entity(ctx, sub), status=201)


async def list_subscriptions(ctx: Ctx) -> Response:
    store = notify_store(ctx.state)
    sweep(store)
    subs = [s.to_graph() for s in store.subscriptions.values() if visible(ctx, s)]
    return json_response({"@odata.context": f"{ctx.origin}/v1.0/$metadata#subscriptions", "value": subs})


async def get_subscription(ctx: Ctx) -> Response:
    return json_response(_entity(ctx, _find(ctx)))


async def update_subscription(ctx: Ctx) -> Response:
    sub = _find(ctx)
    store = notify_store(ctx.state)
    data = await _object(ctx)
    for key in data:
        if key == "lifecycleNotificationUrl":
            raise invalid("lifecycleNotificationUrl can only be set when the subscription is created.")
        if key not in PATCH_FIELDS:
            raise invalid(f"The property '{key}' cannot be updated on a subscription.")  # [INFERRED]
    if data.get("expirationDateTime") is None and data.get("notificationUrl") is None:
        raise invalid(
            "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and "
            "its value."
        )
    target = parse_resource(ctx, sub.resource)
    check_access(ctx, target)
    throttle_writes(store, ctx)
    expiry = sub.expiration
    if data.get("expirationDateTime") is not None:
        expiry = expiration(data["expirationDateTime"], store.settings, sub.kind, sub.include_resource_data)
    cert, cert_id = string_field(data, "encryptionCertificate"), string_field(data, "encryptionCertificateId")
    if cert is not None or cert_id is not None:
        certificate(cert or sub.certificate or "", cert_id or sub.certificate_id or "")
    url = string_field(data, "notificationUrl")
    if url is not None:
        url = https_url(url)
        await handshake(ctx, url)
    if store.subscriptions.get(sub.id) is not sub:
        raise GraphError(404, "ResourceNotFound", f"The object '{sub.id}' was not found.")
    sub.expiration = expiry
    sub.notification_url = url or sub.notification_url
    sub.certificate = cert or sub.certificate
    sub.certificate_id = cert_id or sub.certificate_id
    sub.reauthorization_required = False  # a renewal also reauthorizes
    store.record({"event": "updated", "subscriptionId": sub.id})
    return json_response(_entity(ctx, sub))


async def delete_subscription(ctx: Ctx) -> Response:
    sub = _find(ctx)
    store = notify_store(ctx.state)
    throttle_writes(store, ctx)
    store.subscriptions.pop(sub.id, None)
    store.queue = [p for p in store.queue if p.sub_id != sub.id]
    store.record({"event": "deleted", "subscriptionId": sub.id})
    return Response(status_code=204)


async def reauthorize_subscription(ctx: Ctx) -> Response:
    sub = _find(ctx)
    check_access(ctx, parse_resource(ctx, sub.resource))
    sub.reauthorization_required = False
    notify_store(ctx.state).record({"event": "reauthorized", "subscriptionId": sub.id})
    return Response(status_code=204)
