"""What produces change notifications: messages arriving or changing, users changing or going, and
lifecycle events. Each change is also written to the mailbox's change log that messages delta reads.

Payload shapes (docs/notifications.md): a message item names ``Users/{userId}/Messages/{messageId}`` with
``resourceData`` ``{"@odata.type": "#Microsoft.Graph.Message", "@odata.id", "@odata.etag", "id"}``; a rich one
adds ``encryptedContent``; a user item names ``Users/{id}`` with ``#Microsoft.Graph.User``. Users report
creation, changes and soft deletion as ``updated`` and permanent deletion as ``deleted``.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any

from emulator.clock import CLOCK
from emulator.directory.model import Message
from emulator.graph.filters import Compiler
from emulator.graph.http import GraphError
from emulator.graph.mail import MESSAGE_FILTERS, MailFilterPolicy, message_json
from emulator.graph.notify_crypto import encrypt_content
from emulator.graph.notify_delivery import enqueue
from emulator.graph.notify_store import NotifyStore, Subscription, notify_store
from emulator.graph.odata import FilterSyntaxError, parse_filter
from emulator.state import EmulatorState

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


def _stamp(ts: float) -> str:
    # Graph writes subscriptionExpirationDateTime with an offset (and 7 fractional digits).
    text = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "0+00:00")


def _item_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(9)).decode("ascii")


def _live(store: NotifyStore) -> list[Subscription]:
    now = CLOCK.time()
    return [s for s in store.subscriptions.values() if s.expiration > now]


def valid_filter(text: str) -> None:
    """Refuse a ``$filter`` on a mail subscription's resource that the message filter cannot compile.

    Raises:
        GraphError: 400, as for the same filter on ``/messages``.
    """
    try:
        Compiler(MESSAGE_FILTERS, MailFilterPolicy()).compile(parse_filter(text))
    except FilterSyntaxError as exc:
        raise GraphError(400, "BadRequest", "Invalid filter clause") from exc


def _matches_filter(sub: Subscription, message: Message) -> bool:
    if not sub.filter:
        return True
    try:
        predicate = Compiler(MESSAGE_FILTERS, MailFilterPolicy()).compile(parse_filter(sub.filter))
        return bool(predicate(message))
    except (GraphError, FilterSyntaxError, TypeError, ValueError):
        return False  # validated at creation; never fail the change that triggered this


def message_item(sub: Subscription, user_id: str, message: Message, change: str) -> dict[str, Any]:
    resource = f"Users/{user_id}/Messages/{message.id}"
    full = message_json(message)
    item: dict[str, Any] = {
        "id": _item_id(),
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": _stamp(sub.expiration),
        "changeType": change,
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": full["@odata.etag"],
            "id": message.id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }
    if sub.include_resource_data and change != "deleted" and sub.certificate and sub.certificate_id:
        item["resourceData"]["@odata.type"] = "#microsoft.graph.message"
        data = {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": full["@odata.etag"],
            "id": message.id,
            **{name: full[name] for name in sub.select or [] if name in full},
        }
        item["encryptedContent"] = encrypt_content(data, sub.certificate, sub.certificate_id)
    return item


def record_mail_change(
    state: EmulatorState,
    user_id: str,
    message: Message,
    change: str,
    old_folder: str | None = None,
    before: Message | None = None,
) -> None:
    """Write a message's change to its mailbox's log (messages delta) and notify its subscriptions.

    ``change``: ``created``, ``updated`` (``old_folder`` set when it moved; ``before`` = the message as it
    was) or ``deleted``. With a ``$filter`` on the subscription, an update that makes the message match is
    reported as ``created``, one that makes it stop matching as ``deleted`` (the Outlook overview's rule).
    """
    store = notify_store(state)
    log = store.mail_changes(user_id)
    log.seq += 1
    if change == "deleted":
        log.changed.pop(message.id, None)
        log.removed.append((log.seq, message.id, message.folder_id))
    else:
        log.changed[message.id] = (log.seq, message.folder_id)
        if change == "created":
            log.created[message.id] = log.seq
        if old_folder is not None and old_folder != message.folder_id:
            log.removed.append((log.seq, message.id, old_folder))
    for sub in _live(store):
        if sub.kind != "messages" or sub.target != user_id:
            continue
        kind = change
        if sub.folder is not None:
            if change == "updated" and old_folder is not None and old_folder != message.folder_id:
                if sub.folder == old_folder:
                    kind = "deleted"  # moved out of the watched folder
                elif sub.folder == message.folder_id:
                    kind = "created"  # moved into it
                else:
                    continue
            elif sub.folder != message.folder_id:
                continue
        if sub.filter and kind == "updated" and before is not None:
            was, now = _matches_filter(sub, before), _matches_filter(sub, message)
            if not was and not now:
                continue
            kind = "updated" if was and now else "created" if now else "deleted"
        elif kind != "deleted" and not _matches_filter(sub, message):
            continue
        if kind in sub.change_types:
            enqueue(state, sub, message_item(sub, user_id, message, kind))
        if kind == "created" and store.settings.created_then_updated and "updated" in sub.change_types:
            enqueue(state, sub, message_item(sub, user_id, message, "updated"))


def user_item(sub: Subscription, user_id: str, change: str) -> dict[str, Any]:
    resource = f"Users/{user_id}"
    return {
        "id": _item_id(),
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": _stamp(sub.expiration),
        "changeType": change,
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": resource,
            "id": user_id,
            "organizationId": sub.tenant_id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }


def record_user_change(state: EmulatorState, user_id: str, permanent_delete: bool = False) -> None:
    """Notify ``users`` and ``users/{id}`` subscriptions: creation, change and soft delete are ``updated``,
    a permanent delete is ``deleted``."""
    change = "deleted" if permanent_delete else "updated"
    for sub in _live(notify_store(state)):
        watches = sub.kind == "users" or (sub.kind == "user" and sub.target == user_id)
        if watches and change in sub.change_types:
            enqueue(state, sub, user_item(sub, user_id, change))


def lifecycle_item(store: NotifyStore, sub: Subscription, event: str) -> dict[str, Any]:
    """A lifecycle notification in the configured shape: ``documented`` (tenantId) or ``observed``
    (organizationId, resourceData of the subscription, null sequence/encryptedContent)."""
    base: dict[str, Any] = {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": _stamp(sub.expiration),
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }
    if store.settings.lifecycle_shape == "documented":
        return {**base, "tenantId": sub.tenant_id}
    return {
        "id": None,
        **base,
        "changeType": None,
        "resource": f"Subscriptions/{sub.id}",
        "organizationId": sub.tenant_id,
        "sequence": None,
        "encryptedContent": None,
        "resourceChangeType": None,
        "resourceData": {
            "@odata.type": "#microsoft.graph.subscription",
            "@odata.id": f"subscriptions/{sub.id}",
            "id": sub.id,
        },
    }


def fire_lifecycle(state: EmulatorState, sub: Subscription, event: str) -> bool:
    """Apply ``event`` to ``sub`` and queue its lifecycle notification; returns whether one was queued
    (only with a lifecycleNotificationUrl).

    ``reauthorizationRequired`` holds delivery until ``reauthorize`` or a PATCH; ``subscriptionRemoved``
    deletes the subscription; ``missed`` only tells.
    """
    store = notify_store(state)
    if event == "reauthorizationRequired":
        sub.reauthorization_required = True
    elif event == "subscriptionRemoved":
        store.subscriptions.pop(sub.id, None)
    item = lifecycle_item(store, sub, event)
    store.record({"event": "lifecycle", "subscriptionId": sub.id, "lifecycleEvent": event})
    if sub.lifecycle_url is None:
        return False
    enqueue(state, sub, item, "lifecycle")
    return True


def group_item(sub: Subscription, group_id: str, change: str) -> dict[str, Any]:
    resource = f"Groups/{group_id}"
    return {
        "id": _item_id(),
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": _stamp(sub.expiration),
        "changeType": change,
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Group",
            "@odata.id": resource,
            "id": group_id,
            "organizationId": sub.tenant_id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }


def record_group_change(state: EmulatorState, group_id: str) -> None:
    """Notify ``groups`` and ``groups/{id}`` subscriptions that a group was created or its members changed
    (``updated``, as for users)."""
    for sub in _live(notify_store(state)):
        watches = sub.kind == "groups" or (sub.kind == "group" and sub.target == group_id)
        if watches and "updated" in sub.change_types:
            enqueue(state, sub, group_item(sub, group_id, "updated"))
