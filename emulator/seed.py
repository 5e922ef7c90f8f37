"""Deterministic seed data: the same ``--seed`` and ``--users`` always give the same tenant.

Mailboxes are generated lazily, on first access, from the seed and the user id, so that start-up stays
fast with 100,000 users while every run still sees the same messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass

from emulator.config import (
    GRAPH_APP_ID,
    GRAPH_CLOUD_AUDIENCE,
    SHAREPOINT_APP_ID,
    STORAGE_AUDIENCE,
    TOKEN_EXCHANGE_AUDIENCE,
    VAULT_AUDIENCE,
    EmulatorConfig,
)
from emulator.directory import (
    UTC,
    Application,
    AppRole,
    AppRoleAssignment,
    ClientSecret,
    DelegatedGrant,
    Directory,
    FederatedCredential,
    Group,
    Mailbox,
    MailFolder,
    Message,
    Recipient,
    User,
)

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

GRAPH_SCOPES = (
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "Directory.Read.All",
    "GroupMember.Read.All",
    "Mail.Read",
    "Mail.ReadBasic",
    "Mail.Send",
    "openid",
    "profile",
    "email",
    "offline_access",
)
GRAPH_ROLES = (
    "User.Read.All",
    "User.ReadBasic.All",
    "Directory.Read.All",
    "GroupMember.Read.All",
    "Mail.Read",
    "Mail.ReadBasic",
    "Mail.ReadBasic.All",
    "Mail.Send",
)
SHAREPOINT_SCOPES = ("AllSites.Read", "MyFiles.Read", "User.Read.All")
SHAREPOINT_ROLES = ("Sites.Read.All", "Sites.FullControl.All", "User.Read.All")
API_ROLES = ("Users.Read.All", "Mail.Read.All", "Reports.Read", "Reports.Run", "Audit.Read")
VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
STORAGE_APP_ID = "e406a681-f3d4-42a8-90b6-c2b029497af1"

SECRET_NAME = "graph-functions-client-secret"
CERTIFICATE_NAME = "graph-functions-certificate"
CERTIFICATE_PEM_NAME = "graph-functions-certificate-pem"

HOSTILE_SUBJECTS = [
    "<script>alert('subject')</script> Quarterly numbers",
    '"><img src=x onerror=alert(1)> Invoice #4411',
    "Réunion d'équipe — ordre du jour 📅",
    "Re: Fwd: 合同审核 (contract review)",
    "{{7*7}} ${jndi:ldap://127.0.0.1/a} template probe",
]
PLAIN_SUBJECTS = [
    "Weekly sync",
    "Expense report approved",
    "Welcome to the team!",
    "Your password expires soon",
    "Lunch on Friday?",
    "Build #1287 failed",
    "Board deck v3",
    "Holiday schedule",
    "Customer escalation: Fabrikam",
    "Invitation: design review",
]


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


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _secret_value(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
    body = "".join(rng.choice(alphabet) for _ in range(37))
    return body[:3] + "8Q~" + body[3:]


def _password(rng: random.Random) -> str:
    return "Pw!" + "".join(
        rng.choice("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(12)
    )


def user_password(seed: int, index: int) -> str:
    """Password of the ``index``-th generated user: derived, not drawn, so 100,000 users stay cheap."""
    return "Pw!" + hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).hexdigest()


def _first_party(directory: Directory, rng: random.Random, config: EmulatorConfig) -> None:
    def resource(
        app_id: str, name: str, uris: tuple[str, ...], scopes: tuple[str, ...], roles: tuple[str, ...]
    ) -> None:
        directory.apps[app_id] = Application(
            app_id=app_id,
            object_id=_uuid(rng),
            sp_id=_uuid(rng),
            display_name=name,
            identifier_uris=uris,
            delegated_scopes=scopes,
            is_first_party_resource=True,
            app_roles=[AppRole(_uuid(rng), r, r, ("Application",)) for r in roles],
        )

    resource(
        GRAPH_APP_ID,
        "Microsoft Graph",
        (config.graph_origin, GRAPH_CLOUD_AUDIENCE),
        GRAPH_SCOPES,
        GRAPH_ROLES,
    )
    resource(
        SHAREPOINT_APP_ID,
        "Office 365 SharePoint Online",
        (config.sharepoint_origin,),
        SHAREPOINT_SCOPES,
        SHAREPOINT_ROLES,
    )
    resource(VAULT_APP_ID, "Azure Key Vault", (VAULT_AUDIENCE,), ("user_impersonation",), ())
    resource(STORAGE_APP_ID, "Azure Storage", (STORAGE_AUDIENCE,), ("user_impersonation",), ())
    resource(TOKEN_EXCHANGE_APP_ID, "AAD Token Exchange", (TOKEN_EXCHANGE_AUDIENCE,), (), ())
    # Managed-identity tokens for federation carry the v2 issuer the federated credentials name.
    directory.apps[TOKEN_EXCHANGE_APP_ID].access_token_version = 2


def build_directory(
    config: EmulatorConfig, now: dt.datetime | None = None
) -> tuple[Directory, SeededIdentities]:
    """Build the tenant from ``config.seed``; ``config.users`` counts every user, demo accounts included."""
    rng = random.Random(config.seed)
    now = (now or dt.datetime.now(UTC)).replace(microsecond=0)
    tenant_id = _uuid(rng)
    domain = "contoso.onmicrosoft.com"
    directory = Directory(tenant_id=tenant_id, domain=domain, display_name="Contoso (local tenant)")
    _first_party(directory, rng, config)

    # --- Applications -------------------------------------------------------------------------
    app_id = _uuid(rng)
    app_secret = _secret_value(rng)
    app = Application(
        app_id=app_id,
        object_id=_uuid(rng),
        sp_id=_uuid(rng),
        display_name="Graph Functions",
        access_token_version=2,
        identifier_uris=(f"api://{app_id}",),
        app_roles=[AppRole(_uuid(rng), r, r.replace(".", " ")) for r in API_ROLES],
        delegated_scopes=("access_as_user",),
        secrets=[
            ClientSecret(
                _uuid(rng),
                "expired (2024)",
                _secret_value(rng),
                now - dt.timedelta(days=730),
                now - dt.timedelta(days=30),
            ),
            ClientSecret(
                _uuid(rng), "current", app_secret, now - dt.timedelta(days=10), now + dt.timedelta(days=170)
            ),
        ],
        redirect_uris=[
            "http://localhost:7071/auth/callback",
            "http://127.0.0.1:7071/auth/callback",
            "https://localhost:7071/auth/callback",
        ],
        post_logout_redirect_uris=["http://localhost:7071/", "http://127.0.0.1:7071/"],
        required_permissions={
            GRAPH_APP_ID: {
                "scopes": (
                    "User.Read",
                    "User.ReadBasic.All",
                    "Mail.Read",
                    "openid",
                    "profile",
                    "offline_access",
                ),
                "roles": ("User.Read.All", "Mail.Read", "GroupMember.Read.All"),
            },
            SHAREPOINT_APP_ID: {"scopes": ("AllSites.Read", "User.Read.All"), "roles": ("Sites.Read.All",)},
        },
    )
    caller_secret, norole_secret = _secret_value(rng), _secret_value(rng)
    caller = Application(
        app_id=_uuid(rng),
        object_id=_uuid(rng),
        sp_id=_uuid(rng),
        display_name="Report Scheduler (caller)",
        secrets=[
            ClientSecret(
                _uuid(rng), "ci", caller_secret, now - dt.timedelta(days=1), now + dt.timedelta(days=365)
            )
        ],
        required_permissions={app_id: {"scopes": (), "roles": API_ROLES}},
    )
    caller_norole = Application(
        app_id=_uuid(rng),
        object_id=_uuid(rng),
        sp_id=_uuid(rng),
        display_name="Unprivileged caller",
        secrets=[
            ClientSecret(
                _uuid(rng), "ci", norole_secret, now - dt.timedelta(days=1), now + dt.timedelta(days=365)
            )
        ],
    )
    system_mi = Application(
        app_id=_uuid(rng),
        object_id=_uuid(rng),
        sp_id=_uuid(rng),
        display_name="func-graph-functions",
        is_managed_identity=True,
    )
    user_mi = Application(
        app_id=_uuid(rng),
        object_id=_uuid(rng),
        sp_id=_uuid(rng),
        display_name="id-graph-functions",
        is_managed_identity=True,
    )
    issuer_v2 = f"{config.authority_host}/{tenant_id}/v2.0"
    app.federated_credentials = [
        FederatedCredential(
            _uuid(rng), "function-app-system-identity", issuer_v2, system_mi.sp_id, (TOKEN_EXCHANGE_AUDIENCE,)
        ),
        FederatedCredential(
            _uuid(rng), "function-app-user-identity", issuer_v2, user_mi.sp_id, (TOKEN_EXCHANGE_AUDIENCE,)
        ),
    ]
    for a in (app, caller, caller_norole, system_mi, user_mi):
        directory.apps[a.app_id] = a

    # Admin consent already given for the app's application permissions and basic delegated ones;
    # Mail.Read and User.ReadBasic.All (delegated) are left for the consent page to ask.
    for role in app.required_permissions[GRAPH_APP_ID]["roles"]:
        directory.app_role_assignments.append(AppRoleAssignment(app.sp_id, GRAPH_APP_ID, role))
    directory.app_role_assignments.append(AppRoleAssignment(app.sp_id, SHAREPOINT_APP_ID, "Sites.Read.All"))
    directory.delegated_grants.append(
        DelegatedGrant(
            app.app_id,
            GRAPH_APP_ID,
            "AllPrincipals",
            None,
            {"User.Read", "openid", "profile", "offline_access", "email"},
        )
    )
    directory.delegated_grants.append(
        DelegatedGrant(app.app_id, SHAREPOINT_APP_ID, "AllPrincipals", None, {"AllSites.Read"})
    )
    for role in API_ROLES:
        directory.app_role_assignments.append(AppRoleAssignment(caller.sp_id, app_id, role))

    # --- Users --------------------------------------------------------------------------------
    span = 5 * 365 * 24 * 3600
    admin = User(
        id=_uuid(rng),
        user_principal_name=f"admin@{domain}",
        display_name="Alex Admin",
        given_name="Alex",
        surname="Admin",
        mail=f"admin@{domain}",
        job_title="IT Administrator",
        department="IT",
        account_enabled=True,
        user_type="Member",
        created=now - dt.timedelta(days=1500),
        password=_password(rng),
        has_mailbox=True,
        office_location="Paris",
        is_admin=True,
    )
    member = User(
        id=_uuid(rng),
        user_principal_name=f"member@{domain}",
        display_name="Morgan Member",
        given_name="Morgan",
        surname="Member",
        mail=f"member@{domain}",
        job_title="Analyst",
        department="Finance",
        account_enabled=True,
        user_type="Member",
        created=now - dt.timedelta(days=400),
        password=_password(rng),
        has_mailbox=True,
        office_location="Lyon",
    )
    specials = [
        User(
            id=_uuid(rng),
            user_principal_name=f"guest.partner_fabrikam.com#EXT#@{domain}",
            display_name="Gabriel Guest (Fabrikam)",
            given_name="Gabriel",
            surname="Guest",
            mail="guest.partner@fabrikam.com",
            job_title=None,
            department=None,
            account_enabled=True,
            user_type="Guest",
            created=now - dt.timedelta(days=90),
            password=_password(rng),
            has_mailbox=False,
        ),
        User(
            id=_uuid(rng),
            user_principal_name=f"disabled@{domain}",
            display_name="Dana Disabled",
            given_name="Dana",
            surname="Disabled",
            mail=f"disabled@{domain}",
            job_title="Former Employee",
            department="Sales",
            account_enabled=False,
            user_type="Member",
            created=now - dt.timedelta(days=900),
            password=_password(rng),
            has_mailbox=True,
        ),
        User(
            id=_uuid(rng),
            user_principal_name=f"nolicense@{domain}",
            display_name="Noel No-License",
            given_name="Noel",
            surname="No-License",
            mail=None,
            job_title="Contractor",
            department="Operations",
            account_enabled=True,
            user_type="Member",
            created=now - dt.timedelta(days=60),
            password=_password(rng),
            has_mailbox=False,
        ),
    ]
    for u in [admin, member, *specials][: max(config.users, 2)]:
        directory.add_user(u)
    used = {u.user_principal_name for u in directory.users}
    for i in range(len(directory.users), config.users):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        ascii_first = first.encode("ascii", "ignore").decode().lower() or "user"
        ascii_last = last.encode("ascii", "ignore").decode().lower().replace("'", "") or "x"
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

    ids = SeededIdentities(
        app=app,
        caller=caller,
        caller_norole=caller_norole,
        system_identity=system_mi,
        user_identity=user_mi,
        admin=admin,
        member=member,
        app_secret=app_secret,
        caller_secret=caller_secret,
        caller_norole_secret=norole_secret,
    )
    return directory, ids


def build_mailbox(seed: int, user: User, directory: Directory, now: dt.datetime | None = None) -> Mailbox:
    """The user's seeded mailbox: deterministic from the seed and the user id, newest message first."""
    rng = random.Random(f"{seed}:{user.id}")
    now = (now or dt.datetime.now(UTC)).replace(microsecond=0)
    folders = {}
    for well_known, display in (
        ("inbox", "Inbox"),
        ("sentitems", "Sent Items"),
        ("drafts", "Drafts"),
        ("deleteditems", "Deleted Items"),
        ("archive", "Archive"),
    ):
        fid = "AAMkAG" + uuid.UUID(int=rng.getrandbits(128)).hex + "AAA="
        folders[fid] = MailFolder(fid, display, well_known)
    inbox = next(f for f in folders.values() if f.well_known_name == "inbox")
    others = [u for u in directory.users[:200] if u.mail and u.id != user.id] or [user]
    count = rng.randrange(18, 40)
    messages: list[Message] = []
    for i in range(count):
        hostile = i % 7 == 3
        subject = rng.choice(HOSTILE_SUBJECTS) if hostile else rng.choice(PLAIN_SUBJECTS)
        sender_user = rng.choice(others)
        sender = Recipient(sender_user.display_name, sender_user.mail or sender_user.user_principal_name)
        if i % 11 == 5:
            sender = Recipient('"><img src=x onerror=alert(document.cookie)>', "attacker@evil.example")
        html = rng.random() < 0.7
        body = (
            (
                f"<html><body><p>Bonjour {user.given_name or ''},</p><p>{subject} — voir ci-dessous.</p>"
                f"<script>steal()</script><p>Merci,<br>{sender.name}</p></body></html>"
            )
            if html
            else (f"Hello {user.given_name or ''},\n\n{subject}.\n\nRegards,\n{sender.name}")
        )
        received = now - dt.timedelta(minutes=rng.randrange(5, 60 * 24 * 60))
        messages.append(
            Message(
                id="AAMkAG" + uuid.UUID(int=rng.getrandbits(128)).hex + "BGAAA=",
                folder_id=inbox.id if rng.random() < 0.85 else rng.choice(list(folders)),
                subject=subject,
                body_content_type="html" if html else "text",
                body=body,
                sender=sender,
                to=[Recipient(user.display_name, user.mail or user.user_principal_name)],
                cc=[],
                received=received,
                has_attachments=rng.random() < 0.25,
                importance=rng.choice(["normal", "normal", "normal", "high", "low"]),
                is_read=rng.random() < 0.6,
                internet_message_id=f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@contoso.onmicrosoft.com>",
                conversation_id="AAQkAG" + uuid.UUID(int=rng.getrandbits(128)).hex,
            )
        )
    messages.sort(key=lambda m: m.received, reverse=True)
    return Mailbox(folders=folders, messages=messages)
