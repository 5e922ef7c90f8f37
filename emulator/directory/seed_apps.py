"""Seeded app registrations, service principals, managed identities and grants of the local tenant."""

from __future__ import annotations

import base64
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
from emulator.directory.model import (
    Application,
    AppRole,
    AppRoleAssignment,
    ClientSecret,
    DelegatedGrant,
    Directory,
    FederatedCredential,
)

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
API_ROLES = ("Users.Read.All", "Mail.Read.All", "Reports.Read", "Reports.Run", "Audit.Read", "Tenants.Manage")
VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
STORAGE_APP_ID = "e406a681-f3d4-42a8-90b6-c2b029497af1"

SECRET_NAME = "graph-functions-client-secret"
CERTIFICATE_NAME = "graph-functions-certificate"
CERTIFICATE_PEM_NAME = "graph-functions-certificate-pem"
#: The app's session key (sign-in sessions and flows are sealed with it): the app's default SESSION_KEY_NAME.
SESSION_KEY_NAME = "graph-functions-session-key"


def session_key_value(seed: int) -> str:
    """The seeded session key: 256 bits, base64, as an operator would store it. Derived from the seed alone
    (not drawn from the seed's random stream, which would shift every later seeded value), so the same
    ``--seed`` keeps sessions readable across restarts of the local tenant."""
    digest = hashlib.sha256(f"graph-functions-session-key/{seed}".encode()).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass
class SeededApps:
    app: Application  # Graph Functions
    caller: Application
    caller_norole: Application
    system_identity: Application
    user_identity: Application
    app_secret: str
    caller_secret: str
    caller_norole_secret: str


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _secret_value(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
    body = "".join(rng.choice(alphabet) for _ in range(37))
    return body[:3] + "8Q~" + body[3:]


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


def seed_applications(
    directory: Directory, rng: random.Random, config: EmulatorConfig, now: dt.datetime
) -> SeededApps:
    """Register Graph Functions, its two callers and the managed identities, with their grants."""
    tenant_id = directory.tenant_id
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
            # Admin consent returns to its own callback (the Functions host reserves /admin/*).
            "http://localhost:7071/auth/admin-consent/callback",
            "http://127.0.0.1:7071/auth/admin-consent/callback",
            # Onboarding another organisation: its admin's sign-in and admin consent return here (issue 18).
            "http://localhost:7071/onboard/callback",
            "http://127.0.0.1:7071/onboard/callback",
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
                # Mail.Send: the daily report mails its summary (application permission, admin-consented).
                "roles": ("User.Read.All", "Mail.Read", "GroupMember.Read.All", "Mail.Send"),
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
    return SeededApps(
        app, caller, caller_norole, system_mi, user_mi, app_secret, caller_secret, norole_secret
    )
