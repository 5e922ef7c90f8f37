"""The onboarded organisations (multi-tenant: ``ENTRA_TENANCY=multi``), one Table Storage row each in
``TENANTS_TABLE``: id, name, who onboarded it and when, the permissions it granted, its status, and the
mailbox group its administrator chose.

Statuses: ``active`` (served), ``suspended`` (an operator paused it), ``consent_revoked`` (its token
request failed because the customer removed the app or its consent), ``offboarded`` (an operator removed
it). Only ``active`` organisations are served; re-onboarding makes any status ``active`` again.

Rows live in one partition (``tenant``) keyed by the tenant id, so the list is one partition read.
Reads are kept in memory for :data:`CACHE_SECONDS` so a warm request costs no storage read; every change
through this process is visible at once, another instance's within that period.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from shared.core.errors import NotFound
from shared.core.patterns import is_guid
from shared.core.records import Record
from shared.storage.tables import EnsuredTable, Now, storage_call, utcnow

logger = logging.getLogger(__name__)

Status = Literal["active", "suspended", "consent_revoked", "offboarded"]
STATUSES: tuple[Status, ...] = ("active", "suspended", "consent_revoked", "offboarded")
_PARTITION = "tenant"
#: How long a read of the registry is reused (another instance's change shows within it).
CACHE_SECONDS = 15.0


class Organisation(Record):
    """One onboarded organisation.

    Attributes:
        tenant_id: its directory id (lower-case GUID).
        name: its display name (Graph ``/organization``, else the administrator's domain).
        onboarded_by: the UPN of the administrator who consented.
        onboarded_by_oid: their object id (in ``tenant_id``).
        onboarded_at: when (UTC).
        permissions: the application permissions its token carried when onboarding was confirmed.
        status: see the module docstring.
        status_reason: why the status last changed (operator, revocation code); never a secret.
        changed_at: when the status last changed.
        mailbox_scope: the group whose members' mailboxes the app may read in this organisation (``*``:
            every mailbox; None: none, the default).
    """

    tenant_id: str
    name: str
    onboarded_by: str
    onboarded_by_oid: str
    onboarded_at: dt.datetime
    permissions: tuple[str, ...]
    status: Status = "active"
    status_reason: str = ""
    changed_at: dt.datetime | None = None
    mailbox_scope: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


def _entity(org: Organisation) -> dict[str, Any]:
    return {
        "PartitionKey": _PARTITION,
        "RowKey": org.tenant_id,
        "Name": org.name,
        "OnboardedBy": org.onboarded_by,
        "OnboardedByOid": org.onboarded_by_oid,
        "OnboardedAt": org.onboarded_at,
        "Permissions": " ".join(org.permissions),
        "Status": org.status,
        "StatusReason": org.status_reason,
        "ChangedAt": org.changed_at or org.onboarded_at,
        "MailboxScope": org.mailbox_scope or "",
    }


def _organisation(entity: dict[str, Any]) -> Organisation | None:
    tenant_id = str(entity.get("RowKey") or "")
    status = entity.get("Status")
    onboarded_at = entity.get("OnboardedAt")
    if not is_guid(tenant_id) or status not in STATUSES or not isinstance(onboarded_at, dt.datetime):
        logger.warning("Ignored a malformed row of the tenants table")
        return None
    changed_at = entity.get("ChangedAt")
    return Organisation(
        tenant_id=tenant_id,
        name=str(entity.get("Name") or tenant_id),
        onboarded_by=str(entity.get("OnboardedBy") or ""),
        onboarded_by_oid=str(entity.get("OnboardedByOid") or ""),
        onboarded_at=onboarded_at,
        permissions=tuple(str(entity.get("Permissions") or "").split()),
        status=status,
        status_reason=str(entity.get("StatusReason") or ""),
        changed_at=changed_at if isinstance(changed_at, dt.datetime) else None,
        mailbox_scope=str(entity.get("MailboxScope") or "") or None,
    )


class TenantRegistry:
    """The onboarded organisations in ``TENANTS_TABLE`` (module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        table: EnsuredTable,
        *,
        now: Now = utcnow,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._table = table
        self._now = now
        self._clock = clock
        self._ttl = cache_seconds
        self._lock = threading.Lock()
        self._all: dict[str, Organisation] | None = None
        self._read_at = 0.0
        self._what = f"using the tenants table '{table.name}'"
        self.reads = 0

    def all(self) -> list[Organisation]:
        """Every organisation ever onboarded, whatever its status, by name.

        Raises:
            StorageUnavailable: Table Storage is unreachable (503).
        """
        return sorted(self._snapshot().values(), key=lambda org: (org.name.lower(), org.tenant_id))

    def get(self, tenant_id: str) -> Organisation | None:
        """The organisation ``tenant_id`` (any status), or None if it was never onboarded.

        Raises:
            StorageUnavailable.
        """
        return self._snapshot().get(tenant_id.lower())

    def active(self) -> list[Organisation]:
        """The organisations served now."""
        return [org for org in self.all() if org.active]

    def record(self, org: Organisation) -> Organisation:
        """Insert or replace ``org`` (onboarding, re-onboarding); returns it.

        Raises:
            StorageUnavailable.
        """
        with storage_call(self._what):
            self._table.client().upsert_entity(_entity(org), mode="replace")  # type: ignore[arg-type]
        self._remember(org)
        logger.info("Organisation %s recorded with status %s", org.tenant_id, org.status)
        return org

    def set_status(self, tenant_id: str, status: Status, reason: str) -> Organisation:
        """Change an organisation's status (``reason``: who or what changed it).

        Raises:
            NotFound: ``tenant_not_found``, never onboarded.
            StorageUnavailable.
        """
        current = self._fresh(tenant_id)
        changed = current._replace(status=status, status_reason=reason, changed_at=self._now())
        return self.record(changed)

    def set_mailbox_scope(self, tenant_id: str, scope: str | None) -> Organisation:
        """Set the group whose members' mailboxes may be read in ``tenant_id`` (None: none).

        Raises:
            NotFound, StorageUnavailable.
        """
        return self.record(self._fresh(tenant_id)._replace(mailbox_scope=scope))

    def refresh(self) -> None:
        """Forget the kept snapshot: the next read goes to Table Storage."""
        with self._lock:
            self._all = None

    # -- internals ---------------------------------------------------------------------------------------

    def _fresh(self, tenant_id: str) -> Organisation:
        self.refresh()
        current = self.get(tenant_id)
        if current is None:
            raise NotFound("No organisation with this id was onboarded", code="tenant_not_found")
        return current

    def _remember(self, org: Organisation) -> None:
        with self._lock:
            if self._all is not None:
                self._all = {**self._all, org.tenant_id: org}

    def _snapshot(self) -> dict[str, Organisation]:
        with self._lock:
            if self._all is not None and self._clock() - self._read_at < self._ttl:
                return self._all
        with storage_call(self._what):
            entities = list(
                self._table.client().query_entities(
                    "PartitionKey eq @p", parameters={"p": _PARTITION}, results_per_page=1000
                )
            )
        self.reads += 1
        found = {
            org.tenant_id: org for entity in entities if (org := _organisation(dict(entity))) is not None
        }
        with self._lock:
            self._all, self._read_at = found, self._clock()
        return found
