"""Deterministic seed data: the same ``--seed`` and ``--users`` always give the same tenant.

Mailboxes are generated lazily, on first access, from the seed and the user id, so that start-up stays
fast with 100,000 users while every run still sees the same messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import unicodedata
from dataclasses import dataclass
from typing import Any

from emulator.clock import CLOCK
from emulator.config import EmulatorConfig
from emulator.directory.model import AppRoleAssignment, Directory, Group, User
from emulator.directory.seed_apps import (  # re-exported through emulator.directory.seed
    API_ROLES,
    CERTIFICATE_NAME,
    CERTIFICATE_PEM_NAME,
    SECRET_NAME,
    SESSION_KEY_NAME,
    STORAGE_APP_ID,
    TOKEN_EXCHANGE_APP_ID,
    VAULT_APP_ID,
    Application,
    _first_party,
    _uuid,
    seed_applications,
    session_key_value,
)
from emulator.directory.seed_mail import build_mailbox
from emulator.directory.seed_spa import register_spa

__all__ = [
    "API_ROLES",
    "CERTIFICATE_NAME",
    "CERTIFICATE_PEM_NAME",
    "SECRET_NAME",
    "SESSION_KEY_NAME",
    "STORAGE_APP_ID",
    "TOKEN_EXCHANGE_APP_ID",
    "VAULT_APP_ID",
    "SeededIdentities",
    "build_directory",
    "build_mailbox",
    "session_key_value",
    "user_password",
]

FIRST = [
    "Adèle",
    "Bjørn",
    "Chloé",
    "Dmitri",
    "Émile",
    "Fatima",
    "Göran",
    "Hana",
    "Iñaki",
    "Jürgen",
    "Kenji",
    "Léa",
    "Mateo",
    "Nadia",
    "Øystein",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Tomás",
    "Uma",
    "Valérie",
    "Wei",
    "Xavier",
    "Yasmin",
    "Zoë",
    "Ana",
    "Łukasz",
    "Mei",
    "Olu",
    "Sven",
    "Zainab",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Nguyễn",
    "García",
    "Müller",
    "Kowalski",
    "O'Brien",
    "Andersen",
    "Rossi",
    "Tanaka",
    "Silva",
    "Petrov",
    "Cohen",
    "Haddad",
    "Okafor",
    "Lefèvre",
    "Novák",
    "Yılmaz",
    "Schmidt",
    "Dupont",
    "Moreau",
    "Fernández",
    "Johansson",
    "Ivanova",
    "Kim",
    "Patel",
    "Smith",
]
DEPARTMENTS = [
    "Finance",
    "Engineering",
    "Sales",
    "Marketing",
    "Legal",
    "Human Resources",
    "Operations",
    "Support",
    "Research & Development",
    None,
]
TITLES = [
    "Analyst",
    "Engineer",
    "Senior Engineer",
    "Manager",
    "Director",
    "Accountant",
    "Consultant",
    "Designer",
    "Paralegal",
    "Sales Representative",
    "Intern",
    None,
]
OFFICES = ["Paris", "Lyon", "Montréal", "Zürich", "Seattle", "Singapore", None]


@dataclass
class SeededIdentities:
    """The ids and credentials the env file and the tests need."""

    app: Application  # Graph Functions
    caller: Application
    caller_norole: Application
    system_identity: Application
    user_identity: Application
    admin: User
    member: User
    app_secret: str
    caller_secret: str
    caller_norole_secret: str
    mail_readers: str = ""  # the "Mail Readers" group's id: make run's MAILBOX_SCOPE


def _password(rng: random.Random) -> str:
    return "Pw!" + "".join(
        rng.choice("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(12)
    )


def user_password(seed: int, index: int) -> str:
    """Password of the ``index``-th generated user: derived, not drawn, so 100,000 users stay cheap."""
    return "Pw!" + hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).hexdigest()


#: Letters NFKD does not decompose into an ASCII base letter.
_ASCII_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ı": "i", "đ": "d", "ß": "ss"})


def _ascii(name: str) -> str:
    """Mail-safe form of a name as admins type it: accents dropped (Émile → emile), others removed."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII_FOLD))
    return decomposed.encode("ascii", "ignore").decode().lower()


#: The named accounts, in this order: the demo admin, the demo member, then one of each special case.
#: ``{d}`` is the tenant domain. Fields: upn, display name, given name, surname, mail, job title,
#: department, enabled, user type, age in days, has mailbox, office, is admin.
NAMED_USERS: tuple[tuple[Any, ...], ...] = (
    ("admin@{d}", "Alex Admin", "Alex", "Admin", "admin@{d}", "IT Administrator", "IT",
     True, "Member", 1500, True, "Paris", True),
    ("member@{d}", "Morgan Member", "Morgan", "Member", "member@{d}", "Analyst", "Finance",
     True, "Member", 400, True, "Lyon", False),
    ("guest.partner_fabrikam.com#EXT#@{d}", "Gabriel Guest (Fabrikam)", "Gabriel", "Guest",
     "guest.partner@fabrikam.com", None, None, True, "Guest", 90, False, None, False),
    ("disabled@{d}", "Dana Disabled", "Dana", "Disabled", "disabled@{d}", "Former Employee", "Sales",
     False, "Member", 900, True, None, False),
    ("nolicense@{d}", "Noel No-License", "Noel", "No-License", None, "Contractor", "Operations",
     True, "Member", 60, False, None, False),
)  # fmt: skip


def _named_user(spec: tuple[Any, ...], domain: str, now: dt.datetime, rng: random.Random) -> User:
    upn, name, given, surname, mail, title, dept, enabled, kind, age, mailbox, office, admin = spec
    return User(
        id=_uuid(rng),
        user_principal_name=upn.format(d=domain),
        display_name=name,
        given_name=given,
        surname=surname,
        mail=mail.format(d=domain) if mail else None,
        job_title=title,
        department=dept,
        account_enabled=enabled,
        user_type=kind,
        created=now - dt.timedelta(days=age),
        password=_password(rng),
        has_mailbox=mailbox,
        office_location=office,
        is_admin=admin,
    )


def _seed_nested_groups(directory: Directory, rng: random.Random, member: User, now: dt.datetime) -> None:
    """Two levels of nesting: Regional Managers (the demo member and a few people) is a member of Report
    Readers, which is a member of Data Access. Seeded after the flat groups, so their ids do not move."""
    by_name = {g.display_name: g for g in directory.groups}
    readers = by_name["Report Readers"]
    outside = [u for u in directory.users if u.id not in readers.members and u.user_type == "Member"]
    managers = Group(
        id=_uuid(rng),
        display_name="Regional Managers",
        mail_nickname="regional-managers",
        description="Regional Managers (seeded; nested in Report Readers)",
        security_enabled=True,
        mail_enabled=False,
        group_types=(),
        created=now - dt.timedelta(days=400),
        members=sorted({member.id, *(u.id for u in rng.sample(outside, min(3, len(outside))))}),
    )
    data_access = Group(
        id=_uuid(rng),
        display_name="Data Access",
        mail_nickname="data-access",
        description="Data Access (seeded; holds Report Readers)",
        security_enabled=True,
        mail_enabled=False,
        group_types=(),
        created=now - dt.timedelta(days=300),
        member_groups=[readers.id],
    )
    readers.member_groups.append(managers.id)
    directory.groups += [managers, data_access]


def _seed_mail_readers(directory: Directory, seed: int, member: User, now: dt.datetime) -> Group:
    """ "Mail Readers", the mailbox scope ``make run`` configures: the demo member and four people with
    mailboxes directly, three more through the nested "Mail Readers - Service Desk"; everyone else (the
    demo admin included) is outside. Its own random stream, so no other seeded id moves."""
    rng = random.Random(f"{seed}:mail-readers")
    with_mail = [
        u
        for u in directory.users
        if u.user_type == "Member" and u.has_mailbox and u.mail and u.account_enabled and not u.is_admin
    ]
    others = [u for u in with_mail if u.id != member.id]
    picked = rng.sample(others, min(7, len(others)))

    def group(name: str, nick: str, members: list[str], nested: list[str]) -> Group:
        return Group(
            id=_uuid(rng),
            display_name=name,
            mail_nickname=nick,
            description=f"{name} (seeded; MAILBOX_SCOPE of make run)",
            security_enabled=True,
            mail_enabled=False,
            group_types=(),
            created=now - dt.timedelta(days=200),
            members=sorted(members),
            member_groups=nested,
        )

    desk = group("Mail Readers - Service Desk", "mail-readers-desk", [u.id for u in picked[4:]], [])
    readers = group("Mail Readers", "mail-readers", [member.id, *(u.id for u in picked[:4])], [desk.id])
    directory.groups += [readers, desk]
    return readers


def build_directory(
    config: EmulatorConfig, now: dt.datetime | None = None
) -> tuple[Directory, SeededIdentities]:
    """Build the tenant from ``config.seed``; ``config.users`` counts every user, demo accounts included."""
    rng = random.Random(config.seed)
    now = (now or CLOCK.now()).replace(microsecond=0)
    tenant_id = _uuid(rng)
    domain = "contoso.onmicrosoft.com"
    directory = Directory(tenant_id=tenant_id, domain=domain, display_name="Contoso (local tenant)")
    _first_party(directory, rng, config)

    seeded = seed_applications(directory, rng, config, now)
    app, app_id = seeded.app, seeded.app.app_id

    # --- Users --------------------------------------------------------------------------------
    span = 5 * 365 * 24 * 3600
    named = [_named_user(spec, domain, now, rng) for spec in NAMED_USERS]
    admin, member = named[0], named[1]
    for u in named[: max(config.users, 2)]:
        directory.add_user(u)
    used = {u.user_principal_name for u in directory.users}
    for i in range(len(directory.users), config.users):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        ascii_first = _ascii(first) or "user"
        ascii_last = _ascii(last).replace("'", "") or "x"
        upn = f"{ascii_first}.{ascii_last}@{domain}"
        if upn in used:
            upn = f"{ascii_first}.{ascii_last}{i}@{domain}"
        used.add(upn)
        guest = rng.random() < 0.04
        user = User(
            id=_uuid(rng),
            user_principal_name=upn if not guest else upn.replace("@", "_ext#EXT#@", 1),
            display_name=f"{first} {last}",
            given_name=first,
            surname=last,
            mail=upn if not guest else f"{ascii_first}.{ascii_last}@partner.example",
            job_title=rng.choice(TITLES),
            department=rng.choice(DEPARTMENTS),
            account_enabled=rng.random() > 0.05,
            user_type="Guest" if guest else "Member",
            created=now - dt.timedelta(seconds=rng.randrange(span)),
            password=user_password(config.seed, i),
            has_mailbox=not guest and rng.random() > 0.02,
            office_location=rng.choice(OFFICES),
            business_phones=(
                f"+33 1 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} 00",
            )
            if rng.random() < 0.6
            else (),
        )
        directory.add_user(user)

    # App roles of Graph Functions held by users: the admin holds every one.
    for role in API_ROLES:
        directory.app_role_assignments.append(AppRoleAssignment(admin.id, app_id, role))

    # --- Groups -------------------------------------------------------------------------------
    people = directory.users
    for name, security, mail_enabled in (
        ("All Staff", False, True),
        ("Finance Team", True, False),
        ("Report Readers", True, False),
        ("Graph Functions Admins", True, False),
    ):
        nick = name.lower().replace(" ", "-")
        group = Group(
            id=_uuid(rng),
            display_name=name,
            mail_nickname=nick,
            description=f"{name} (seeded)",
            security_enabled=security,
            mail_enabled=mail_enabled,
            group_types=("Unified",) if mail_enabled else (),
            created=now - dt.timedelta(days=700),
        )
        if name == "All Staff":
            group.members = [u.id for u in people[:5000] if u.user_type == "Member"]
        elif name == "Graph Functions Admins":
            group.members = [admin.id]
        else:
            group.members = sorted({rng.choice(people).id for _ in range(min(len(people), 12))} | {member.id})
        directory.groups.append(group)
    _seed_nested_groups(directory, rng, member, now)
    mail_readers = _seed_mail_readers(directory, config.seed, member, now)
    register_spa(directory, app, config.seed)  # issue 20: its own random stream, moves no other id

    ids = SeededIdentities(
        app=app,
        caller=seeded.caller,
        caller_norole=seeded.caller_norole,
        system_identity=seeded.system_identity,
        user_identity=seeded.user_identity,
        admin=admin,
        member=member,
        app_secret=seeded.app_secret,
        caller_secret=seeded.caller_secret,
        caller_norole_secret=seeded.caller_norole_secret,
        mail_readers=mail_readers.id,
    )
    return directory, ids
