"""The app roles of this API (the ``appRoles`` of its registration, ``infra/app-registration.bicep``): the
one catalogue every endpoint's access, the docs and the infrastructure tests read.

Each role is granted to services (application permissions, in app-only tokens' ``roles``) and to people
(app role assignments, in their ID token's ``roles``).
"""

from __future__ import annotations

from collections.abc import Mapping

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
#: The role that lets a person start admin consent (documented in docs/sign-in.md): the operator's.
ADMIN_CONSENT = REPORTS_RUN

#: Every role, with what it allows.
CATALOGUE: Mapping[str, str] = {
    USERS_READ: "List and read directory users",
    MAIL_READ: "Read mailboxes inside the app's mailbox scope",
    AUDIT_READ: "Read the audit trail of mailbox reads",
    REPORTS_READ: "Read the daily user reports",
    REPORTS_RUN: "Start report runs and admin consent",
}
