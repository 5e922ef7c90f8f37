"""The app roles of this API (the ``appRoles`` of its registration, ``infra/app-registration.bicep``): the
one catalogue every endpoint's access, the docs and the infrastructure tests read.

Each role is granted to services (application permissions, in app-only tokens' ``roles``) and to people
(app role assignments, in their ID token's ``roles``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class AppRole(enum.StrEnum):
    """The app roles (each value is the role's name in tokens and in the registration)."""

    #: List and read directory users (``/api/users``).
    USERS_READ = "Users.Read.All"
    #: Read mailboxes inside ``MAILBOX_SCOPE`` (``/api/users/{id}/messages``, ``/mail``).
    MAIL_READ = "Mail.Read.All"
    #: Read the audit trail of mailbox reads (``/api/audit/mail``, ``/audit``).
    AUDIT_READ = "Audit.Read"
    #: Read the daily user reports (``/api/reports/users/...``, ``/reports``).
    REPORTS_READ = "Reports.Read"
    #: Start report runs; for people also admin consent (the operator role).
    REPORTS_RUN = "Reports.Run"
    #: Multi-tenant: suspend, resume and offboard onboarded organisations (``/tenants``); people of the
    #: home tenant only.
    TENANTS_MANAGE = "Tenants.Manage"


#: The role that lets a person start admin consent (documented in docs/sign-in.md): the operator's.
ADMIN_CONSENT = AppRole.REPORTS_RUN

#: Every role, with what it allows.
CATALOGUE: Mapping[AppRole, str] = {
    AppRole.USERS_READ: "List and read directory users",
    AppRole.MAIL_READ: "Read mailboxes inside the app's mailbox scope",
    AppRole.AUDIT_READ: "Read the audit trail of mailbox reads",
    AppRole.REPORTS_READ: "Read the daily user reports",
    AppRole.REPORTS_RUN: "Start report runs and admin consent",
    AppRole.TENANTS_MANAGE: "Suspend, resume and offboard onboarded organisations",
}
