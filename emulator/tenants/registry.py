"""One slot per organisation, and the organisation a request is served for.

``state.directory``, ``state.tokens`` and ``state.mailboxes`` read the *active* slot: the one the request's
path, bearer token or control header names (:mod:`emulator.tenants.scope` sets it), else the home tenant.
Every service therefore serves one organisation per request without knowing there are several: a token
minted in organisation A carries A's ``tid``/``iss`` and Graph, validating it with A's token service, sees
only A's directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulator.directory.model import Directory, Mailbox, User
from emulator.token_service import TokenService

if TYPE_CHECKING:
    from emulator.state import EmulatorState


@dataclass
class TenantSlot:
    """An organisation: its directory, its token service (its ``tid``/``iss``), its lazily built mailboxes."""

    directory: Directory
    tokens: TokenService
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    #: Seed of this organisation's mailboxes (with each user id).
    mail_seed: int = 0
    admin: User | None = None
    member: User | None = None
    #: "home" | "seeded" (start-up: the customer, --tenants) | "created" (control API; dropped by a reset)
    origin: str = "home"
    #: The "Mail Readers" group (with a nested group), as in the home tenant.
    mail_readers: str = ""

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id


class SharedSettingsTokens(TokenService):
    """An organisation's token service: its own ``tid`` and issuers, the home tenant's signing keys and the
    tenant-wide settings (``PUT /_emulator/lifetimes``: access-token lifetime, clock skew) read through."""

    def __init__(self, home: TokenService, directory: Directory) -> None:
        # Not TokenService.__init__: its assignments of the two shared settings would overwrite the home's.
        self._home = home
        self.config = home.config
        self.directory = directory
        self.keys = home.keys

    @property
    def clock_skew(self) -> int:
        return self._home.clock_skew

    @clock_skew.setter
    def clock_skew(self, value: int) -> None:
        self._home.clock_skew = value

    @property
    def access_lifetime(self) -> int | None:
        return self._home.access_lifetime

    @access_lifetime.setter
    def access_lifetime(self, value: int | None) -> None:
        self._home.access_lifetime = value


_ACTIVE: ContextVar[TenantSlot | None] = ContextVar("emulator_active_tenant", default=None)


def active() -> TenantSlot | None:
    """The slot chosen for the current request; None means the home tenant."""
    return _ACTIVE.get()


def activate(slot: TenantSlot | None) -> None:
    """Serve the rest of this request for ``slot`` (None: the home tenant). The middleware resets it."""
    _ACTIVE.set(slot)


def enter(slot: TenantSlot | None) -> object:
    return _ACTIVE.set(slot)


def leave(token: object) -> None:
    _ACTIVE.reset(token)  # type: ignore[arg-type]


@contextmanager
def serving(slot: TenantSlot | None) -> Iterator[None]:
    """Run a block for ``slot`` (work deferred past its request, such as a delayed mail delivery)."""
    token = _ACTIVE.set(slot)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def all_slots(state: EmulatorState) -> Iterator[TenantSlot]:
    """The home tenant first, then every organisation in creation order."""
    yield state.home
    yield from state.organizations.values()


def by_segment(state: EmulatorState, segment: str) -> TenantSlot | None:
    """The organisation a path segment or header names: its tenant id or its verified domain
    (case-insensitive); None for the home tenant, ``common``/``organizations`` and unknown names."""
    wanted = segment.strip().lower()
    org = state.organizations.get(wanted)
    if org is not None:
        return org
    return state.organization_domains.get(wanted)


def slot_of_user(state: EmulatorState, user_id: str) -> TenantSlot | None:
    """The organisation holding the user (object ids are unique across organisations)."""
    for slot in all_slots(state):
        if slot.directory.user(user_id) is not None:
            return slot
    return None


def slot_of_username(state: EmulatorState, username: str) -> TenantSlot | None:
    """The organisation whose directory holds this sign-in name (UPN, or a guest's own address)."""
    name = username.strip().lower()
    domain = name.rpartition("@")[2]
    for slot in all_slots(state):
        if slot.directory.domain.lower() == domain and slot.directory.user(name) is not None:
            return slot
    for slot in all_slots(state):
        d = slot.directory
        if d.user(name) is not None or any(
            u.user_type == "Guest" and (u.mail or "").lower() == name for u in d.users
        ):
            return slot
    return None


def scoped_key(state: EmulatorState, key: str) -> str:
    """A per-organisation key for settings a service keeps by app id (an Exchange application access
    policy belongs to one organisation): the key itself in the home tenant, ``{tid}/{key}`` elsewhere."""
    slot = active()
    return key if slot is None or slot is state.home else f"{slot.tenant_id}/{key}"


def keys_here(state: EmulatorState, keys: Iterator[str] | set[str]) -> list[str]:
    """The keys (see :func:`scoped_key`) of the active organisation, unprefixed, sorted."""
    slot = active()
    if slot is None or slot is state.home:
        return sorted(k for k in keys if "/" not in k)
    prefix = f"{slot.tenant_id}/"
    return sorted(k[len(prefix) :] for k in keys if k.startswith(prefix))
