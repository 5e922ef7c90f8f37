"""The webhook's work on the request path: check what Graph posted and put it on the work queue, in
milliseconds. Graph wants a 2xx within 3 s and counts slower answers against the endpoint ("slow" at
10 %, "drop" at 15 %), so nothing here calls Graph, scans a table or decrypts.

For each post (:meth:`Intake.accept`):

1. the body is parsed strictly (:mod:`shared.notifications.wire`); oversized or malformed: 413/400 and
   nothing else happens;
2. each notification's tenant must be one the app serves and its ``clientState`` must verify
   (:class:`~shared.notifications.client_state.ClientStates`: one HMAC, constant-time); the others are
   dropped, counted in the log, never echoed (the answer is 202 all the same, as Graph recommends, so a
   prober learns nothing);
3. a notification seen in the last minutes (same subscription, change, resource and ETag: a replay, or
   Graph's retry of a post already taken; for lifecycle notifications, Graph's notification id) is
   dropped (:class:`RecentNotifications`);
4. the rest go on the work queue (``MAIL_NOTIFICATION_QUEUE``) as one or more messages under the queue's
   64 KiB limit, each item carrying the client state's fingerprint (never the value); concurrent posts
   share queue writes (:mod:`shared.notifications.group_commit`). A storage failure is a 503, so Graph
   retries the post later (for up to 4 h).

Rich notifications (``encryptedContent``; :mod:`shared.notifications.rich`): the post's ``validationTokens``
are verified here, with Microsoft's signing keys from the process's cache (no fetch while they are
cached; nothing is decrypted and Graph is not called on this path). Items the tokens do not vouch for
(forged, expired, another audience or publisher, another tenant) are refused like a wrong client state:
not queued, the answer 202 all the same (Graph: never reveal the verdict). When the keys cannot be
fetched (Entra unreachable with nothing cached: each fetch is bounded at 1 s and a failure is answered
from memory for 5 s, so concurrent posts do not pile up on it), the content cannot be trusted and the
items are treated as basic notifications: their ``encryptedContent`` is dropped and the worker reads each
message from Graph (their client state verified, as for any notification). Nothing waits for Entra and
no unverified content is ever used. With no certificate configured, ``encryptedContent`` is dropped too.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from shared.core.errors import CredentialUnavailable
from shared.core.records import Record
from shared.notifications.client_state import ClientStates, fingerprint
from shared.notifications.group_commit import GroupCommit
from shared.notifications.rich import RichContent, RichContentError
from shared.notifications.wire import Collection, Notification, parse_collection

logger = logging.getLogger(__name__)

#: The largest raw work message: base64 makes it 4/3 larger, under the queue's 64 KiB.
MAX_WORK_BYTES = 45_000
#: How long a notification is remembered as taken (replays and Graph's own retries inside it are dropped).
REPLAY_SECONDS = 600.0
#: Lifecycle notifications (by Graph's notification id) are remembered for less.
LIFECYCLE_REPLAY_SECONDS = 60.0
MAX_REMEMBERED = 100_000
WORK_VERSION = 1


class WorkSender(Protocol):
    """Puts one message on the work queue (raises StorageUnavailable)."""

    def __call__(self, body: bytes) -> None: ...


class IntakeResult(Record):
    """What became of a post: notifications queued, refused (tenant or client state) and replays dropped."""

    queued: int
    refused: int
    replayed: int


class RecentNotifications:
    """Digests of notifications taken lately, each kept for its period (bounded). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, limit: int = MAX_REMEMBERED) -> None:
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()  # digest -> until

    def seen(self, digest: str) -> bool:
        now = self._clock()
        with self._lock:
            until = self._seen.get(digest)
            return until is not None and until > now

    def remember(self, digests: list[tuple[str, float]]) -> None:
        now = self._clock()
        with self._lock:
            for digest, period in digests:
                self._seen[digest] = now + period
                self._seen.move_to_end(digest)
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)


def digest(item: Notification) -> str | None:
    """What identifies a notification for replay detection (no secret in it); None when a repeat cannot be
    told from news: a lifecycle notification without Graph's notification id (a second ``missed`` a minute
    later is a new gap to catch up), and a change without an ETag (users notifications carry none: a user
    disabled, enabled and disabled again within minutes is three changes, and the last must end sessions)."""
    if item.lifecycle_event is None and not item.etag:
        return None
    if item.lifecycle_event is not None:
        if item.notification_id is None:
            return None
        text = f"{item.subscription_id}|{item.lifecycle_event}|{item.notification_id}"
    else:
        text = "|".join((item.subscription_id, item.change_type or "", item.resource, item.etag or ""))
        if item.encrypted is not None:
            # Rich: the content is part of what was taken, so a post with forged or tampered content that
            # passes the webhook's checks cannot make Graph's genuine post look like a replay (the worker
            # drops the bad one; the ledger still lets one event out per message).
            text += "|" + json.dumps(item.encrypted, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def work_item(item: Notification, verified: bool = False) -> dict[str, Any]:
    """A notification as the work queue carries it: the client state's fingerprint, not the value;
    ``verified``: the webhook verified the post's validation tokens for this rich item (otherwise its
    ``encryptedContent`` is not kept: the worker reads the message from Graph)."""
    entry: dict[str, Any] = {
        "subscriptionId": item.subscription_id,
        "tenantId": item.tenant_id,
        "clientState": fingerprint(item.client_state),
        "changeType": item.change_type,
        "lifecycleEvent": item.lifecycle_event,
        "resource": item.resource,
        "etag": item.etag,
    }
    if item.encrypted is not None and verified:
        entry["encryptedContent"] = item.encrypted
        entry["verified"] = True
    return entry


def work_messages(items: list[dict[str, Any]], tokens: tuple[str, ...], received: str) -> list[bytes]:
    """``items`` split over work messages of at most :data:`MAX_WORK_BYTES` (an item that alone exceeds it
    loses its ``encryptedContent``: the worker reads the message from Graph instead)."""

    def encode(chunk: list[dict[str, Any]]) -> bytes:
        body = {"v": WORK_VERSION, "kind": "notifications", "received": received, "items": chunk}
        if tokens:
            body["validationTokens"] = list(tokens)
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    messages: list[bytes] = []
    chunk: list[dict[str, Any]] = []
    for item in items:
        if len(encode([item])) > MAX_WORK_BYTES:
            item = {key: value for key, value in item.items() if key != "encryptedContent"}
        if chunk and len(encode([*chunk, item])) > MAX_WORK_BYTES:
            messages.append(encode(chunk))
            chunk = []
        chunk.append(item)
    if chunk:
        messages.append(encode(chunk))
    return messages


class Intake:
    """The webhook's request-path work (module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        states: ClientStates,
        *,
        serves: Callable[[str], bool],
        send: WorkSender,
        recent: RecentNotifications | None = None,
        rich: RichContent | None = None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        """``rich``: the token check of rich notifications (None: the app asked for none)."""
        self._rich = rich
        self._states = states
        self._serves = serves
        self._send = send
        self._recent = recent or RecentNotifications()
        self._now = now
        self._commit = GroupCommit(lambda items: work_messages(items, (), self._now().isoformat()), send)

    def accept(self, body: bytes, *, lifecycle: bool) -> IntakeResult:
        """Check ``body`` (a post to the notification or, ``lifecycle``, the lifecycle URL) and queue what
        is genuine and new.

        Raises:
            PayloadTooLargeError, BadRequest: the post is not a notification collection (nothing queued).
            StorageUnavailable: the work queue failed (Graph retries the post).
            CredentialUnavailable: no key to check client states with (Graph retries).
        """
        collection: Collection = parse_collection(body, lifecycle=lifecycle)
        replayed = 0
        genuine = [
            item
            for item in collection.items
            if self._serves(item.tenant_id) and self._states.verify(item.tenant_id, item.client_state)
        ]
        refused = len(collection.items) - len(genuine)
        verdict = self._verdict(collection, genuine)
        taken: list[tuple[Notification, bool]] = []
        digests: list[tuple[str, float]] = []
        for item in genuine:
            verified = False
            if item.encrypted is not None and isinstance(verdict, frozenset):
                if item.tenant_id not in verdict:
                    refused += 1
                    continue
                verified = True
            key = digest(item)
            if key is not None and (self._recent.seen(key) or any(key == known for known, _ in digests)):
                replayed += 1
                continue
            taken.append((item, verified))
            if key is not None:
                digests.append((key, LIFECYCLE_REPLAY_SECONDS if item.lifecycle_event else REPLAY_SECONDS))
        if taken:
            self._commit.submit([work_item(item, verified) for item, verified in taken])
            self._recent.remember(digests)
        if refused:
            logger.warning(
                "Graph webhook: %d of %d notifications refused (unknown tenant or client state)",
                refused,
                len(collection.items),
            )
        return IntakeResult(queued=len(taken), refused=refused, replayed=replayed)

    def _verdict(self, collection: Collection, genuine: list[Notification]) -> frozenset[str] | bool | None:
        """What the post's validation tokens say of its rich items: the tenants they vouch for (empty: none,
        the tokens are forged or stale), False when Microsoft's keys cannot be fetched now (the items are
        taken as basic ones), None when there is nothing to verify (no rich item, or no certificate)."""
        tenants = {item.tenant_id for item in genuine if item.encrypted is not None}
        if self._rich is None or not tenants:
            return None
        try:
            return self._rich.verify(collection.validation_tokens, tenants)
        except RichContentError as error:
            logger.warning("Graph webhook: rich notifications refused (%s)", error.message)
            return frozenset()
        except CredentialUnavailable as error:
            logger.warning(
                "Graph webhook: Microsoft's signing keys are unavailable (%s); rich items read from Graph",
                error.code,
            )
            return False
