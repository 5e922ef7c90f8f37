"""The OpenAPI description of the endpoints that serve a person (``/api/me``, ``/api/me/sharepoint``,
``/api/me/messages``) and of the person's own bearer token (``userBearerAuth``), merged into the document
of :mod:`shared.app.openapi`."""

from __future__ import annotations

from typing import Any

from shared.web.openapi_parts import error_refs, ok_response, ref

#: The error codes of a person's bearer caller (docs/errors.md, docs/on-behalf-of.md).
PERSON_ERROR_CODES: tuple[str, ...] = (
    "insufficient_scope",
    "client_app_not_allowed",
    "insufficient_claims",
    "step_up_required",
    "conditional_access_blocked",
    "consent_required",
    "token_revoked",
)

_PERSON_DESCRIPTION = (
    "For a person: signed in to this app (session cookie; delegated tokens of the session), or calling "
    "with their own token for this API (scope api://{client id}/access_as_user), exchanged on their behalf "
    "for Graph. When Entra needs more (MFA, Conditional Access, a revoked session): 401 insufficient_claims "
    "with a claims challenge for a client whose token declares cp1, else 403 step_up_required. Missing "
    "consent: 403 consent_required. App-only tokens: 403 caller_kind_not_allowed."
)
_SECURITY: list[dict[str, list[str]]] = [{"userBearerAuth": []}, {"cookieAuth": []}]


def _get(operation_id: str, summary: str, ok: dict[str, Any], parameters: list[Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": _PERSON_DESCRIPTION,
            "security": _SECURITY,
            "parameters": parameters,
            "responses": {"200": ok, **error_refs("400", "401", "403", "404", "500", "502", "503")},
        }
    }


PERSON_PATHS: dict[str, Any] = {
    "/api/me": _get(
        "getMe",
        "The person's profile (Graph /me, delegated User.Read).",
        ok_response("The person's profile.", "User"),
        [],
    ),
    "/api/me/sharepoint": _get(
        "getMySharePointUser",
        "The person's SharePoint user on SHAREPOINT_SITE_URL (delegated AllSites.Read).",
        ok_response("The SharePoint current user.", "SharePointUser"),
        [],
    ),
    "/api/me/messages": _get(
        "listMyMessages",
        "The person's own newest messages (delegated Mail.Read).",
        ok_response("A page of messages.", "MessagePage"),
        [ref("parameters", "mailTop"), ref("parameters", "folder"), ref("parameters", "mailCursor")],
    ),
}

USER_BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "A person's token for api://{client id}/access_as_user (delegated, scp access_as_user), "
        "obtained by a "
        "client app allowed by API_ALLOWED_CLIENT_APPS when set."
    ),
}
