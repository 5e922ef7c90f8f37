"""Mailbox reads under an access scope, and their audit trail: query parsing, the mailbox scope, the
Graph reads, the audit store and queries, the pages and the OpenAPI part."""

from shared.mail.audit import AuditStore
from shared.mail.audit_query import list_audit, parse_audit_query
from shared.mail.own import OWN_MAIL_PERMISSION, list_own_messages
from shared.mail.pages import audit_page, mail_page, message_page
from shared.mail.reads import MailReads

__all__ = [
    "OWN_MAIL_PERMISSION",
    "AuditStore",
    "MailReads",
    "audit_page",
    "list_audit",
    "list_own_messages",
    "mail_page",
    "message_page",
    "parse_audit_query",
]
