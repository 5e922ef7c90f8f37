"""One new message in, one mail event out: the step every path shares (a notification, a delta catch-up,
poll mode).

:meth:`MailIngest.ingest` claims the message in the ledger (:mod:`shared.notifications.ledger`), reads it
through the same mailbox scope check and audit as an on-demand read (the reader the app wires in is
:meth:`shared.mail.reads.MailReads.get_message`; the audit record's channel says ``notification``,
``delta`` or ``poll``), stages the event on the ledger row, and sends it to ``MAIL_EVENTS_QUEUE`` in the
host's queue encoding (base64); a claimant taking over from a worker that died after staging sends the
staged bytes without reading again:

.. code-block:: json

    {"type": "mail.received", "eventId": "…", "tenantId": "…",
     "mailbox": {"objectId": "…", "userPrincipalName": "…"}, "messageId": "…",
     "receivedDateTime": "…", "from": {"name": "…", "address": "…"}, "subject": "…",
     "hasAttachments": false, "webLink": "…", "channel": "notification"}

A message received before its mailbox was first watched (``Target.since``) is not news: it is skipped,
so turning ingestion on does not replay a mailbox's history. A message gone before it could be read, or a
mailbox that left the scope, is skipped too (the audit has the read's outcome). Other failures raise, so
the work message is retried; the claim is released first.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from shared.core.errors import GraphFunctionsError, MailboxOutOfScope, NotFound
from shared.notifications.ledger import Claim, Ledger, event_id
from shared.notifications.store import Target

logger = logging.getLogger(__name__)


class MessageReader(Protocol):
    """Reads one message as an on-demand read does: scope check, Graph read, audit record."""

    def __call__(
        self, tenant_id: str, mailbox: str, message_id: str, *, channel: str, request_id: str
    ) -> dict[str, Any]: ...


class PushedAccepter(Protocol):
    """Takes a message Graph pushed (rich notification) as a read: scope check and audit, no Graph read."""

    def __call__(
        self,
        tenant_id: str,
        mailbox: str,
        message_id: str,
        resource: dict[str, Any],
        *,
        channel: str,
        request_id: str,
    ) -> dict[str, Any]: ...


class QueueSender(Protocol):
    """Puts one message on a queue (raises StorageUnavailable)."""

    def __call__(self, body: bytes) -> None: ...


def parse_time(value: Any) -> datetime.datetime | None:
    """An ISO-8601 time from Graph (``Z`` or an offset), UTC; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def mail_event(target: Target, message: dict[str, Any], *, channel: str) -> dict[str, Any]:
    """The event of a new message (module docstring)."""
    mailbox = str(target.mailbox)
    message_id = str(message.get("id") or "")
    return {
        "type": "mail.received",
        "eventId": event_id(target.tenant_id, mailbox, message_id),
        "tenantId": target.tenant_id,
        "mailbox": {"objectId": mailbox, "userPrincipalName": target.upn},
        "messageId": message_id,
        "receivedDateTime": message.get("receivedDateTime"),
        "from": message.get("from"),
        "subject": message.get("subject"),
        "hasAttachments": message.get("hasAttachments") is True,
        "webLink": message.get("webLink"),
        "channel": channel,
    }


class MailIngest:
    """Ledger claim, audited read, one event (module docstring). Thread-safe."""

    def __init__(
        self,
        ledger: Ledger,
        read: MessageReader,
        send: QueueSender,
        *,
        accept: PushedAccepter | None = None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        checkpoint: Callable[[str], None] = lambda step: None,
    ) -> None:
        """``checkpoint`` is called after each step (``claimed``, ``read``, ``staged``, ``sent``,
        ``recorded``): production passes nothing; a test stops the worker there as a crash would."""
        self._ledger = ledger
        self._read = read
        self._accept = accept
        self._send = send
        self._now = now
        self._checkpoint = checkpoint

    def ingest(
        self,
        target: Target,
        message_id: str,
        *,
        channel: str,
        request_id: str,
        received: datetime.datetime | None = None,
        pushed: dict[str, Any] | None = None,
    ) -> str:
        """Publish ``message_id`` of ``target``'s mailbox once. ``pushed``: the message as a rich
        notification carried it (decrypted and verified): taken through the scope check and audit without a
        Graph read. Returns the outcome: ``published``,
        ``duplicate`` (its event is out already), ``old`` (received before the mailbox was watched),
        ``gone`` (no longer there) or ``out-of-scope``.

        Raises:
            ClaimHeldError: another worker holds the message (retry later).
            StorageUnavailable, UpstreamError, UpstreamThrottled, ...: the work is retried.
        """
        if target.mailbox is None:
            raise ValueError("ingest needs a mailbox target")
        if received is not None and target.since is not None and received < target.since:
            return "old"
        claim = self._ledger.claim(target.tenant_id, target.mailbox, message_id)
        if claim is None:
            return "duplicate"
        self._checkpoint("claimed")
        if claim.staged is not None:  # a worker died after staging it: send the very same bytes
            return self._publish(claim, claim.staged, channel=channel)
        try:
            if pushed is not None and self._accept is not None:
                message = self._accept(
                    target.tenant_id,
                    target.mailbox,
                    message_id,
                    pushed,
                    channel=channel,
                    request_id=request_id,
                )
            else:
                message = self._read(
                    target.tenant_id, target.mailbox, message_id, channel=channel, request_id=request_id
                )
        except NotFound:
            self._ledger.finish(claim, "skipped", Reason="gone")
            return "gone"
        except MailboxOutOfScope:
            self._ledger.finish(claim, "skipped", Reason="out-of-scope")
            return "out-of-scope"
        except GraphFunctionsError:
            self._ledger.finish(claim, "pending", LeaseUntil=self._now())  # free for the retry at once
            raise
        self._checkpoint("read")
        arrived = parse_time(message.get("receivedDateTime"))
        if target.since is not None and arrived is not None and arrived < target.since:
            self._ledger.finish(claim, "skipped", Reason="old")
            return "old"
        event = mail_event(target, message, channel=channel)
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        staged = self._ledger.stage(claim, body)
        if staged is None:  # this claim lapsed and another worker took the message over: it publishes
            logger.warning("A mail event's claim lapsed before it was sent; the new claimant sends it")
            return "duplicate"
        self._checkpoint("staged")
        return self._publish(staged, body, channel=channel)

    def _publish(self, claim: Claim, body: str, *, channel: str) -> str:
        """Send the staged event, then record it ``published`` (the staged copy cleared)."""
        identity = str(json.loads(body).get("eventId", ""))
        try:
            self._send(body.encode("utf-8"))
        except GraphFunctionsError:
            self._ledger.finish(claim, "sending", LeaseUntil=self._now())  # the retry sends the same bytes
            raise
        self._checkpoint("sent")
        if not self._ledger.finish(claim, "published", EventId=identity, Event=""):
            logger.warning("Mail event %s: the claim lapsed while publishing (a copy may follow)", identity)
        self._checkpoint("recorded")
        logger.info("Mail event %s published (%s)", identity, channel)
        return "published"
