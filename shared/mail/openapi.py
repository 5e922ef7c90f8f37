"""The OpenAPI description of the mailbox and audit endpoints, merged into the document of
:mod:`shared.app.openapi`.

Built from the same constants the validation uses (:mod:`shared.mail.query`, :mod:`shared.mail.audit_query`),
so the limits cannot drift; ``tests/unit/test_openapi.py`` checks the routes and the responses.
"""

from __future__ import annotations

from typing import Any

from shared.core.cursor import MAX_CURSOR_LENGTH
from shared.core.patterns import GUID_PATTERN, UPN_PATTERN
from shared.identity.roles import AppRole
from shared.mail.audit_query import DATE_PATTERN, DATETIME_PATTERN
from shared.mail.audit_query import DEFAULT_TOP as AUDIT_DEFAULT_TOP
from shared.mail.audit_query import MAX_TOP as AUDIT_MAX_TOP
from shared.mail.query import (
    DEFAULT_TOP,
    FOLDERS,
    MAX_MESSAGE_ID_LENGTH,
    MAX_TOP,
    MESSAGE_ID_PATTERN,
)
from shared.web.openapi_parts import error_refs, ok_response, ref

_MAIL_DESCRIPTION = (
    "Only mailboxes inside MAILBOX_SCOPE (403 mailbox_out_of_scope otherwise, also when Exchange Online's "
    "application access policy refuses); every attempt, allowed or denied, is recorded in the audit trail "
    "before the answer (503 audit_unavailable when it cannot be). The app needs the Graph application "
    "permission Mail.Read."
)

MAIL_PATHS: dict[str, Any] = {
    "/api/users/{id}/messages": {
        "get": {
            "operationId": "listMessages",
            "summary": "A page of a mailbox's messages, newest first.",
            "description": _MAIL_DESCRIPTION,
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "x-required-app-role": AppRole.MAIL_READ,
            "parameters": [
                ref("parameters", "mailboxId"),
                ref("parameters", "mailTop"),
                ref("parameters", "folder"),
                ref("parameters", "mailCursor"),
            ],
            "responses": {
                "200": ok_response("A page of messages.", "MessagePage"),
                **error_refs("400", "401", "403", "404", "500", "502", "503"),
            },
        }
    },
    "/api/users/{id}/messages/{message_id}": {
        "get": {
            "operationId": "getMessage",
            "summary": "One message, its body as text (never HTML).",
            "description": _MAIL_DESCRIPTION,
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "x-required-app-role": AppRole.MAIL_READ,
            "parameters": [ref("parameters", "mailboxId"), ref("parameters", "messageId")],
            "responses": {
                "200": ok_response("The message.", "Message"),
                **error_refs("400", "401", "403", "404", "500", "502", "503"),
            },
        }
    },
    "/api/audit/mail": {
        "get": {
            "operationId": "listMailAudit",
            "summary": "The audit records of mailbox reads, newest first.",
            "description": "Append-only: no operation updates or deletes a record.",
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "x-required-app-role": AppRole.AUDIT_READ,
            "parameters": [
                ref("parameters", "auditFrom"),
                ref("parameters", "auditTo"),
                ref("parameters", "auditMailbox"),
                ref("parameters", "auditActor"),
                ref("parameters", "auditTop"),
                ref("parameters", "auditCursor"),
            ],
            "responses": {
                "200": ok_response("A page of audit records.", "AuditPage"),
                **error_refs("400", "401", "403", "500", "502", "503"),
            },
        }
    },
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_CURSOR_RULE = (
    "nextCursor of the previous page, unchanged; send it alone or with the same values as the first page "
    "(a differing one is a 400 invalid_parameter; anything but an unchanged nextCursor a 400 invalid_cursor)."
)
_IDENTITY = {"type": "string", "maxLength": 113, "pattern": f"^({GUID_PATTERN}|{UPN_PATTERN})$"}
#: What from/to accept: OpenAPI's date or date-time (RFC 3339; a date-time has its offset).
_INSTANT = {
    "type": "string",
    "anyOf": [
        {"format": "date", "pattern": f"^{DATE_PATTERN}$"},
        {"format": "date-time", "pattern": f"^{DATETIME_PATTERN}$"},
    ],
}
_OPAQUE = {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH}

MAIL_PARAMETERS: dict[str, Any] = {
    "mailboxId": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The mailbox owner's object id (GUID) or userPrincipalName.",
        "schema": {"type": "string", "maxLength": 113, "pattern": f"^({GUID_PATTERN}|{UPN_PATTERN})$"},
    },
    "messageId": {
        "name": "message_id",
        "in": "path",
        "required": True,
        "description": "A Microsoft Graph message id.",
        "schema": {
            "type": "string",
            "maxLength": MAX_MESSAGE_ID_LENGTH,
            "pattern": f"^{MESSAGE_ID_PATTERN}$",
        },
    },
    "mailTop": _query(
        "top", "Page size.", {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": DEFAULT_TOP}
    ),
    "folder": _query(
        "folder", "A well-known folder; absent: all mail.", {"type": "string", "enum": list(FOLDERS)}
    ),
    "mailCursor": _query("cursor", _CURSOR_RULE, _OPAQUE),
    "auditFrom": _query(
        "from",
        "Start of the range: a date (2026-12-01) or a date-time with its offset (2026-12-01T08:00:00Z); "
        "default: 7 days before to.",
        _INSTANT,
    ),
    "auditTo": _query(
        "to",
        "End of the range (a date means its end); default: now. Any range is accepted: from after to "
        "selects nothing, and a page scans at most 31 days (nextCursor continues a wider range, even after "
        "an empty page).",
        _INSTANT,
    ),
    "auditMailbox": _query(
        "mailbox",
        "Only reads of this person's mailbox, by the owner's object id: an object id, or a UPN (resolved to "
        "its owner's object id now; a UPN no user has selects the records that named it).",
        _IDENTITY,
    ),
    "auditActor": _query("actor", "Only reads by this app id, user object id or UPN.", _IDENTITY),
    "auditTop": _query(
        "top",
        "Page size.",
        {"type": "integer", "minimum": 1, "maximum": AUDIT_MAX_TOP, "default": AUDIT_DEFAULT_TOP},
    ),
    "auditCursor": _query("cursor", _CURSOR_RULE, _OPAQUE),
}

_TEXT = {"type": "string", "nullable": True}
_ADDRESS = {
    "type": "object",
    "required": ["name", "address"],
    "additionalProperties": False,
    "properties": {"name": _TEXT, "address": _TEXT},
}
_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": _TEXT,
    "subject": _TEXT,
    "from": {**_ADDRESS, "nullable": True},
    "toRecipients": {"type": "array", "items": _ADDRESS},
    "receivedDateTime": _TEXT,
    "bodyPreview": _TEXT,
    "isRead": {"type": "boolean"},
    "hasAttachments": {"type": "boolean"},
    "importance": _TEXT,
    "webLink": _TEXT,
}
_MESSAGE_PROPERTIES = {
    **{k: v for k, v in _SUMMARY_PROPERTIES.items() if k != "bodyPreview"},
    "ccRecipients": {"type": "array", "items": _ADDRESS},
    "body": {**_TEXT, "description": "The body as plain text (Graph converts HTML bodies)."},
}
_NEXT = {
    "type": "string",
    "nullable": True,
    "description": "Pass as cursor for the next page; null on the last.",
}

MAIL_SCHEMAS: dict[str, Any] = {
    "MessageSummary": {
        "type": "object",
        "required": list(_SUMMARY_PROPERTIES),
        "additionalProperties": False,
        "properties": _SUMMARY_PROPERTIES,
    },
    "MessagePage": {
        "type": "object",
        "required": ["value", "nextCursor"],
        "additionalProperties": False,
        "properties": {
            "value": {"type": "array", "items": ref("schemas", "MessageSummary")},
            "nextCursor": _NEXT,
        },
    },
    "Message": {
        "type": "object",
        "required": list(_MESSAGE_PROPERTIES),
        "additionalProperties": False,
        "properties": _MESSAGE_PROPERTIES,
    },
    "AuditRecord": {
        "type": "object",
        "additionalProperties": False,
        "required": ["time", "actor", "mailbox", "endpoint", "messageCount", "outcome", "requestId"],
        "properties": {
            "time": _TEXT,
            "actor": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"kind": _TEXT, "appId": _TEXT, "objectId": _TEXT, "userPrincipalName": _TEXT},
            },
            "mailbox": {**_TEXT, "description": "The mailbox as the caller typed it (an object id or UPN)."},
            "mailboxObjectId": {
                **_TEXT,
                "description": "The owner's object id at read time; null when the attempt ended before the "
                "owner was resolved (a refused caller, an invalid id, no such user, no scope configured).",
            },
            "mailboxUserPrincipalName": {
                **_TEXT,
                "description": "The owner's userPrincipalName at read time (null as mailboxObjectId).",
            },
            "endpoint": _TEXT,
            "folder": _TEXT,
            "messageId": _TEXT,
            "messageCount": {"type": "integer", "minimum": 0},
            "outcome": {"type": "string", "enum": ["allowed", "denied", "failed"], "nullable": True},
            "status": {"type": "integer", "nullable": True},
            "errorCode": _TEXT,
            "requestId": _TEXT,
            "channel": _TEXT,
        },
    },
    "AuditPage": {
        "type": "object",
        "required": ["value", "nextCursor"],
        "additionalProperties": False,
        "properties": {
            "value": {"type": "array", "items": ref("schemas", "AuditRecord")},
            "nextCursor": _NEXT,
        },
    },
}

#: The error codes of these endpoints (docs/errors.md).
MAIL_ERROR_CODES: tuple[str, ...] = (
    "mailbox_out_of_scope",
    "cross_site_navigation",
    "permission_not_granted",
    "user_not_found",
    "mailbox_not_found",
    "folder_not_found",
    "message_not_found",
    "audit_unavailable",
)
