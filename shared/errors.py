"""The app's one exception hierarchy, and the converters from library errors into it.

Every error raised on purpose derives from :class:`GraphFunctionsError` and carries what the HTTP layer
needs to answer: a status, a stable machine-readable ``code`` (documented in ``docs/errors.md``), a message
that is safe to show to callers, and optional ``Retry-After`` / ``WWW-Authenticate`` data.

MSAL's error dicts and azure-core's exceptions are converted here and nowhere else
(:func:`from_msal_result`, :func:`from_azure_error`), so the rest of the code only ever sees these types.
This module imports nothing heavy: azure-core is imported lazily, and only once an azure error exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

#: AADSTS codes meaning "the credential you presented is wrong", which a vault re-read may fix:
#: 7000215 invalid client secret, 7000222 expired client secret, 700027 assertion signed by an
#: unknown/unregistered certificate (or a bad signature).
CREDENTIAL_REJECTED_CODES = frozenset({7000215, 7000222, 700027})

#: AADSTS codes that only an operator can fix (wrong tenant, app, scope or missing credential).
_CONFIGURATION_CODES = frozenset(
    {
        70011,  # invalid scope
        90002,  # tenant not found
        500011,  # resource principal not found in the tenant
        700016,  # application not found in the directory
        700022,  # scope spans several resources
        7000218,  # no credential in the request
    }
)
_CONFIGURATION_ERRORS = frozenset({"invalid_scope", "unauthorized_client", "invalid_resource"})

#: Default wait hinted to callers when a dependency gives none.
DEFAULT_RETRY_AFTER = 30

_MAX_MESSAGE = 400


class GraphFunctionsError(Exception):
    """Root of every error the app raises on purpose.

    Attributes:
        status: HTTP status the API answers with.
        code: stable machine-readable error code (``docs/errors.md``).
        message: human-readable text, safe to return to callers (never a secret or token).
        retry_after: seconds a caller should wait before retrying, if it makes sense.
        graph_code: the upstream Microsoft Graph error code, when the error came from Graph.
        graph_request_id: the upstream ``request-id``, for support tickets.
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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retry_after = retry_after
        self.graph_code = graph_code
        self.graph_request_id = graph_request_id

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


class NotFound(GraphFunctionsError):
    """The requested object does not exist (for example Graph ``Request_ResourceNotFound``)."""

    status = 404
    default_code = "not_found"


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


class StorageUnavailable(GraphFunctionsError):
    """The app's storage account (Blob, Queue, Table) failed or is unreachable. Carries ``Retry-After``."""

    status = 503
    default_code = "storage_unavailable"
    public_sentence = "The service's storage is temporarily unavailable. Retry after the Retry-After delay."

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after or DEFAULT_RETRY_AFTER, **kwargs)


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


def _first_line(text: str) -> str:
    """The first line of an AADSTS description: the summary, without trace and correlation ids."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:_MAX_MESSAGE]


def msal_error_codes(result: Mapping[str, Any]) -> frozenset[int]:
    """The integer AADSTS codes of an MSAL error result (``error_codes``), empty if none."""
    codes = result.get("error_codes") or ()
    out = set()
    for code in codes if isinstance(codes, list | tuple) else ():
        try:
            out.add(int(code))
        except (TypeError, ValueError):
            continue
    return frozenset(out)


def is_credential_rejected(result: Mapping[str, Any]) -> bool:
    """True when Entra ID rejected the client credential itself (a vault re-read may fix it)."""
    return bool(msal_error_codes(result) & CREDENTIAL_REJECTED_CODES)


def from_msal_result(result: Mapping[str, Any]) -> GraphFunctionsError:
    """Convert an MSAL error result dict (``{"error", "error_description", "error_codes"}``) to a typed error.

    Returns (does not raise) the exception, so callers write ``raise from_msal_result(result)``.
    """
    error = str(result.get("error") or "unknown_error")
    summary = _first_line(str(result.get("error_description") or error))
    codes = msal_error_codes(result)
    if codes & CREDENTIAL_REJECTED_CODES:
        return CredentialUnavailable(
            "Microsoft Entra ID rejected the app's client credential "
            f"({summary}). Put a current client secret or registered certificate in the vault entry "
            "named by ENTRA_CREDENTIAL_NAME; the app re-reads it without a restart.",
            retry_after=60,
        )
    if codes & _CONFIGURATION_CODES or error in _CONFIGURATION_ERRORS:
        return ConfigurationError(
            f"Microsoft Entra ID refused the app's token request ({summary}). Check ENTRA_TENANT_ID, "
            "ENTRA_CLIENT_ID, GRAPH_ENDPOINT and the app registration's API permissions."
        )
    return CredentialUnavailable(f"Microsoft Entra ID could not issue a token now ({summary}).")


def from_azure_error(exc: BaseException, *, what: str) -> GraphFunctionsError:
    """Convert an azure-core / azure-identity exception raised while fetching ``what`` to a typed error.

    ``what`` names the object in operator terms, e.g. ``"secret 'app-cred' in Key Vault https://kv/"``;
    it must not contain secret values. Not found / forbidden / unauthorised are configuration problems;
    throttling, server errors, unreachable endpoints and unavailable credentials are transient (503).
    """
    from azure.core import exceptions as az  # lazy: only reached once azure-core raised

    status = getattr(exc, "status_code", None) if isinstance(exc, az.HttpResponseError) else None
    detail = _first_line(str(getattr(exc, "message", None) or exc))
    if isinstance(exc, az.ResourceNotFoundError) or status == 404:
        return ConfigurationError(
            f"The {what} was not found. Create it, or fix ENTRA_CREDENTIAL_NAME / KEY_VAULT_URL."
        )
    if status == 403:
        if _is_disabled(exc, detail):
            return ConfigurationError(
                f"The {what} is disabled. Enable its current version or store a new enabled version."
            )
        return ConfigurationError(
            f"Access to the {what} was denied. Grant the Function App's managed identity the "
            "'Key Vault Secrets User' role on the vault (or a 'get' secrets access policy)."
        )
    if status == 401:
        return ConfigurationError(
            f"The service rejected the managed identity's token while reading the {what}. Check that the "
            "vault belongs to the same tenant as the identity."
        )
    if status is not None and (status in (408, 429) or status >= 500):
        return CredentialUnavailable(
            f"Reading the {what} failed temporarily (HTTP {status}).",
            retry_after=_retry_after_of(exc),
        )
    if isinstance(exc, az.ClientAuthenticationError):
        # No response at all: the credential chain (managed identity, ...) could not produce a token.
        return CredentialUnavailable(f"No Azure credential could obtain a token to read the {what}: {detail}")
    if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError):
        return CredentialUnavailable(f"The service holding the {what} is unreachable.")
    return CredentialUnavailable(f"Reading the {what} failed: {detail}")


def _is_disabled(exc: BaseException, detail: str) -> bool:
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None) or {}
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    return inner_code == "SecretDisabled" or "disabled" in detail.lower()


def _retry_after_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(1, int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
