"""The subscriptions timer's work: keep one subscription per in-scope mailbox and one for users, alive.

Each run (:meth:`SubscriptionKeeper.run`, every 5 minutes):

1. **Scope.** The mailboxes to watch are ``MAILBOX_SCOPE``'s: the group's members, nested groups included
   (``GET /groups/{id}/members``, then each nested group's; ``GroupMember.Read.All``), or every user for
   ``*`` (``User.Read.All``), or none. A new member gets a target row (``since`` = now: mail older
   than that is not news) and a catch-up; a member who left loses the subscription and the row.
2. **Subscriptions** (``MAIL_INGESTION_MODE=webhook``): a target without one gets one; one expiring within
   half its lifetime is renewed (PATCH); one Graph no longer has (absent from ``GET /subscriptions``, 404
   on renewal, ``subscriptionRemoved``) is created again and caught up; one whose client state an older
   key version signed (a key rotation) is replaced. At most :data:`MAX_CHANGES_PER_RUN` creations per
   run, so a large scope is brought up over a few runs without piling validation handshakes on the
   endpoint or quotas (one subscription per mailbox stays far under Outlook's 1,000 per mailbox).
3. **Catch-up.** A catch-up work message for each target that asked for one, each target on a process's
   first run (at start), each target not caught up for :data:`SWEEP_MINUTES` (an outage Graph did not
   report), and every target on every run in ``poll`` mode.

A failure with one target is recorded on its row (``lastError``) and the run goes on with the others: a
renewal or creation that failed is tried again next run, a reauthorization the worker could not make is
made by the next run's renewal (``reauthorizing``), a mailbox whose subscription could not be deleted keeps
its row (``leaving``) until a run deletes it. A failure to read the scope changes nothing (a partial member
list must not remove anyone); it is recorded on the users row (``scope: ...``) and the run fails, as does
a failure to list the app's subscriptions (``subscriptions: ...``; ``GET /subscriptions``).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from typing import Any

from shared.core.errors import ConfigurationError, GraphFunctionsError, NotFound
from shared.graph.client import GraphClient
from shared.notifications.client_state import ClientStates, fingerprint, key_version
from shared.notifications.graph_subscriptions import (
    MAIL_CHANGE_TYPE,
    MAIL_LIFETIME_MINUTES,
    RICH_MAIL_LIFETIME_MINUTES,
    USERS_CHANGE_TYPE,
    USERS_LIFETIME_MINUTES,
    Encryption,
    GraphSubscriptions,
    is_rich_resource,
    mailbox_resource,
    rich_mailbox_resource,
)
from shared.notifications.ingest import QueueSender
from shared.notifications.scope import scope_members
from shared.notifications.store import USERS_TARGET, NotificationTable, Target, mailbox_target

logger = logging.getLogger(__name__)

MAX_CHANGES_PER_RUN = 200
#: Prefixes of a whole run's failure, shown on the users row until a run gets past that step.
_RUN_ERRORS = ("scope: ", "subscriptions: ")
SWEEP_MINUTES = 60
NOTIFICATION_PATH = "/api/graph/notifications"
LIFECYCLE_PATH = "/api/graph/lifecycle"


def catch_up_message(tenant_id: str, key: str, reason: str) -> bytes:
    return json.dumps(
        {"v": 1, "kind": "catch-up", "tenantId": tenant_id, "target": key, "reason": reason},
        separators=(",", ":"),
    ).encode("utf-8")


class SubscriptionKeeper:
    """The timer's work for one tenant (module docstring). One per tenant."""

    def __init__(
        self,
        *,
        tenant_id: str,
        graph: GraphClient,
        table: NotificationTable,
        states: ClientStates,
        latest_key_version: Callable[[], str],
        send_work: QueueSender,
        scope: str | None,
        public_base_url: str | None,
        mode: str,
        encryption: Callable[[], Encryption | None] = lambda: None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        """``encryption()``: the certificate rich mail subscriptions use now (None: basic ones)."""
        self._encryption = encryption
        self._tenant = tenant_id
        self._graph = graph
        self._subscriptions = GraphSubscriptions(graph)
        self._table = table
        self._states = states
        self._latest = latest_key_version
        self._send_work = send_work
        self._scope = scope
        self._base = public_base_url
        self._mode = mode
        self._now = now
        self._started = False

    # -- scope --------------------------------------------------------------------------------------------

    def members(self) -> dict[str, str]:
        """The in-scope mailboxes (:func:`shared.notifications.scope.scope_members`)."""
        return scope_members(self._graph, self._scope)

    # -- the run ------------------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        """One pass (module docstring). Returns counts: created, renewed, removed, caught_up, failed.

        Raises:
            UpstreamError, StorageUnavailable, ...: the scope or the table could not be read (nothing
            changed); failures with single targets are recorded on their rows instead.
        """
        counts = {"created": 0, "renewed": 0, "removed": 0, "caught_up": 0, "failed": 0}
        first_run = not self._started  # until a run gets through: a failed first run must not skip it
        try:
            members = self.members()
        except GraphFunctionsError as error:
            # Nothing changes (a member list read part-way must not remove anyone); operators see why.
            if self._mode == "webhook":
                self._table.update(
                    self._tenant, USERS_TARGET, last_error=f"scope: {error.code}: {error.message}"[:500]
                )
            raise
        targets = {target.key: target for target in self._table.targets(self._tenant)}
        now = self._now()
        for object_id, upn in members.items():
            key = mailbox_target(object_id)
            if key not in targets:
                self._table.update(
                    self._tenant,
                    key,
                    mailbox=object_id,
                    upn=upn,
                    since=now,
                    status="new",
                    catch_up_requested=True,
                )
                targets[key] = Target(
                    tenant_id=self._tenant,
                    key=key,
                    mailbox=object_id,
                    upn=upn,
                    since=now,
                    catch_up_requested=True,
                )
            elif upn and targets[key].upn != upn:
                self._table.update(self._tenant, key, upn=upn)
        users = targets.get(USERS_TARGET)
        if users is not None and (users.last_error or "").startswith(_RUN_ERRORS):
            self._table.update(self._tenant, USERS_TARGET, last_error=None)
            targets[USERS_TARGET] = users._replace(last_error=None)
        for key, target in list(targets.items()):
            if target.mailbox is not None and target.mailbox not in members:
                if self._remove(target):
                    counts["removed"] += 1
                else:
                    counts["failed"] += 1
                del targets[key]
        if self._mode == "webhook":
            if USERS_TARGET not in targets:
                targets[USERS_TARGET] = Target(tenant_id=self._tenant, key=USERS_TARGET, since=now)
            try:
                live = self._subscriptions.live()
            except GraphFunctionsError as error:
                # Without Graph's list a removed subscription cannot be told from a live one: change none.
                self._table.update(
                    self._tenant,
                    USERS_TARGET,
                    last_error=f"subscriptions: {error.code}: {error.message}"[:500],
                )
                raise
            budget = MAX_CHANGES_PER_RUN
            for target in list(targets.values()):
                if target.subscription_id and target.subscription_id not in live:
                    logger.info(
                        "Graph no longer holds a subscription (expired or removed): creating it again"
                    )
                    target = target._replace(status="removed")
                try:
                    outcome = self._keep(target, budget > 0)
                except GraphFunctionsError as error:
                    counts["failed"] += 1
                    logger.warning(
                        "Subscription of a %s target failed: %s %s",
                        target.key.split("-")[0],
                        error.code,
                        error.message,
                    )
                    self._table.update(
                        self._tenant,
                        target.key,
                        # still owed a reauthorization: the next run renews it whatever its expiry
                        status="reauthorizing" if target.status == "reauthorizing" else "failed",
                        last_error=f"{error.code}: {error.message}"[:500],
                    )
                    continue
                if outcome == "created":
                    budget -= 1
                    counts["created"] += 1
                    if target.mailbox is not None:  # what the old subscription missed, found by delta
                        targets[target.key] = target._replace(catch_up_requested=True)
                elif outcome == "renewed":
                    counts["renewed"] += 1
        elif self._mode == "poll":
            for target in targets.values():
                if target.subscription_id:
                    self._drop_subscription(target)
        sweep = now - datetime.timedelta(minutes=SWEEP_MINUTES)
        for target in targets.values():
            if target.mailbox is None:
                continue
            due = (
                self._mode == "poll"
                or first_run
                or target.catch_up_requested
                or target.last_catch_up is None
                or target.last_catch_up < sweep
            )
            if due:
                reason = "poll" if self._mode == "poll" else "start" if first_run else "sweep"
                self._send_work(catch_up_message(self._tenant, target.key, reason))
                counts["caught_up"] += 1
        self._started = True
        logger.info("Subscriptions timer (%s): %s", self._mode, counts)
        return counts

    def _urls(self) -> tuple[str, str]:
        if not self._base or not self._base.startswith("https://"):
            raise ConfigurationError(
                "MAIL_INGESTION_MODE=webhook needs PUBLIC_BASE_URL, the app's https address Graph can reach "
                "(Graph calls https only); use MAIL_INGESTION_MODE=poll where Graph cannot reach the app"
            )
        return f"{self._base}{NOTIFICATION_PATH}", f"{self._base}{LIFECYCLE_PATH}"

    def _keep(self, target: Target, may_create: bool) -> str:
        now = self._now()
        if target.subscription_id and target.key_version and target.key_version != self._latest():
            logger.info("A subscription's client state was signed by an older key version: replacing it")
            self._drop_subscription(target)
            target = target._replace(subscription_id=None)
        encryption = None if target.is_users else self._encryption()
        if target.subscription_id and not target.is_users and target.status != "removed":
            # Rich notifications turned on or off (NOTIFICATION_CERTIFICATE_NAME): switch the subscription.
            if is_rich_resource(target.resource) != (encryption is not None):
                if not may_create:
                    return "deferred"
                logger.info(
                    "Switching a mailbox subscription to %s notifications", "rich" if encryption else "basic"
                )
                self._drop_subscription(target)
                target = target._replace(subscription_id=None)
            elif encryption is not None and target.certificate_id != encryption.certificate_id:
                return self._rotate(target, encryption, may_create)
        if target.subscription_id and target.status != "removed" and target.expires_at is not None:
            lifetime = self._lifetime(target.is_users, is_rich_resource(target.resource))
            # A reauthorization that failed (Graph holds delivery until one): a renewal reauthorizes too.
            due = target.status == "reauthorizing"
            if not due and target.expires_at - now > datetime.timedelta(minutes=lifetime / 2):
                return "kept"
            try:
                expires = self._subscriptions.renew(
                    target.subscription_id, now + datetime.timedelta(minutes=lifetime)
                )
            except NotFound:
                logger.info("Graph no longer has a subscription; creating it again")
                self._table.unindex(self._tenant, target.subscription_id)
            else:
                self._table.update(
                    self._tenant, target.key, expires_at=expires, status="active", last_error=None
                )
                return "renewed"
        if not may_create:
            return "deferred"
        self.create(target)
        return "created"

    @staticmethod
    def _lifetime(users: bool, rich: bool) -> int:
        if users:
            return USERS_LIFETIME_MINUTES
        return RICH_MAIL_LIFETIME_MINUTES if rich else MAIL_LIFETIME_MINUTES

    def _rotate(self, target: Target, encryption: Encryption, may_create: bool) -> str:
        """A new certificate version: PATCH it onto the subscription (items Graph encrypted with the older
        one still decrypt: the worker reads that version from the vault)."""
        logger.info("Rotating a mailbox subscription to certificate version %s", encryption.certificate_id)
        try:
            expires = self._subscriptions.rotate(
                str(target.subscription_id),
                encryption,
                self._now() + datetime.timedelta(minutes=RICH_MAIL_LIFETIME_MINUTES),
            )
        except NotFound:
            self._table.unindex(self._tenant, str(target.subscription_id))
            if not may_create:
                return "deferred"
            self.create(target)
            return "created"
        self._table.update(
            self._tenant,
            target.key,
            certificate_id=encryption.certificate_id,
            expires_at=expires,
            status="active",
            last_error=None,
        )
        return "renewed"

    def create(self, target: Target) -> None:
        """A new subscription for ``target`` (its old one, if any, forgotten), then a catch-up request.

        Raises:
            UpstreamError (validation failed, quota), ConfigurationError (no https PUBLIC_BASE_URL), ...
        """
        notification_url, lifecycle_url = self._urls()
        state = self._states.issue(self._tenant)
        encryption = None if target.is_users else self._encryption()
        if target.is_users:
            resource, change = "users", USERS_CHANGE_TYPE
        elif encryption is not None:
            resource, change = rich_mailbox_resource(str(target.mailbox)), MAIL_CHANGE_TYPE
        else:
            resource, change = mailbox_resource(str(target.mailbox)), MAIL_CHANGE_TYPE
        lifetime = self._lifetime(target.is_users, encryption is not None)
        created = self._subscriptions.create(
            resource=resource,
            change_type=change,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            expires_at=self._now() + datetime.timedelta(minutes=lifetime),
            client_state=state,
            encryption=encryption,
        )
        if target.subscription_id and target.subscription_id != created.subscription_id:
            self._table.unindex(self._tenant, target.subscription_id)
        self._table.index(self._tenant, created.subscription_id, target.key)
        changes: dict[str, Any] = {
            "subscription_id": created.subscription_id,
            "resource": resource,
            "client_state_hash": fingerprint(state),
            "key_version": key_version(state),
            "certificate_id": encryption.certificate_id if encryption is not None else None,
            "expires_at": created.expires_at,
            "status": "active",
            "last_error": None,
        }
        if not target.is_users:
            changes["catch_up_requested"] = True
        if target.since is None:
            changes["since"] = self._now()
        self._table.update(self._tenant, target.key, **changes)

    def reauthorize(self, target: Target) -> None:
        """Answer ``reauthorizationRequired``: reauthorize; a subscription Graph lost is created again.

        The row is ``reauthorizing`` until Graph answers, so when every attempt of the worker fails (an
        outage longer than its retries) the timer's next run renews it (a PATCH reauthorizes as well).

        Raises:
            UpstreamError, UpstreamThrottled, ...: the row stays ``reauthorizing``.
        """
        if not target.subscription_id:
            self.create(target)
            return
        self._table.update(self._tenant, target.key, status="reauthorizing")
        try:
            self._subscriptions.reauthorize(target.subscription_id)
        except NotFound:
            self.create(target)
            return
        self._table.update(self._tenant, target.key, status="active", last_error=None)

    def _drop_subscription(self, target: Target) -> None:
        if target.subscription_id:
            self._subscriptions.delete(target.subscription_id)
            self._table.unindex(self._tenant, target.subscription_id)
            self._table.update(
                self._tenant,
                target.key,
                subscription_id=None,
                status="polling" if self._mode == "poll" else "new",
            )

    def _remove(self, target: Target) -> bool:
        """Delete the subscription of a mailbox that left the scope, then its row; True when done.

        When the DELETE fails the row stays (``leaving``, ``lastError``) so the next run deletes it again:
        forgetting it would leave Graph posting for a mailbox out of scope until the subscription expires
        (its notifications reach the read's scope check and are skipped, but cost a read each)."""
        try:
            if target.subscription_id:
                self._subscriptions.delete(target.subscription_id)
        except GraphFunctionsError as error:
            logger.warning(
                "Deleting the subscription of a mailbox that left the scope failed: %s", error.code
            )
            self._table.update(
                self._tenant,
                target.key,
                status="leaving",
                last_error=f"{error.code}: {error.message}"[:500],
            )
            return False
        self._table.delete(target)
        logger.info("A mailbox left the scope: its subscription and row are removed")
        return True
