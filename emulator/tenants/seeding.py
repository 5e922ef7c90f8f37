"""Creating organisations: the seeded ones at start-up and after a reset, more through the control API."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from emulator.directory.model import Application
from emulator.directory.seed_orgs import (
    CUSTOMER_LABEL,
    CUSTOMER_NAME,
    CUSTOMER_USERS,
    ORG_USERS,
    build_organization,
)
from emulator.tenants.registry import SharedSettingsTokens, TenantSlot

if TYPE_CHECKING:
    from emulator.state import EmulatorState

#: A name becomes the organisation's domain label: ``{name}.onmicrosoft.com``.
NAME = r"[a-z][a-z0-9]{1,26}"
MAX_ORGANIZATIONS = 1000
MAX_USERS = 2000


def seed_organizations(state: EmulatorState) -> None:
    """(Re)build the start-up organisations: the customer, then ``org002``… up to ``--tenants``; apply the
    configured ``signInAudience`` of Graph Functions' registration. Organisations created through the
    control API are dropped (a reset returns to the seeded set)."""
    state.organizations.clear()
    state.organization_domains.clear()
    state.ids.app.sign_in_audience = state.config.sign_in_audience
    for index in range(state.config.tenants):
        if index == 0:
            create_organization(state, CUSTOMER_NAME, CUSTOMER_LABEL, users=CUSTOMER_USERS, origin="seeded")
        else:
            n = index + 1
            name, label = f"org{n:03d}", f"Organisation {n:03d}"
            create_organization(state, name, label, users=ORG_USERS, origin="seeded")


def create_organization(
    state: EmulatorState, name: str, display_name: str, *, users: int = ORG_USERS, origin: str = "created"
) -> TenantSlot:
    """Add an organisation; raises ValueError for a bad or taken name, too many users or organisations."""
    if not re.fullmatch(NAME, name):
        raise ValueError(f"name must match {NAME} (it becomes {{name}}.onmicrosoft.com)")
    domain = f"{name}.onmicrosoft.com"
    if domain in state.organization_domains or domain == state.home.directory.domain.lower():
        raise ValueError(f"an organisation named {name!r} already exists")
    if not 2 <= users <= MAX_USERS:
        raise ValueError(f"users must be within [2, {MAX_USERS}]")
    if len(state.organizations) >= MAX_ORGANIZATIONS:
        raise ValueError(f"at most {MAX_ORGANIZATIONS} organisations")

    def registration(app_id: str) -> Application | None:
        return state.home.directory.apps.get(app_id)

    seeded = build_organization(state.config, name, display_name, users=users, registrations=registration)
    slot = TenantSlot(
        directory=seeded.directory,
        tokens=SharedSettingsTokens(state.home.tokens, seeded.directory),
        mail_seed=seeded.mail_seed,
        admin=seeded.admin,
        member=seeded.member,
        origin=origin,
        mail_readers=seeded.mail_readers,
    )
    state.organizations[slot.tenant_id] = slot
    state.organization_domains[domain] = slot
    return slot


def delete_organization(state: EmulatorState, slot: TenantSlot) -> None:
    """The tenant is gone: its id and domain answer AADSTS90002 from then on."""
    state.organizations.pop(slot.tenant_id, None)
    state.organization_domains.pop(slot.directory.domain.lower(), None)
