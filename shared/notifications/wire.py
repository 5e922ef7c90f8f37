"""What Microsoft Graph posts to the webhook endpoints, parsed strictly: a ``changeNotificationCollection``
(``{"value": [...]}``) of change notifications or lifecycle notifications, and the validation handshake.

Standard library only: this module runs on the request path of a cold process, where Graph allows 10 s
for the handshake and 3 s for a notification (docs/change-notifications.md).

Limits (a real batch is far below them; anything above is refused with no work done):

* a body of at most :data:`MAX_BODY_BYTES`; at most :data:`MAX_ITEMS` notifications;
* ``subscriptionId``, ``tenantId`` (or ``organizationId``, as lifecycle posts are observed) GUIDs;
  ``clientState`` at most 255 characters (the changeNotification resource's limit); ``resource`` at most
  1,024; ``changeType`` one of ``created``, ``updated``, ``deleted``; ``lifecycleEvent`` one of
  ``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``.

Sources: the changeNotification and resourceData resources, the webhook delivery and lifecycle pages of
Microsoft Graph's documentation (cited in ``../shared/reference/change-notifications.md`` §3, §5).
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.core.errors import BadRequest, GraphFunctionsError
from shared.core.patterns import GUID_PATTERN
from shared.core.records import Record

#: The largest body accepted (a batch of rich notifications stays far below).
MAX_BODY_BYTES = 1024 * 1024
#: The most notifications accepted in one post.
MAX_ITEMS = 1000
#: A validation token longer than this is not Graph's (observed tokens are about 100 characters).
MAX_TOKEN_CHARS = 1024
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_MAX_CLIENT_STATE = 255
_MAX_RESOURCE = 1024
_MAX_ETAG = 256
# A message's resource: Users/{id}/Messages/{id}, users/{id}@{tenant}/messages/{id}, or through a folder.
MESSAGE_RESOURCE = r"(?i)users/([^/@]+)(?:@[^/]+)?/(?:mailfolders(?:\('[^/']+'\)|/[^/]+)/)?messages/([^/]+)"
USER_RESOURCE = r"(?i)users/([^/@]+)(?:@[^/]+)?"
_PRINTABLE = r"[\x20-\x7e]*"


class PayloadTooLargeError(GraphFunctionsError):
    """A post larger than the webhook accepts (413): refused before it is read."""

    status = 413
    default_code = "payload_too_large"


class Notification(Record):
    """One change or lifecycle notification as Graph sent it (ids lower-cased).

    Attributes:
        subscription_id, tenant_id: the subscription and its tenant.
        client_state: the value the app gave the subscription, echoed (never logged).
        change_type: ``created``/``updated``/``deleted``; None on a lifecycle notification.
        lifecycle_event: ``reauthorizationRequired``/``subscriptionRemoved``/``missed``; None otherwise.
        resource: the changed resource's path relative to Graph v1.0 (empty on lifecycle posts).
        etag: ``resourceData["@odata.etag"]`` when present.
        encrypted: ``encryptedContent`` of a rich notification (left for the worker to decrypt).
    """

    subscription_id: str
    tenant_id: str
    client_state: str
    change_type: str | None
    lifecycle_event: str | None
    resource: str
    etag: str | None = None
    encrypted: dict[str, Any] | None = None
    #: ``value[].id``, Graph's id of the notification itself (optional; a retry of a post repeats it).
    notification_id: str | None = None

    def __repr__(self) -> str:  # the client state is a credential: never in a repr (or a log)
        return (
            f"Notification(subscription={self.subscription_id}, change={self.change_type}, "
            f"lifecycle={self.lifecycle_event})"
        )


class Collection(Record):
    """A parsed post: the notifications and the top-level ``validationTokens`` of rich notifications."""

    items: tuple[Notification, ...]
    validation_tokens: tuple[str, ...] = ()


def validation_reply(token: str | None) -> str | None:
    """The text to echo for Graph's validation handshake: the ``validationToken`` query parameter, already
    URL-decoded by the host (an encoded echo fails Graph's check). None when the request is not a
    handshake.

    Raises:
        BadRequest: ``invalid_validation_token``: longer than :data:`MAX_TOKEN_CHARS` or not printable.
    """
    if token is None:
        return None
    if len(token) > MAX_TOKEN_CHARS or not re.fullmatch(_PRINTABLE, token):
        raise BadRequest(
            "validationToken is not a Microsoft Graph validation token", code="invalid_validation_token"
        )
    return token


def _text(item: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(
            f"Each notification needs '{key}' as a string of at most {limit} characters",
            code="invalid_notification",
        )
    return value


def _guid(item: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and re.fullmatch(GUID_PATTERN, value):
            return value.lower()
    raise BadRequest(f"Each notification needs '{keys[0]}' as a GUID", code="invalid_notification")


def _notification(item: Any, *, lifecycle: bool) -> Notification:
    if not isinstance(item, dict):
        raise BadRequest("Each entry of 'value' must be an object", code="invalid_notification")
    subscription_id = _guid(item, "subscriptionId")
    tenant_id = _guid(item, "tenantId", "organizationId")
    client_state = _text(item, "clientState", _MAX_CLIENT_STATE) or ""
    # Only strings can be known values (an object or a list here would not even hash).
    event, change = item.get("lifecycleEvent"), item.get("changeType")
    event = event if isinstance(event, str) or event is None else ""
    change = change if isinstance(change, str) else None
    raw_id = item.get("id")
    notification_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= _MAX_ETAG else None
    if lifecycle or event is not None:
        if event not in LIFECYCLE_EVENTS:
            raise BadRequest(
                "A lifecycle notification needs a known 'lifecycleEvent'", code="invalid_notification"
            )
        return Notification(
            subscription_id=subscription_id,
            tenant_id=tenant_id,
            client_state=client_state,
            change_type=None,
            lifecycle_event=str(event),
            resource="",
            notification_id=notification_id,
        )
    if change not in CHANGE_TYPES:
        raise BadRequest(
            "Each notification needs 'changeType' created, updated or deleted", code="invalid_notification"
        )
    resource = _text(item, "resource", _MAX_RESOURCE) or ""
    data = item.get("resourceData")
    etag = None
    if isinstance(data, dict):
        raw = data.get("@odata.etag")
        etag = raw if isinstance(raw, str) and len(raw) <= _MAX_ETAG else None
    encrypted = item.get("encryptedContent")
    return Notification(
        subscription_id=subscription_id,
        tenant_id=tenant_id,
        client_state=client_state,
        change_type=str(change),
        lifecycle_event=None,
        resource=resource,
        etag=etag,
        encrypted=encrypted if isinstance(encrypted, dict) else None,
        notification_id=notification_id,
    )


def parse_collection(body: bytes, *, lifecycle: bool = False) -> Collection:
    """The notifications of a post's ``body``. ``lifecycle``: the lifecycle endpoint (every item must be a
    lifecycle notification); otherwise change notifications, and lifecycle ones if Graph mixes them in.

    Raises:
        PayloadTooLargeError: more than :data:`MAX_BODY_BYTES`.
        BadRequest: ``invalid_notification``: not JSON, no ``value`` list, too many or malformed items.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"A notification post may hold at most {MAX_BODY_BYTES} bytes", code="payload_too_large"
        )
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The body is not JSON", code="invalid_notification") from exc
    values = document.get("value") if isinstance(document, dict) else None
    if not isinstance(values, list) or not values:
        raise BadRequest(
            "The body needs a non-empty 'value' list of notifications", code="invalid_notification"
        )
    if len(values) > MAX_ITEMS:
        raise BadRequest(f"At most {MAX_ITEMS} notifications per post", code="invalid_notification")
    tokens = document.get("validationTokens")
    token_list: tuple[str, ...] = ()
    if isinstance(tokens, list) and all(isinstance(t, str) and len(t) < 16384 for t in tokens):
        token_list = tuple(tokens[:16])
    return Collection(
        items=tuple(_notification(item, lifecycle=lifecycle) for item in values), validation_tokens=token_list
    )


def message_of(resource: str) -> tuple[str, str] | None:
    """``(mailbox object id, message id)`` of a message resource (lower-cased mailbox), None otherwise."""
    match = re.fullmatch(MESSAGE_RESOURCE, resource.strip("/"))
    if match is None:
        return None
    return match.group(1).lower(), match.group(2)


def user_of(resource: str) -> str | None:
    """The object id of a user resource (``Users/{id}``), lower-cased; None otherwise."""
    match = re.fullmatch(USER_RESOURCE, resource.strip("/"))
    if match is None or not re.fullmatch(GUID_PATTERN, match.group(1)):
        return None
    return match.group(1).lower()
