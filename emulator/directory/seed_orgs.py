"""Customer organisations: small, deterministic directories seeded without any key generation.

Each has its own tenant id, ``*.onmicrosoft.com`` domain, the first-party resources (Graph, SharePoint…),
an admin (can grant tenant-wide consent) and a member, a few generated people, groups with two levels of
nesting and a "Mail Readers" group as in the home tenant. Mailboxes are built on first access; no service
principal of Graph Functions exists until a consent creates it (:mod:`emulator.tenants.principals`).
About 0.3 ms and a few dozen objects per organisation, so 100 of them cost little at start-up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from emulator.clock import CLOCK
from emulator.config import EmulatorConfig
from emulator.directory.model import Application, Group, User
from emulator.directory.seed import (
    FIRST,
    LAST,
    NAMED_USERS,
    _ascii,
    _named_user,
    _seed_mail_readers,
    _seed_nested_groups,
    user_password,
)
from emulator.directory.seed_apps import _first_party, _uuid
from emulator.tenants.principals import OrganizationDirectory

#: The first customer organisation (``CUSTOMER_*`` in the env file).
CUSTOMER_NAME, CUSTOMER_LABEL = "northwind", "Northwind Traders"
CUSTOMER_USERS = 12
#: Users of each further organisation (``--tenants``, the control API's default).
ORG_USERS = 6


@dataclass
class SeededOrganization:
    directory: OrganizationDirectory
    admin: User
    member: User
    mail_readers: str
    mail_seed: int


def org_seed(seed: int, name: str) -> int:
    """A seed of its own per organisation, derived (not drawn), so adding one never moves another."""
    digest = hashlib.blake2b(f"{seed}:org:{name}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")


def build_organization(
    config: EmulatorConfig,
    name: str,
    display_name: str,
    *,
    users: int,
    registrations: Callable[[str], Application | None],
    now: dt.datetime | None = None,
) -> SeededOrganization:
    """Seed organisation ``name`` (domain ``{name}.onmicrosoft.com``) with ``users`` people (min 2)."""
    seed = org_seed(config.seed, name)
    rng = random.Random(seed)
    now = (now or CLOCK.now()).replace(microsecond=0)
    domain = f"{name}.onmicrosoft.com"
    directory = OrganizationDirectory(
        tenant_id=_uuid(rng), domain=domain, display_name=display_name, registrations=registrations
    )
    _first_party(directory, rng, config)
    admin, member = (_named_user(spec, domain, now, rng) for spec in NAMED_USERS[:2])
    directory.add_user(admin)
    directory.add_user(member)
    used = {admin.user_principal_name, member.user_principal_name}
    for i in range(2, max(users, 2)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{_ascii(first) or 'user'}.{_ascii(last).replace(chr(39), '') or 'x'}"
        upn = f"{local}@{domain}" if f"{local}@{domain}" not in used else f"{local}{i}@{domain}"
        used.add(upn)
        directory.add_user(
            User(
                id=_uuid(rng),
                user_principal_name=upn,
                display_name=f"{first} {last}",
                given_name=first,
                surname=last,
                mail=upn,
                job_title="Analyst",
                department=rng.choice(("Finance", "Sales", "Operations")),
                account_enabled=True,
                user_type="Member",
                created=now - dt.timedelta(days=rng.randrange(30, 900)),
                password=user_password(seed, i),
                has_mailbox=True,
            )
        )
    for group_name, security, mail_enabled in (("All Staff", False, True), ("Report Readers", True, False)):
        group = Group(
            id=_uuid(rng),
            display_name=group_name,
            mail_nickname=group_name.lower().replace(" ", "-"),
            description=f"{group_name} (seeded)",
            security_enabled=security,
            mail_enabled=mail_enabled,
            group_types=("Unified",) if mail_enabled else (),
            created=now - dt.timedelta(days=500),
        )
        group.members = (
            [u.id for u in directory.users] if group_name == "All Staff" else sorted({member.id, admin.id})
        )
        directory.groups.append(group)
    _seed_nested_groups(directory, rng, member, now)
    readers = _seed_mail_readers(directory, seed, member, now)
    return SeededOrganization(directory, admin, member, readers.id, seed)
