"""The base every capability builds on: the exception tree and its one translation point, settings, the
request context, the HTTP transport seam, retry policy, cooldowns, cursors and shared patterns."""

from shared.core.context import choose_request_id, current_request_id, request_scope
from shared.core.errors import (
    AuditUnavailable,
    AuthFlowMismatch,
    AuthFlowReplayed,
    AuthFlowUnknown,
    BadRequest,
    ClaimsChallenge,
    ConfigurationError,
    CredentialUnavailable,
    Forbidden,
    GraphFunctionsError,
    InvalidCursor,
    MailboxOutOfScope,
    NotFound,
    PermissionNotGranted,
    SignInFailed,
    SignInRequired,
    StorageUnavailable,
    Unauthenticated,
    UpstreamError,
    UpstreamThrottled,
)
from shared.core.settings import Settings

__all__ = [
    "AuditUnavailable",
    "AuthFlowMismatch",
    "AuthFlowReplayed",
    "AuthFlowUnknown",
    "BadRequest",
    "ClaimsChallenge",
    "ConfigurationError",
    "CredentialUnavailable",
    "Forbidden",
    "GraphFunctionsError",
    "InvalidCursor",
    "MailboxOutOfScope",
    "NotFound",
    "PermissionNotGranted",
    "Settings",
    "SignInFailed",
    "SignInRequired",
    "StorageUnavailable",
    "Unauthenticated",
    "UpstreamError",
    "UpstreamThrottled",
    "choose_request_id",
    "current_request_id",
    "request_scope",
]
