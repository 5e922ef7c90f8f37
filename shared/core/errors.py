"""The app's one exception hierarchy.

Every error raised on purpose derives from :class:`GraphFunctionsError` and carries what the HTTP layer
needs to answer: a status, a stable machine-readable ``code`` (documented in ``docs/errors.md``), a message
that is safe to show to callers, and optional ``Retry-After`` / ``WWW-Authenticate`` data.

MSAL's error dicts and azure-core's exceptions are converted into these types in
:mod:`shared.core.error_translation` and nowhere else, so the rest of the code only ever sees them. This
module imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

#: Default wait hinted to callers when a dependency gives none.
DEFAULT_RETRY_AFTER = 30


class GraphFunctionsError(Exception):
    """Root of every error the app raises on purpose.

    Attributes:
        status: HTTP status the API answers with.
        code: stable machine-readable error code (``docs/errors.md``).
        message: human-readable text, safe to return to callers (never a secret or token).
        retry_after: seconds a caller should wait before retrying, if it makes sense.
        graph_code: the upstream Microsoft Graph error code, when the error came from Graph.
        graph_request_id: the upstream ``request-id``, for support tickets.
        graph_message: the upstream error message (for telling apart answers that share a code; callers
            never see it unless a message quotes it).
    """

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    #: When set, callers get this sentence instead of ``message``, which then goes to the log only: for
    #: errors whose details (setting values, vault names, Entra's AADSTS text) are for operators.
    public_sentence: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        graph_code: str | None = None,
        graph_request_id: str | None = None,
        graph_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retry_after = retry_after
        self.graph_code = graph_code
        self.graph_request_id = graph_request_id
        self.graph_message = graph_message

    @property
    def public_message(self) -> str:
        """What callers are told: ``message``, or the class's generic sentence for operator-only details."""
        return self.public_sentence or self.message

    def response_headers(self) -> dict[str, str]:
        """Extra HTTP response headers this error implies (``Retry-After``, ``WWW-Authenticate``)."""
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(0, int(self.retry_after)))
        return headers


class BadRequest(GraphFunctionsError):
    """The caller's request is malformed: unknown or invalid parameter, bad id, bad cursor."""

    status = 400
    default_code = "invalid_parameter"


class InvalidCursor(BadRequest):
    """A ``cursor`` that is not an unchanged ``nextCursor`` of ours, or names a page Graph no longer has."""

    default_code = "invalid_cursor"


def _challenge(error: str | None, description: str | None) -> str:
    """Build an RFC 6750 ``WWW-Authenticate: Bearer`` challenge (quoted-string safe)."""
    params = []
    if error:
        params.append(f'error="{error}"')
    if description:
        safe = re.sub(r'["\\\x00-\x1f\x7f]', "", description)[:200]
        params.append(f'error_description="{safe}"')
    return "Bearer " + ", ".join(params) if params else "Bearer"


class Unauthenticated(GraphFunctionsError):
    """No bearer token, or one that fails validation (RFC 6750 ``invalid_token``)."""

    status = 401
    default_code = "unauthenticated"

    def __init__(self, message: str, *, token_present: bool = True, code: str | None = None) -> None:
        super().__init__(message, code=code)
        # RFC 6750 section 3.1: a request without credentials gets a bare challenge, no error code.
        self.token_present = token_present

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        if self.token_present:
            headers["WWW-Authenticate"] = _challenge("invalid_token", self.message)
        else:
            headers["WWW-Authenticate"] = _challenge(None, None)
        return headers


class Forbidden(GraphFunctionsError):
    """A valid caller that lacks the app role an endpoint requires (RFC 6750 ``insufficient_scope``)."""

    status = 403
    default_code = "forbidden"

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        headers["WWW-Authenticate"] = _challenge("insufficient_scope", self.message)
        return headers


class TenantRefused(Forbidden):
    """The caller's organisation is not served now (multi-tenant): never onboarded
    (``tenant_not_onboarded``), ``tenant_suspended``, ``tenant_offboarded`` by the operator, or
    ``tenant_consent_revoked`` (its administrator removed the app or its consent). The message says what
    to do (403)."""

    default_code = "tenant_not_onboarded"


class NotFound(GraphFunctionsError):
    """The requested object does not exist (for example Graph ``Request_ResourceNotFound``)."""

    status = 404
    default_code = "not_found"


class ReportCompleted(GraphFunctionsError):
    """A forced run of a past date whose report completed: past reports are never replaced (409)."""

    status = 409
    default_code = "report_completed"


class MailboxOutOfScope(GraphFunctionsError):
    """A mailbox outside what this app may read: outside ``MAILBOX_SCOPE`` (or no scope configured), or
    refused by Exchange Online's own access policy for the app (docs/mail-access.md). 403, no challenge:
    no other token would help."""

    status = 403
    default_code = "mailbox_out_of_scope"


class PermissionNotGranted(GraphFunctionsError):
    """Microsoft Graph refuses the app a permission it needs (e.g. the application permission Mail.Read has
    no admin consent). 403; an administrator must grant and consent it."""

    status = 403
    default_code = "permission_not_granted"


class UpstreamError(GraphFunctionsError):
    """A dependency (Microsoft Graph, Entra ID metadata) failed in a way retrying now will not fix."""

    status = 502
    default_code = "upstream_error"


class UpstreamThrottled(GraphFunctionsError):
    """Microsoft Graph kept throttling (429/503) past the retry budget. Always carries ``Retry-After``."""

    status = 503
    default_code = "upstream_throttled"

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after or DEFAULT_RETRY_AFTER, **kwargs)


class CredentialUnavailable(GraphFunctionsError):
    """A credential the app needs is unavailable right now: vault, managed identity, Entra token
    endpoint or signing keys unreachable, or Entra rejected the stored credential. Carries ``Retry-After``."""

    status = 503
    default_code = "credential_unavailable"
    public_sentence = (
        "A service this API depends on for its credentials is temporarily unavailable. Retry after the "
        "Retry-After interval; quote the request id if it persists."
    )

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after or DEFAULT_RETRY_AFTER, **kwargs)


#: Wait hinted to callers after a storage failure (the SDK already retried twice).
STORAGE_RETRY_AFTER = 5


class StorageUnavailable(GraphFunctionsError):
    """The app's own storage (Table Storage: sessions, sign-in flows, audit) failed or is unreachable now:
    connection refused, timeout, throttling or a 5xx. Nothing was lost; the caller retries. Carries
    ``Retry-After``."""

    status = 503
    default_code = "storage_unavailable"
    public_sentence = (
        "The service's storage is temporarily unavailable. Retry after the Retry-After interval; quote the "
        "request id if it persists."
    )

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after or STORAGE_RETRY_AFTER, **kwargs)


class AuditUnavailable(StorageUnavailable):
    """A mailbox read whose audit record could not be written: the read is refused (no unaudited read).
    503 with ``Retry-After``."""

    default_code = "audit_unavailable"
    public_sentence = (
        "The mailbox read was refused because it could not be recorded in the audit trail, whose storage "
        "is temporarily unavailable. Retry after the Retry-After interval; quote the request id if it "
        "persists."
    )


class AuthFlowError(GraphFunctionsError):
    """A sign-in callback that cannot complete a stored sign-in flow (signin pages render it as HTML)."""

    status = 400
    default_code = "auth_flow_unknown"


class AuthFlowUnknown(AuthFlowError):
    """No sign-in flow for this ``state``: never started here, malformed, or expired (10 minutes)."""

    default_code = "auth_flow_unknown"


class AuthFlowReplayed(AuthFlowError):
    """The sign-in flow for this ``state`` was already completed once (a replayed callback)."""

    default_code = "auth_flow_replayed"


class AuthFlowMismatch(AuthFlowError):
    """The callback's ``state`` belongs to a sign-in started by another browser (login CSRF), or the
    browser lost the short-lived binding cookie."""

    default_code = "auth_flow_mismatch"


class SignInFailed(GraphFunctionsError):
    """A sign-in (or admin-consent) callback that Entra ID or the code redemption failed: the person
    declined (``sign_in_denied``), Entra answered an error, the code was replayed or the PKCE verifier did not
    match (``sign_in_failed``). No session is created; the page offers to try again."""

    status = 400
    default_code = "sign_in_failed"


class SignInRequired(Unauthenticated):
    """A person must sign in (again) to go on: no session (``sign_in_required``), a session that expired
    or whose refresh token was revoked (``session_expired``), or Entra ID / Graph asked for interaction
    (``interaction_required``: MFA, a Conditional Access policy, a CAE claims challenge).

    Pages send the person through sign-in with ``claims`` and back to the page; the JSON API answers 401.

    Attributes:
        claims: the claims challenge (JSON text) to pass to the next sign-in, if any.
        scopes: the scopes the next sign-in must request (beyond the sign-in's own).
    """

    default_code = "session_expired"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        claims: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, token_present=False, code=code)
        self.claims = claims
        self.scopes = scopes


class ClaimsChallenge(SignInRequired):
    """A resource (Graph under Continuous Access Evaluation) refused a delegated token with an
    ``insufficient_claims`` challenge. The token is dropped and a new one requested with ``claims``; when
    Entra then needs the person, the next sign-in carries the claims."""

    default_code = "interaction_required"


class ConfigurationError(GraphFunctionsError):
    """The deployment is misconfigured; an operator must act. The message says how, and holds no secret.

    Attributes:
        problems: every individual problem found (settings validation reports all of them at once).
    """

    status = 500
    default_code = "configuration_error"
    public_sentence = "The service is misconfigured and an operator must fix it. Quote the request id."

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} configuration problems: " + " | ".join(self.problems)
        super().__init__(message)


class AppNotProvisioned(ConfigurationError):
    """Entra ID says this app has no usable service principal in the tenant a token was asked for:
    AADSTS7000229 (no service principal), 700016 (application not found in the directory) or 7000112
    (the service principal is disabled). In the home tenant an operator must fix the registration; in an
    onboarded organisation it means the customer removed the app, its consent or disabled it
    (``shared.tenants`` marks the organisation ``consent_revoked``).

    Attributes:
        aadsts: the AADSTS codes of Entra's answer.
    """

    def __init__(self, problems: str | Iterable[str], *, aadsts: frozenset[int] = frozenset()) -> None:
        super().__init__(problems)
        self.aadsts = aadsts
