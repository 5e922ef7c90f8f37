"""Which mailboxes the app may read: the app's own mailbox scope (``MAILBOX_SCOPE``).

* unset (the default): none. Every read is refused with 403 ``mailbox_out_of_scope`` and a message saying
  which setting to set; reading mail is never on by accident.
* ``*``: every mailbox of the tenant.
* a group's object id: the mailboxes of its members, transitively (members of nested groups included),
  checked with Graph ``POST /users/{id}/checkMemberGroups`` (transitive by definition; application
  permissions ``User.ReadBasic.All`` and ``GroupMember.Read.All``, or ``User.Read.All`` as this app has).

Every read names its mailbox's owner as the directory knows it, whatever the caller typed (an object id or
a UPN, perhaps an old one): :meth:`MailboxScope.require` resolves the owner (``GET /users/{id}`` selecting
``id`` and ``userPrincipalName``) before the membership check, which then asks by object id, and hands
the owner to the audit record. Both answers (the owner of a typed mailbox, member or not) are kept for
``MAILBOX_SCOPE_CACHE_SECONDS`` (0: never kept), so a warm mailbox costs no Graph call per read and a cold
one two (one with ``*``); concurrent first reads of one mailbox share each call. With no scope configured
nothing is resolved: no read is possible and none costs a Graph call.

Exchange Online enforces its own layer (application access policies, RBAC for Applications);
:mod:`shared.mail.messages` maps its refusals to the same 403 (see docs/mail-access.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from shared.core.errors import (
    MailboxOutOfScope,
    NotFound,
    PermissionNotGranted,
    UpstreamError,
)
from shared.core.records import Record
from shared.graph.client import GraphClient
from shared.mail.query import mailbox_path

logger = logging.getLogger(__name__)

_V = TypeVar("_V")
_LOOKUP_PERMISSIONS = (
    "User.Read.All (or User.ReadBasic.All) to name the mailbox's owner, with Mail.Read to read it,"
)
_MEMBERSHIP_PERMISSIONS = "GroupMember.Read.All (with User.ReadBasic.All or User.Read.All)"

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


class MailboxOwner(Record):
    """Whose mailbox it is, as the directory names them at read time (both lower-cased)."""

    object_id: str
    user_principal_name: str


class _Answers(Generic[_V]):
    """Answers kept per key for a period, with one computation per key at a time. Thread-safe."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[_V, float]] = OrderedDict()  # key -> (answer, until)
        self._inflight: dict[str, threading.Lock] = {}

    def _cached(self, key: str) -> tuple[_V] | None:
        with self._lock:
            entry = self._kept.get(key)
            if entry is None:
                return None
            answer, until = entry
            if self._clock() >= until:
                del self._kept[key]
                return None
            return (answer,)

    def get(self, key: str, compute: Callable[[], _V]) -> _V:
        cached = self._cached(key)
        if cached is not None:
            return cached[0]
        with self._lock:
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:  # one computation per key at a time: the others wait for its answer
            cached = self._cached(key)
            if cached is not None:
                return cached[0]
            try:
                answer = compute()
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
            if self._ttl > 0:
                with self._lock:
                    self._kept[key] = (answer, self._clock() + self._ttl)
                    self._kept.move_to_end(key)
                    while len(self._kept) > MAX_CACHED_MAILBOXES:
                        self._kept.popitem(last=False)
            return answer


class MailboxScope:
    """Decides whether a mailbox is in the app's scope and whose it is (module docstring). Thread-safe."""

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
        self._owners: _Answers[MailboxOwner] = _Answers(float(cache_seconds), clock)
        self._members: _Answers[bool] = _Answers(float(cache_seconds), clock)

    @property
    def scope(self) -> str | None:
        return self._scope

    def require(
        self, mailbox: str, on_owner: Callable[[MailboxOwner], None] = lambda owner: None
    ) -> MailboxOwner:
        """The owner of ``mailbox`` (a validated, lower-cased id or UPN) when it may be read.

        ``on_owner`` receives the owner as soon as it is known, before the membership check, so that a
        refusal is recorded against the person too.

        Raises:
            MailboxOutOfScope: no scope configured (nothing resolved), or the owner is not in the group (403).
            NotFound: ``user_not_found``, no such user.
            PermissionNotGranted: Graph refuses the app the user lookup or the membership check (403).
            UpstreamThrottled, UpstreamError, CredentialUnavailable, ConfigurationError: see GraphClient.
        """
        if self._scope is None:
            raise MailboxOutOfScope(UNSET_MESSAGE)
        owner = self.owner(mailbox)
        on_owner(owner)
        if self._scope == WHOLE_TENANT:
            return owner
        if not self._members.get(owner.object_id, lambda: self._check(owner.object_id)):
            raise MailboxOutOfScope(OUTSIDE_MESSAGE)
        return owner

    def owner(self, mailbox: str) -> MailboxOwner:
        """Whose ``mailbox`` (an object id or UPN) is, kept for the period like membership answers.

        Raises:
            NotFound: ``user_not_found``.
            PermissionNotGranted, UpstreamThrottled, UpstreamError, ...: see :meth:`require`.
        """
        return self._owners.get(mailbox.lower(), lambda: self._lookup(mailbox))

    def _lookup(self, mailbox: str) -> MailboxOwner:
        try:
            body = self._graph.get_json(
                mailbox_path(mailbox), params={"$select": "id,userPrincipalName"}, client_input=True
            )
        except NotFound as exc:
            raise _no_such_user(exc) from exc
        except UpstreamError as exc:
            if exc.code == "upstream_forbidden":
                raise _not_granted(exc, _LOOKUP_PERMISSIONS) from exc
            raise
        object_id, upn = body.get("id"), body.get("userPrincipalName")
        if not isinstance(object_id, str) or not object_id or not isinstance(upn, str) or not upn:
            raise UpstreamError("Microsoft Graph answered a user without its id and userPrincipalName")
        return MailboxOwner(object_id.lower(), upn.lower())

    def _check(self, object_id: str) -> bool:
        group = str(self._scope)
        try:
            body = self._graph.post_json(
                f"{mailbox_path(object_id)}/checkMemberGroups", {"groupIds": [group]}, client_input=True
            )
        except NotFound as exc:
            raise _no_such_user(exc) from exc
        except UpstreamError as exc:
            if exc.code == "upstream_forbidden":
                raise _not_granted(
                    exc, "GroupMember.Read.All (with User.ReadBasic.All or User.Read.All)"
                ) from exc
            raise
        values = (body or {}).get("value")
        if not isinstance(values, list):
            raise UpstreamError("Microsoft Graph answered checkMemberGroups without a 'value' list")
        member = any(isinstance(v, str) and v.lower() == group for v in values)
        logger.info("Mailbox scope check: member=%s (group %s)", member, group)
        return member


def _no_such_user(exc: NotFound) -> NotFound:
    return NotFound(
        "No user has this id or userPrincipalName",
        code="user_not_found",
        graph_code=exc.graph_code,
        graph_request_id=exc.graph_request_id,
    )


def _not_granted(exc: UpstreamError, permissions: str) -> PermissionNotGranted:
    """Graph's 403 to the app: the operator's to fix, with the permission named."""
    return PermissionNotGranted(
        "Microsoft Graph refused the app the mailbox scope check: grant the app registration the application "
        f"permission {permissions} and admin consent.",
        graph_code=exc.graph_code,
        graph_request_id=exc.graph_request_id,
    )
