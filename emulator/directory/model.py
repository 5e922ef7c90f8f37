"""The directory model: users, groups, applications, service principals, grants, mailboxes.

Plain mutable dataclasses held in memory by :class:`Directory`, with the indexes the services need.
All mutation happens on the event loop (handlers are ``async def`` and never await while mutating),
so no locking is needed for the model itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import CLOCK

UTC = dt.UTC


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class User:
    id: str
    user_principal_name: str
    display_name: str
    given_name: str | None
    surname: str | None
    mail: str | None
    job_title: str | None
    department: str | None
    account_enabled: bool
    user_type: str  # "Member" | "Guest"
    created: dt.datetime
    password: str
    has_mailbox: bool
    office_location: str | None = None
    mobile_phone: str | None = None
    preferred_language: str | None = "en-US"
    business_phones: tuple[str, ...] = ()
    is_admin: bool = False  # holds a directory role that can grant tenant-wide admin consent
    refresh_epoch: int = 0  # bumping it invalidates every refresh token issued before
    #: When the user's sign-in sessions were last revoked (``revokeSignInSessions``), epoch seconds.
    sessions_revoked_at: float = 0.0
    #: The last Continuous Access Evaluation critical event: CAE tokens issued before it are refused.
    cae_event_at: float = 0.0

    @property
    def home_tenant_id(self) -> str | None:
        """A B2B guest's home tenant (derived from the mail domain: the seed has no other tenants);
        None for members."""
        if self.user_type != "Guest" or not self.mail or "@" not in self.mail:
            return None
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, self.mail.rpartition("@")[2].lower()))

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "businessPhones": list(self.business_phones),
            "displayName": self.display_name,
            "givenName": self.given_name,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": self.mobile_phone,
            "officeLocation": self.office_location,
            "preferredLanguage": self.preferred_language,
            "surname": self.surname,
            "userPrincipalName": self.user_principal_name,
            "accountEnabled": self.account_enabled,
            "userType": self.user_type,
            "createdDateTime": iso(self.created),
            "department": self.department,
        }


@dataclass(slots=True)
class Group:
    id: str
    display_name: str
    mail_nickname: str
    description: str
    security_enabled: bool
    mail_enabled: bool
    group_types: tuple[str, ...]
    created: dt.datetime
    members: list[str] = field(default_factory=list)  # user ids
    member_groups: list[str] = field(default_factory=list)  # ids of groups nested in this one

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "description": self.description,
            "mailNickname": self.mail_nickname,
            "mailEnabled": self.mail_enabled,
            "securityEnabled": self.security_enabled,
            "groupTypes": list(self.group_types),
            "createdDateTime": iso(self.created),
        }


@dataclass(slots=True)
class ClientSecret:
    key_id: str
    display_name: str
    value: str
    start: dt.datetime
    end: dt.datetime

    @property
    def hint(self) -> str:
        return self.value[:3]


@dataclass(slots=True)
class ClientCertificate:
    key_id: str
    display_name: str
    cert_pem: str
    thumbprint_sha1: bytes
    thumbprint_sha256: bytes
    start: dt.datetime
    end: dt.datetime


@dataclass(slots=True)
class FederatedCredential:
    id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]


@dataclass(slots=True)
class AppRole:
    id: str
    value: str
    display_name: str
    allowed_member_types: tuple[str, ...] = ("User", "Application")


@dataclass(slots=True)
class Application:
    """An app registration merged with its service principal in this tenant."""

    app_id: str  # the client id
    object_id: str
    sp_id: str  # service principal object id: the ``oid`` of app-only tokens
    display_name: str
    is_public: bool = False
    access_token_version: int = 1
    identifier_uris: tuple[str, ...] = ()
    app_roles: list[AppRole] = field(default_factory=list)
    delegated_scopes: tuple[str, ...] = ()  # scopes this app exposes as a resource
    secrets: list[ClientSecret] = field(default_factory=list)
    certificates: list[ClientCertificate] = field(default_factory=list)
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    #: The subset of ``redirect_uris`` registered on the ``spa`` platform (single-page application): codes
    #: sent there are redeemed cross-origin with PKCE, their refresh tokens live 24 h (emulator/entra/spa.py).
    spa_redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    # requiredResourceAccess: resource app id -> ("scopes": delegated names, "roles": application names)
    required_permissions: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    is_first_party_resource: bool = False
    is_managed_identity: bool = False
    enabled: bool = True
    #: ``signInAudience`` of the registration: ``AzureADMyOrg`` (single tenant, the portal's default) or
    #: ``AzureADMultipleOrgs``; a single-tenant app cannot sign in under ``/common`` or ``/organizations``.
    sign_in_audience: str = "AzureADMyOrg"
    #: ``optionalClaims``: token kind (``idToken``, ``accessToken``) -> claim names (e.g. ``email``).
    optional_claims: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class AppRoleAssignment:
    principal_id: str  # service principal id (application permission) or user id
    resource_app_id: str
    role: str  # role value, e.g. "User.Read.All"


@dataclass(slots=True)
class DelegatedGrant:
    """An oAuth2PermissionGrant: consent for a client to call a resource on behalf of users."""

    client_app_id: str
    resource_app_id: str
    consent_type: str  # "AllPrincipals" (admin consent) | "Principal"
    principal_id: str | None
    scopes: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Recipient:
    name: str
    address: str

    def to_graph(self) -> dict[str, Any]:
        return {"emailAddress": {"name": self.name, "address": self.address}}


@dataclass(slots=True)
class Message:
    id: str
    folder_id: str
    subject: str
    body_content_type: str  # "html" | "text"
    body: str
    sender: Recipient
    to: list[Recipient]
    cc: list[Recipient]
    received: dt.datetime
    has_attachments: bool
    importance: str = "normal"
    is_read: bool = False
    internet_message_id: str = ""
    conversation_id: str = ""
    #: Bumped by every change after creation, so the changeKey and @odata.etag move as Exchange's do.
    version: int = 0
    #: When it last changed after creation (None: never; lastModifiedDateTime is then the received time).
    modified: dt.datetime | None = None

    @property
    def change_key(self) -> str:
        return self.id[-16:] if not self.version else f"{self.id[-12:]}{self.version:04X}"

    @property
    def body_preview(self) -> str:
        import re

        text = re.sub(r"<[^>]+>", " ", self.body) if self.body_content_type == "html" else self.body
        return " ".join(text.split())[:255]

    def to_graph(self) -> dict[str, Any]:
        stamp = iso(self.received)
        return {
            "@odata.etag": f'W/"{self.change_key}"',
            "id": self.id,
            "createdDateTime": stamp,
            "lastModifiedDateTime": iso(self.modified) if self.modified else stamp,
            "receivedDateTime": stamp,
            "sentDateTime": stamp,
            "hasAttachments": self.has_attachments,
            "internetMessageId": self.internet_message_id,
            "subject": self.subject,
            "bodyPreview": self.body_preview,
            "importance": self.importance,
            "parentFolderId": self.folder_id,
            "conversationId": self.conversation_id,
            "isRead": self.is_read,
            "isDraft": False,
            "body": {"contentType": self.body_content_type, "content": self.body},
            "sender": self.sender.to_graph(),
            "from": self.sender.to_graph(),
            "toRecipients": [r.to_graph() for r in self.to],
            "ccRecipients": [r.to_graph() for r in self.cc],
            "bccRecipients": [],
            "replyTo": [],
        }


@dataclass(slots=True)
class MailFolder:
    id: str
    display_name: str
    well_known_name: str


@dataclass(slots=True)
class Mailbox:
    folders: dict[str, MailFolder]  # by id
    messages: list[Message]  # newest first

    def folder(self, id_or_name: str) -> MailFolder | None:
        wanted = id_or_name.lower()
        for folder in self.folders.values():
            if folder.id == id_or_name or folder.well_known_name == wanted:
                return folder
        return None


@dataclass
class Directory:
    tenant_id: str
    domain: str
    display_name: str
    users: list[User] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    apps: dict[str, Application] = field(default_factory=dict)  # by app id
    app_role_assignments: list[AppRoleAssignment] = field(default_factory=list)
    delegated_grants: list[DelegatedGrant] = field(default_factory=list)
    _by_id: dict[str, User] = field(default_factory=dict)
    _by_upn: dict[str, User] = field(default_factory=dict)
    # user id -> deleted marker time, for /users/delta "@removed"
    removed: dict[str, dt.datetime] = field(default_factory=dict)
    change_seq: int = 0
    user_seq: dict[str, int] = field(default_factory=dict)  # user id -> last change sequence

    def add_user(self, user: User) -> None:
        self.users.append(user)
        self._by_id[user.id] = user
        self._by_upn[user.user_principal_name.lower()] = user
        self.touch(user.id)

    def remove_user(self, user_id: str, when: dt.datetime | None = None) -> User | None:
        """Delete a user: out of the indexes and groups, remembered in ``removed`` for delta."""
        user = self._by_id.pop(user_id, None)
        if user is None:
            return None
        self._by_upn.pop(user.user_principal_name.lower(), None)
        self.users.remove(user)
        for group in self.groups:
            if user_id in group.members:
                group.members.remove(user_id)
        self.removed[user_id] = when or CLOCK.now()
        self.touch(user_id)
        return user

    def rename_user(self, user: User, upn: str) -> None:
        """Change a user's userPrincipalName, keeping the UPN index right."""
        self._by_upn.pop(user.user_principal_name.lower(), None)
        user.user_principal_name = upn
        self._by_upn[upn.lower()] = user
        self.touch(user.id)

    def touch(self, user_id: str) -> None:
        self.change_seq += 1
        self.user_seq[user_id] = self.change_seq

    def user(self, id_or_upn: str) -> User | None:
        return self._by_id.get(id_or_upn) or self._by_upn.get(id_or_upn.lower())

    def group(self, group_id: str) -> Group | None:
        return next((g for g in self.groups if g.id == group_id), None)

    def app(self, app_id: str) -> Application | None:
        return self.apps.get(app_id)

    def app_by_sp(self, sp_id: str) -> Application | None:
        return next((a for a in self.apps.values() if a.sp_id == sp_id), None)

    def resource_for(self, identifier: str) -> Application | None:
        """Find the resource app named by an app id or one of its identifier URIs (case-insensitive)."""
        wanted = identifier.rstrip("/").lower()
        for app in self.apps.values():
            if app.app_id.lower() == wanted or any(
                u.rstrip("/").lower() == wanted for u in app.identifier_uris
            ):
                return app
        return None

    def roles_of(self, principal_id: str, resource_app_id: str) -> list[str]:
        return sorted(
            {
                a.role
                for a in self.app_role_assignments
                if a.principal_id == principal_id and a.resource_app_id == resource_app_id
            }
        )

    def consented_scopes(self, client_app_id: str, resource_app_id: str, user_id: str | None) -> set[str]:
        scopes: set[str] = set()
        for g in self.delegated_grants:
            if (
                g.client_app_id == client_app_id
                and g.resource_app_id == resource_app_id
                and (g.consent_type == "AllPrincipals" or g.principal_id == user_id)
            ):
                scopes |= g.scopes
        return scopes

    def grant_delegated(
        self, client_app_id: str, resource_app_id: str, scopes: set[str], user_id: str | None
    ) -> None:
        consent_type = "Principal" if user_id else "AllPrincipals"
        for g in self.delegated_grants:
            if (g.client_app_id, g.resource_app_id, g.consent_type, g.principal_id) == (
                client_app_id,
                resource_app_id,
                consent_type,
                user_id,
            ):
                g.scopes |= scopes
                return
        self.delegated_grants.append(
            DelegatedGrant(client_app_id, resource_app_id, consent_type, user_id, set(scopes))
        )
