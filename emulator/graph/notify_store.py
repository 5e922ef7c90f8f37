"""State of Graph change notifications: subscriptions, their settings, the delivery queue and log, the
health of each notification endpoint, and the mailboxes' change log (for delivery and messages delta).

Kept in ``state.stores["graph.notify"]`` (:func:`notify_store`), cleared by a reset hook. Everything here is
mutated on the event loop only (handlers and the delivery task never await between reading and writing).
Times are the tenant's Unix time (``CLOCK.time()``), so ``POST /_emulator/clock`` ages subscriptions, retries
and endpoint windows together. Facts and sources: emulator/docs/notifications.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import CLOCK
from emulator.state import EmulatorState

#: Graph's own app id as the publisher of change notifications (the ``appid`` of validationTokens).
NOTIFICATION_PUBLISHER_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"


@dataclass
class NotifySettings:
    """Knobs changed through ``PUT /_emulator/graph/notifications/settings`` (names in camelCase there)."""

    #: Deliver on a background task (every ``tick_ms`` of real time) as Graph does; off, only
    #: ``POST /_emulator/graph/notifications/flush`` delivers (fully deterministic tests).
    auto_deliver: bool = True
    #: Time from a change to its notification being due (Graph: "avg < 1 min, max 3 min"). [EMULATOR] 0.
    delivery_delay_ms: int = 0
    #: Graph's reply deadline for a notification POST (3 s) and for the validation handshake (10 s).
    reply_deadline_ms: int = 3_000
    validation_timeout_ms: int = 10_000
    #: Retries: exponential back-off from ``retry_base_seconds``, capped per step, for up to 4 hours.
    retry_base_seconds: float = 60.0
    retry_max_interval_seconds: float = 3_600.0
    retry_window_seconds: float = 4 * 3_600.0
    #: A new message also produces an ``updated`` notification (subscriptions asking for it), as observed.
    created_then_updated: bool = True
    #: Probability that a change notification is POSTed twice (observed 2-4 POSTs per change).
    duplicate_rate: float = 0.0
    #: Shuffle what falls due together: Graph promises no order.
    shuffle: bool = True
    max_batch: int = 50  # [INFERRED] items per POST
    #: "observed" lifecycle payloads (organizationId, resourceData, sequence…) or the "documented" shape.
    lifecycle_shape: str = "observed"
    #: Lifetime ceilings in minutes (Microsoft's pages disagree: Outlook 4,230 / 10,070 / 10,080).
    outlook_max_minutes: int = 10_080
    outlook_rich_max_minutes: int = 1_440
    directory_max_minutes: int = 41_760
    minimum_minutes: int = 45
    #: Quotas (supported-resources include): per mailbox (all apps); users per app+tenant, tenant, app.
    mailbox_quota: int = 1_000
    directory_app_tenant_quota: int = 100
    directory_tenant_quota: int = 1_000
    directory_app_quota: int = 50_000
    #: Same app + changeType + resource twice: "conflict" (409, the 2024 page) or "allow" (the 2023 page).
    duplicate_subscriptions: str = "conflict"
    #: Slow/drop rule: >10 % of replies over the deadline in a 10-min window -> delay new ones 10 s;
    #: >15 % -> drop new ones for 10 min. Judged once ``slow_min_sample`` replies are in the window.
    slow_fraction: float = 0.10
    drop_fraction: float = 0.15
    slow_min_sample: int = 100
    slow_window_seconds: float = 600.0
    slow_delay_seconds: float = 10.0
    drop_seconds: float = 600.0
    #: When an endpoint starts dropping, send ``missed`` to the lifecycle URL of each Outlook subscription.
    missed_on_drop: bool = True
    #: Send ``reauthorizationRequired`` this many minutes before a subscription expires (once per expiry;
    #: 0 = never). Graph sends it when the subscription nears expiry, on a cadence it calls subject to change.
    reauthorization_before_expiry_minutes: int = 0
    #: Subscription API throttling (writes per app+tenant per 20 s).
    writes_per_20s: int = 1_000
    tick_ms: int = 50

    def public(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in self.__dict__.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


SETTING_NAMES = {_camel(k): k for k in NotifySettings.__dataclass_fields__}


@dataclass
class Subscription:
    id: str
    app_id: str
    tenant_id: str
    creator_id: str
    delegated_user: str | None
    resource: str  # as given (normalised: no leading "/")
    kind: str  # users | user | messages
    target: str | None  # user id (user, messages)
    folder: str | None  # folder id (messages in one folder) or None (all folders)
    select: list[str] | None
    filter: str | None
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    expiration: float
    client_state: str | None
    include_resource_data: bool
    certificate: str | None
    certificate_id: str | None
    tls_version: str
    notification_url_app_id: str | None
    created: float = field(default_factory=CLOCK.time)
    #: Set by a reauthorizationRequired challenge; delivery is held until reauthorize/PATCH.
    reauthorization_required: bool = False
    last_notification: float | None = None
    #: The expiry for which a scheduled reauthorizationRequired was already sent.
    challenged_for: float | None = None

    @property
    def is_outlook(self) -> bool:
        return self.kind == "messages"

    def to_graph(self) -> dict[str, Any]:
        expiry = dt.datetime.fromtimestamp(self.expiration, dt.UTC).isoformat(timespec="microseconds")
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": expiry.replace("+00:00", "Z"),
            "creatorId": self.creator_id,
            "includeResourceData": self.include_resource_data,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": self.certificate,
            "encryptionCertificateId": self.certificate_id,
            "notificationUrlAppId": self.notification_url_app_id,
            "notificationContentType": "application/json",
        }


@dataclass
class Pending:
    """One notification item waiting for (re)delivery to ``url``."""

    url: str
    sub_id: str
    item: dict[str, Any]
    kind: str  # change | lifecycle
    first: float
    due: float
    app_id: str = ""
    tenant_id: str = ""
    #: Validation tokens go with it (items of rich subscriptions, their lifecycle events included).
    rich: bool = False
    attempts: int = 0


@dataclass
class EndpointHealth:
    """Replies of one endpoint in the sliding window: (tenant time, over the deadline)."""

    samples: list[tuple[float, bool]] = field(default_factory=list)
    drop_until: float = 0.0

    def prune(self, now: float, window: float) -> None:
        self.samples = [s for s in self.samples if s[0] > now - window]


@dataclass
class MailChanges:
    """One mailbox's change log: message id -> (seq, folder id) of its last change, the seq at which a
    message was created, and tombstones of messages deleted or moved out of a folder: (seq, id, folder)."""

    seq: int = 0
    changed: dict[str, tuple[int, str]] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    removed: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class NotifyStore:
    settings: NotifySettings = field(default_factory=NotifySettings)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    queue: list[Pending] = field(default_factory=list)
    #: Every delivery attempt and every notification lost, dropped or discarded (the control API's log).
    log: list[dict[str, Any]] = field(default_factory=list)
    log_seq: int = 0
    health: dict[str, EndpointHealth] = field(default_factory=dict)
    outage: bool = False
    outage_lifecycle: bool = False
    #: Subscriptions that lost change notifications in the current outage (for ``sendMissed`` at its end).
    outage_lost: set[str] = field(default_factory=set)
    mail: dict[str, MailChanges] = field(default_factory=dict)
    #: Bumped by ``POST /_emulator/graph/mail/delta/reset``: older message delta links answer 410 Gone.
    mail_delta_reset: int = 0
    writes: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)
    rng: random.Random = field(default_factory=lambda: random.Random(19))

    def record(self, entry: dict[str, Any]) -> None:
        self.log_seq += 1
        self.log.append({"seq": self.log_seq, "at": CLOCK.time(), **entry})
        del self.log[:-5_000]  # bounded memory; seq numbers keep counting

    def mail_changes(self, user_id: str) -> MailChanges:
        changes = self.mail.get(user_id)
        if changes is None:
            changes = self.mail[user_id] = MailChanges()
        return changes

    def reset(self) -> None:
        for task in list(self.in_flight):
            task.cancel()
        self.in_flight.clear()
        self.settings = NotifySettings()
        self.subscriptions.clear()
        self.queue.clear()
        self.log.clear()
        self.log_seq = 0
        self.health.clear()
        self.outage = self.outage_lifecycle = False
        self.outage_lost.clear()
        self.mail.clear()
        self.mail_delta_reset = 0
        self.writes.clear()
        self.rng = random.Random(19)


def notify_store(state: EmulatorState) -> NotifyStore:
    store = state.stores.get("graph.notify")
    if not isinstance(store, NotifyStore):
        store = NotifyStore()
        state.stores["graph.notify"] = store
        state.reset_hooks.append(store.reset)
    return store
