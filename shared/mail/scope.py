"""Which mailboxes the app may read: the app's own mailbox scope (``MAILBOX_SCOPE``).

* unset (the default): none. Every read is refused with 403 ``mailbox_out_of_scope`` and a message saying
  which setting to set; reading mail is never on by accident.
* ``*``: every mailbox of the tenant.
* a group's object id: the mailboxes of its members, transitively (members of nested groups included),
  checked with Graph ``POST /users/{id}/checkMemberGroups`` (transitive by definition; application
  permissions ``User.ReadBasic.All`` and ``GroupMember.Read.All``, or ``User.Read.All`` as this app has).

A check's answer (member or not) is kept per mailbox for ``MAILBOX_SCOPE_CACHE_SECONDS`` (0: never kept),
so a warm mailbox costs at most one membership check per period; concurrent first reads of one mailbox
share one check. Exchange Online enforces its own layer (application access policies, RBAC for
Applications); :mod:`shared.mail.messages` maps its refusals to the same 403 (see docs/mail-access.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from shared.core.errors import (
    MailboxOutOfScope,
    NotFound,
    PermissionNotGranted,
    UpstreamError,
)
from shared.graph.client import GraphClient
from shared.mail.query import mailbox_path

logger = logging.getLogger(__name__)

WHOLE_TENANT = "*"
#: Mailboxes whose answers are kept at once (the oldest answers are dropped beyond it).
MAX_CACHED_MAILBOXES = 10_000

UNSET_MESSAGE = (
    "No mailbox may be read: the operator has not configured MAILBOX_SCOPE. Set it to the object id of the "
    "security group whose members' mailboxes this app may read (or * for every mailbox), and restrict the "
    "app in Exchange Online too (see docs/mail-access.md)."
)
OUTSIDE_MESSAGE = (
    "This mailbox is outside the mailboxes this app may read: its owner is not a member of the group "
    "MAILBOX_SCOPE names (directly or through nested groups)."
)


class MailboxScope:
    """Decides whether a mailbox is in the app's scope (module docstring). Thread-safe."""

    def __init__(
        self,
        graph: GraphClient,
        *,
        scope: str | None,
        cache_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._graph = graph
        self._scope = scope
        self._ttl = float(cache_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[str, tuple[bool, float]] = OrderedDict()  # mailbox -> (member, until)
        self._inflight: dict[str, threading.Lock] = {}

    @property
    def scope(self) -> str | None:
        return self._scope

    def require(self, mailbox: str) -> None:
        """Return when ``mailbox`` (a validated, lower-cased id or UPN) may be read.

        Raises:
            MailboxOutOfScope: no scope configured, or the owner is not in the group (403).
            NotFound: ``user_not_found``, no such user (group scopes only: ``*`` learns it from the read).
            PermissionNotGranted: Graph refuses the app the membership check (403).
            UpstreamThrottled, UpstreamError, CredentialUnavailable, ConfigurationError: see GraphClient.
        """
        if self._scope is None:
            raise MailboxOutOfScope(UNSET_MESSAGE)
        if self._scope == WHOLE_TENANT:
            return
        if not self._is_member(mailbox):
            raise MailboxOutOfScope(OUTSIDE_MESSAGE)

    def _cached(self, mailbox: str) -> bool | None:
        with self._lock:
            entry = self._answers.get(mailbox)
            if entry is None:
                return None
            member, until = entry
            if self._clock() >= until:
                del self._answers[mailbox]
                return None
            return member

    def _is_member(self, mailbox: str) -> bool:
        cached = self._cached(mailbox)
        if cached is not None:
            return cached
        with self._lock:
            gate = self._inflight.setdefault(mailbox, threading.Lock())
        with gate:  # one check per mailbox at a time: the others wait for its answer
            cached = self._cached(mailbox)
            if cached is not None:
                return cached
            try:
                member = self._check(mailbox)
            finally:
                with self._lock:
                    self._inflight.pop(mailbox, None)
            if self._ttl > 0:
                with self._lock:
                    self._answers[mailbox] = (member, self._clock() + self._ttl)
                    self._answers.move_to_end(mailbox)
                    while len(self._answers) > MAX_CACHED_MAILBOXES:
                        self._answers.popitem(last=False)
            return member

    def _check(self, mailbox: str) -> bool:
        group = str(self._scope)
        try:
            body = self._graph.post_json(
                f"{mailbox_path(mailbox)}/checkMemberGroups", {"groupIds": [group]}, client_input=True
            )
        except NotFound as exc:
            raise NotFound(
                "No user has this id or userPrincipalName",
                code="user_not_found",
                graph_code=exc.graph_code,
                graph_request_id=exc.graph_request_id,
            ) from exc
        except UpstreamError as exc:
            if exc.code == "upstream_forbidden":
                raise PermissionNotGranted(
                    "Microsoft Graph refused the app the membership check of MAILBOX_SCOPE: grant the app "
                    "registration the application permission GroupMember.Read.All (with User.ReadBasic.All "
                    "or User.Read.All) and admin consent.",
                    graph_code=exc.graph_code,
                    graph_request_id=exc.graph_request_id,
                ) from exc
            raise
        values = (body or {}).get("value")
        if not isinstance(values, list):
            raise UpstreamError("Microsoft Graph answered checkMemberGroups without a 'value' list")
        member = any(isinstance(v, str) and v.lower() == group for v in values)
        logger.info("Mailbox scope check: member=%s (group %s)", member, group)
        return member
