"""The Graph service's own state, kept in ``state.stores["graph"]`` and cleared by a reset hook.

Created on first use (``build_app`` and ``control_routes`` both call :func:`graph_store`), registered once:
``state.stores["graph.throttle_reset"]`` is what the core ``PUT /_emulator/throttle`` calls.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import CLOCK
from emulator.graph.throttle import Throttle
from emulator.state import EmulatorState


@dataclass
class GraphSettings:
    """Knobs of the Graph emulation, changed through ``PUT /_emulator/graph/settings``."""

    #: Order of ``/messages`` without ``$orderby``: no source documents it; newest first is what is
    #: commonly observed. [INFERRED]
    mail_default_order: str = "desc"
    #: Service time of every mail request, spent while holding a concurrency slot (tests use it to make
    #: requests overlap and trip the MailboxConcurrency limit).
    mail_latency_ms: int = 0
    #: Application access policy (RBAC for Applications) model: app id -> user ids whose mailboxes the app
    #: may reach with application permissions. An app absent from the map reaches every mailbox. [INFERRED]
    mail_access: dict[str, set[str]] = field(default_factory=dict)
    #: The same scope given as groups (an access policy's PolicyScopeGroupId, an RBAC management scope):
    #: app id -> group ids whose members, nested ones included, the app may reach. An app in either map is
    #: scoped; a mailbox in neither set is refused. [INFERRED] model
    mail_scope_groups: dict[str, set[str]] = field(default_factory=dict)
    #: Time from sendMail's 202 to the message being in the recipients' mailboxes (and Sent Items):
    #: Graph documents the 202 as "accepted", not "delivered". 0 delivers before the 202. [INFERRED] value
    send_mail_delay_ms: int = 300
    #: Whether the tenant holds a Microsoft Entra ID P1/P2 licence: without one, Graph refuses
    #: ``signInActivity`` (403 ``Authentication_RequestFromNonPremiumTenantOrB2CTenant``). Default off, as
    #: in a tenant with Microsoft 365 licences only.
    premium_license: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "premiumLicense": self.premium_license,
            "mailDefaultOrder": self.mail_default_order,
            "mailLatencyMs": self.mail_latency_ms,
            "sendMailDelayMs": self.send_mail_delay_ms,
            "mailAccessPolicies": {k: sorted(v) for k, v in self.mail_access.items()},
        }


@dataclass
class GraphStore:
    settings: GraphSettings = field(default_factory=GraphSettings)
    throttle: Throttle = field(default_factory=Throttle)
    #: Keys the HMAC of skip and delta tokens; replaced on reset so that old tokens expire.
    page_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    #: user id -> "changed" (soft delete) | "deleted" (hard delete), for ``@removed`` in delta.
    removed_reason: dict[str, str] = field(default_factory=dict)
    #: user id -> Graph property -> the directory change_seq of its last change through the control API
    #: (delta's ``return=minimal``, and "set to null" versus "never set").
    property_seq: dict[str, dict[str, int]] = field(default_factory=dict)
    #: user id -> the change_seq at which the control API created the user.
    created_seq: dict[str, int] = field(default_factory=dict)
    #: Cached sorted views of the directory (see ``emulator.graph.collection``).
    indexes: dict[Any, Any] = field(default_factory=dict)
    #: Batches answered since the last reset: with the seed, it fixes each batch's answer order.
    batch_count: int = 0
    #: Accepted sendMail deliveries not yet due: (monotonic due time, deliver).
    pending_mail: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    clock: Callable[[], float] = CLOCK.monotonic
    #: Delta tokens carry the epoch they were issued in; ``POST /_emulator/graph/delta/expire`` bumps it, so
    #: every earlier deltaLink answers ``400 syncStateNotFound`` (what Graph answers after 7 days).
    delta_epoch: int = 0

    def deliver_due_mail(self) -> None:
        """Run every delivery whose time has come, oldest first (called at the start of each request)."""
        now = self.clock()
        due = [entry for entry in self.pending_mail if entry[0] <= now]
        if not due:
            return
        self.pending_mail = [entry for entry in self.pending_mail if entry[0] > now]
        for _, deliver in sorted(due, key=lambda entry: entry[0]):
            deliver()

    def reset(self) -> None:
        self.settings = GraphSettings()
        self.throttle.reset()
        self.page_secret = secrets.token_bytes(32)
        self.removed_reason.clear()
        self.property_seq.clear()
        self.created_seq.clear()
        self.indexes.clear()
        self.batch_count = 0
        self.pending_mail.clear()
        self.delta_epoch = 0


def graph_store(state: EmulatorState) -> GraphStore:
    store = state.stores.get("graph")
    if not isinstance(store, GraphStore):
        store = GraphStore()
        state.stores["graph"] = store
        state.stores["graph.throttle_reset"] = store.throttle.reset
        state.reset_hooks.append(store.reset)
    return store
