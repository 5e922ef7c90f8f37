"""The queue worker (``MAIL_NOTIFICATION_QUEUE``): what the webhook and the timer queued, done.

Two kinds of work message:

* ``notifications`` (from the webhook): each item is bound to its subscription's target (a point read of
  the subscription index; the client state's fingerprint must match the one stored when the subscription
  was created, and a message's mailbox must be the target's), then

  - a mailbox notification: de-duplicated by resource, change type and ETag (:class:`~shared.
    notifications.ledger.Ledger` ``seen``), ``deleted`` ignored, else the message is ingested
    (:class:`~shared.notifications.ingest.MailIngest`: one event per message, ever). A rich one
    (``encryptedContent``, with ``NOTIFICATION_CERTIFICATE_NAME`` set) is decrypted with the certificate
    version it names and its content becomes the event, without a Graph read (the same scope check and
    audit); only content whose tokens the webhook verified (``verified``) is used; content that does not
    decrypt or verify is dropped (logged without content, no event: the delta catch-up still finds a
    genuine message);
  - a users notification: the directory reaction (:class:`~shared.notifications.directory.
    DirectoryReaction`): a user disabled or deleted has their sessions in this app ended;
  - a lifecycle notification: ``reauthorizationRequired`` reauthorizes, ``subscriptionRemoved``
    creates the subscription again, and both, like ``missed``, queue a catch-up.

* ``catch-up`` (from the timer, lifecycle events, new targets): the mailbox's delta
  (:class:`~shared.notifications.catchup.CatchUp`).

Anything not bound to a subscription of this app is dropped with a log line (no Graph call). A failure
worth retrying raises: the host delivers the message again after ``visibilityTimeout`` (host.json), up to
``maxDequeueCount``; after that it lands in ``<queue>-poison`` and the timer's periodic catch-up still
finds the mail it was about.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from shared.core.errors import GraphFunctionsError
from shared.notifications.catchup import CatchUp
from shared.notifications.directory import DirectoryReaction
from shared.notifications.ingest import MailIngest
from shared.notifications.keeper import SubscriptionKeeper, catch_up_message
from shared.notifications.ledger import Ledger
from shared.notifications.rich import RichContent, RichContentError
from shared.notifications.store import NotificationTable, Target
from shared.notifications.wire import message_of, user_of

logger = logging.getLogger(__name__)

#: ``lastNotification`` is written at most this often per target (a burst costs one write).
TOUCH_SECONDS = 30


class TenantTools(Protocol):
    """What the worker needs of one tenant (wired by :mod:`shared.app`)."""

    def catch_up(self) -> CatchUp: ...

    def keeper(self) -> SubscriptionKeeper: ...

    def directory(self) -> DirectoryReaction: ...


class Worker:
    """Does one work message (module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        *,
        table: NotificationTable,
        ledger: Ledger,
        ingest: MailIngest,
        tools: Callable[[str], TenantTools],
        send_work: Callable[[bytes], None],
        serves: Callable[[str], bool],
        rich: RichContent | None = None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._table = table
        self._ledger = ledger
        self._ingest = ingest
        self._tools = tools
        self._send_work = send_work
        self._serves = serves
        self._rich = rich
        self._now = now

    def handle(self, body: bytes, *, request_id: str) -> dict[str, int]:
        """Do one work message. Returns outcome counts. A message that is not ours is dropped (logged).

        Raises:
            ClaimHeldError, StorageUnavailable, UpstreamError, UpstreamThrottled, ...: retry the message
                later.
        """
        try:
            work = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            logger.warning("Dropped a work message that is not JSON")
            return {"dropped": 1}
        if not isinstance(work, dict) or work.get("v") != 1:
            logger.warning("Dropped a work message of an unknown version")
            return {"dropped": 1}
        kind = work.get("kind")
        if kind == "catch-up":
            return self._catch_up(work, request_id=request_id)
        if kind == "notifications" and isinstance(work.get("items"), list):
            return self._notifications(work, request_id=request_id)
        logger.warning("Dropped a work message of an unknown kind")
        return {"dropped": 1}

    def _catch_up(self, work: dict[str, Any], *, request_id: str) -> dict[str, int]:
        tenant_id, key = str(work.get("tenantId", "")), str(work.get("target", ""))
        if not self._serves(tenant_id):
            return {"dropped": 1}
        target = self._table.target(tenant_id, key)
        if target is None or target.mailbox is None:
            return {"dropped": 1}
        reason = str(work.get("reason", ""))
        channel = "poll" if reason == "poll" else "delta"
        return dict(self._tools(tenant_id).catch_up().run(target, channel=channel, request_id=request_id))

    def _notifications(self, work: dict[str, Any], *, request_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in work["items"]:
            if not isinstance(item, dict):
                continue
            outcome = self._item(item, request_id=request_id)
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def _bound(self, item: dict[str, Any]) -> Target | None:
        tenant_id, subscription_id = str(item.get("tenantId", "")), str(item.get("subscriptionId", ""))
        if not self._serves(tenant_id):
            return None
        target = self._table.by_subscription(tenant_id, subscription_id)
        if (
            target is None
            or not target.client_state_hash
            or target.client_state_hash != item.get("clientState")
        ):
            logger.warning("Dropped a notification not bound to a current subscription of this app")
            return None
        return target

    def _item(self, item: dict[str, Any], *, request_id: str) -> str:
        target = self._bound(item)
        if target is None:
            return "unbound"
        event = item.get("lifecycleEvent")
        if isinstance(event, str) and event:
            return self._lifecycle(target, event)
        self._touch(target)
        resource, change, etag = (
            str(item.get("resource", "")),
            str(item.get("changeType", "")),
            item.get("etag"),
        )
        etag = etag if isinstance(etag, str) else None
        if target.is_users:
            user = user_of(resource)
            if user is None:
                return "unbound"
            return self._tools(target.tenant_id).directory().react(user, change)
        found = message_of(resource)
        if found is None or found[0] != target.mailbox:
            logger.warning("Dropped a notification about a resource outside its subscription's mailbox")
            return "unbound"
        if change == "deleted":
            return "deleted"
        if self._ledger.seen(target.tenant_id, resource, change, etag):
            return "duplicate"
        encrypted = item.get("encryptedContent")
        pushed: dict[str, Any] | None = None
        if self._rich is not None and isinstance(encrypted, dict) and item.get("verified") is True:
            try:
                pushed = self._open(encrypted, found[1])
            except RichContentError as error:
                # Never the content: only that it did not verify, and why in general terms.
                logger.warning("Dropped a rich notification: %s", error.message)
                return "rejected"
        outcome = self._ingest.ingest(
            target, found[1], channel="notification", request_id=request_id, pushed=pushed
        )
        self._ledger.mark_seen(target.tenant_id, resource, change, etag)
        return outcome

    def _open(self, encrypted: dict[str, Any], message_id: str) -> dict[str, Any]:
        """The decrypted message of a rich item whose tokens the webhook verified.

        Raises:
            RichContentError: unknown certificate id, signature or content do not verify, or the content is
                about another message than the notification's resource.
            CredentialUnavailable: the vault cannot be read now (the work message is retried).
        """
        if self._rich is None:
            raise RichContentError("No certificate to decrypt with")
        message = self._rich.open(encrypted)
        if str(message.get("id") or "") != message_id:
            raise RichContentError("The content is about another message than the notification's resource")
        return message

    def _touch(self, target: Target) -> None:
        now = self._now()
        last = target.last_notification
        if last is None or (now - last).total_seconds() >= TOUCH_SECONDS:
            self._table.update(target.tenant_id, target.key, last_notification=now)

    def _lifecycle(self, target: Target, event: str) -> str:
        tools = self._tools(target.tenant_id)
        stamp = f"{event} at {self._now().isoformat(timespec='seconds')}"
        self._table.update(target.tenant_id, target.key, last_lifecycle=stamp)
        logger.info(
            "Lifecycle event %s for a %s subscription", event, "users" if target.is_users else "mailbox"
        )
        try:
            if event == "reauthorizationRequired":
                tools.keeper().reauthorize(target)
            elif event == "subscriptionRemoved":
                self._table.update(target.tenant_id, target.key, status="removed")
                tools.keeper().create(target)
        except GraphFunctionsError as error:
            self._table.update(
                target.tenant_id, target.key, last_error=f"{error.code}: {error.message}"[:500]
            )
            raise
        if target.mailbox is not None:
            self._send_work(catch_up_message(target.tenant_id, target.key, event))
        return event
