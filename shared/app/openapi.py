"""The OpenAPI 3.0.3 description of every JSON endpoint, kept as data next to the code it describes.

``tests/unit/test_openapi.py`` keeps it in sync with the routes registered in ``function_app.app`` and with
the validation rules in :mod:`shared.users.service` (fields, limits), so the document cannot silently drift.
"""

from __future__ import annotations

import copy
from typing import Any

from shared.app.openapi_person import PERSON_ERROR_CODES, PERSON_PATHS, USER_BEARER_SCHEME
from shared.core.cursor import MAX_CURSOR_LENGTH
from shared.core.patterns import GUID_PATTERN, UPN_PATTERN
from shared.graph.users import MAX_USER_ID_LENGTH
from shared.identity.roles import AppRole
from shared.mail.openapi import MAIL_ERROR_CODES, MAIL_PARAMETERS, MAIL_PATHS, MAIL_SCHEMAS
from shared.notifications import openapi as ingestion
from shared.report import openapi as reports
from shared.users.service import (
    DEFAULT_TOP,
    MAX_SEARCH_LENGTH,
    MAX_TOP,
    USER_FIELDS,
)
from shared.version import __version__
from shared.web.openapi_parts import error_refs, ok_response, ref

#: Every ``error.code`` the API can return (docs/errors.md explains each).
ERROR_CODES: tuple[str, ...] = (
    "invalid_parameter",
    "invalid_cursor",
    "unauthenticated",
    "forbidden",
    "caller_kind_not_allowed",
    "not_found",
    "upstream_error",
    "upstream_bad_request",
    "upstream_unauthorized",
    "upstream_forbidden",
    "upstream_throttled",
    "credential_unavailable",
    "configuration_error",
    "report_not_found",
    "report_completed",
    "storage_unavailable",
    "internal_error",
    *MAIL_ERROR_CODES,
    *PERSON_ERROR_CODES,
    *ingestion.NOTIFICATION_ERROR_CODES,
    # Sign-in for people (session cookie)
    "sign_in_required",
    "session_expired",
    "interaction_required",
    "sign_in_failed",
    "sign_in_denied",
    "cross_origin_request",
    "csrf_token_invalid",
    "invalid_form",
    # Sessions and sign-in flows (shared/signin/sessions.py, shared/signin/flows.py)
    "auth_flow_unknown",
    "auth_flow_replayed",
    "auth_flow_mismatch",
    "storage_unavailable",
    "session_too_large",
    # Several organisations (shared/tenants)
    "tenant_not_onboarded",
    "tenant_suspended",
    "tenant_offboarded",
    "tenant_consent_revoked",
    "tenant_not_found",
    "onboarding_mismatch",
)

_NULLABLE_STRING = {"type": "string", "nullable": True}
USER_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "description": "Directory object id (GUID)."},
    "displayName": _NULLABLE_STRING,
    "givenName": _NULLABLE_STRING,
    "surname": _NULLABLE_STRING,
    "mail": _NULLABLE_STRING,
    "userPrincipalName": _NULLABLE_STRING,
    "jobTitle": _NULLABLE_STRING,
    "department": _NULLABLE_STRING,
    "accountEnabled": {"type": "boolean", "nullable": True},
    "userType": _NULLABLE_STRING,
    "createdDateTime": {"type": "string", "format": "date-time", "nullable": True},
    "officeLocation": _NULLABLE_STRING,
    "mobilePhone": _NULLABLE_STRING,
    "businessPhones": {"type": "array", "items": {"type": "string"}, "nullable": True},
    "preferredLanguage": _NULLABLE_STRING,
}

_FIELD_ALTERNATIVES = "|".join(USER_FIELDS)
SELECT_PATTERN = f"^({_FIELD_ALTERNATIVES})(,({_FIELD_ALTERNATIVES}))*$"
USER_ID_PATTERN = f"^({GUID_PATTERN}|{UPN_PATTERN})$"
# At least one printable non-space character, no control characters.
SEARCH_PATTERN = "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$"


def _error_response(description: str, *, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"x-request-id": ref("headers", "RequestId"), **{h: ref("headers", h) for h in headers}},
        "content": {"application/json": {"schema": ref("schemas", "Error")}},
    }


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Graph Functions",
        "version": __version__,
        "description": (
            "App-only access to Microsoft Graph directory data. Protected endpoints need a bearer token "
            "issued by the tenant for this API (client credentials, scope `api://{client id}/.default`) "
            "carrying the "
            "app role named in `x-required-app-role`."
        ),
    },
    "servers": [{"url": "/"}],
    "paths": {
        "/api/health": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness probe (no upstream calls, no authentication).",
                "security": [],
                "responses": {
                    "200": ok_response("The app is running.", "Health"),
                    "500": ref("responses", "ServerError"),
                },
            }
        },
        "/api/users": {
            "get": {
                "operationId": "listUsers",
                "summary": "List directory users, one page at a time.",
                "description": (
                    "Services (bearer token with the app role): app-only Graph, the app registration needs "
                    "the Graph application permission User.Read.All. People signed in to this app (session "
                    "cookie) or calling with their own token (scope access_as_user, exchanged on their "
                    "behalf): delegated Graph (User.ReadBasic.All), what Graph lets that person see. A "
                    "bearer token wins over a cookie."
                ),
                "security": [{"bearerAuth": []}, {"userBearerAuth": []}, {"cookieAuth": []}],
                "x-required-app-role": AppRole.USERS_READ,
                "parameters": [
                    ref("parameters", "top"),
                    ref("parameters", "select"),
                    ref("parameters", "search"),
                    ref("parameters", "cursor"),
                ],
                "responses": {
                    "200": ok_response("A page of users.", "UserPage"),
                    **error_refs("400", "401", "403", "500", "502", "503"),
                },
            }
        },
        "/api/users/{id}": {
            "get": {
                "operationId": "getUser",
                "summary": "Get one user by object id or userPrincipalName.",
                "security": [{"bearerAuth": []}],
                "x-required-app-role": AppRole.USERS_READ,
                "parameters": [ref("parameters", "userId"), ref("parameters", "select")],
                "responses": {
                    "200": ok_response("The user.", "User"),
                    **error_refs("400", "401", "403", "404", "500", "502", "503"),
                },
            }
        },
        **PERSON_PATHS,
        **MAIL_PATHS,
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "headers": {"x-request-id": ref("headers", "RequestId")},
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "500": ref("responses", "ServerError"),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "userBearerAuth": USER_BEARER_SCHEME,
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "Token from the tenant for api://{client id}/.default (RS256, v1 or v2).",
            },
            "cookieAuth": {
                "type": "apiKey",
                "in": "cookie",
                "name": "__Host-gf_session",
                "description": (
                    "Session of a person signed in at /auth/login (HttpOnly; the name is gf_session on "
                    "http://localhost). 401 session_expired or interaction_required: sign in again."
                ),
            },
        },
        "parameters": {
            "top": {
                "name": "top",
                "in": "query",
                "required": False,
                "description": "Page size.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": DEFAULT_TOP},
            },
            "select": {
                "name": "select",
                "in": "query",
                "required": False,
                "description": "Comma-separated properties to return (id is always returned).",
                "schema": {"type": "string", "pattern": SELECT_PATTERN},
            },
            "search": {
                "name": "search",
                "in": "query",
                "required": False,
                "description": "Matches users whose display name or mail contains the words.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_SEARCH_LENGTH,
                    "pattern": SEARCH_PATTERN,
                },
            },
            "cursor": {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": (
                    "nextCursor of the previous page, unchanged. It encodes the first page's top, select "
                    "and search: send it alone, or with the same values as the first page (compared after "
                    "validation: select as a set of fields, search trimmed). A parameter that differs is a "
                    "400 invalid_parameter; a cursor that is not an unchanged nextCursor, or names a page "
                    "Microsoft Graph no longer has, is a 400 invalid_cursor."
                ),
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH},
            },
            "userId": {
                "name": "id",
                "in": "path",
                "required": True,
                "description": "Object id (GUID) or userPrincipalName.",
                "schema": {"type": "string", "maxLength": MAX_USER_ID_LENGTH, "pattern": USER_ID_PATTERN},
            },
            **MAIL_PARAMETERS,
        },
        "headers": {
            "RequestId": {
                "description": "Request id, echoed from x-request-id when sane.",
                "schema": {"type": "string"},
            },
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            },
            "WWW-Authenticate": {"description": "RFC 6750 bearer challenge.", "schema": {"type": "string"}},
        },
        "responses": {
            "BadRequest": _error_response(
                "Invalid or unknown parameter (code invalid_parameter), or a cursor that is not an "
                "unchanged nextCursor (code invalid_cursor)."
            ),
            "Unauthorized": _error_response(
                "Missing or invalid bearer token (unauthenticated), or a session that ended "
                "(session_expired) or needs the person (interaction_required).",
                headers=("WWW-Authenticate",),
            ),
            "Forbidden": _error_response(
                "The caller lacks the required app role (forbidden), or its token is of a kind the "
                "endpoint does not accept (caller_kind_not_allowed).",
                headers=("WWW-Authenticate",),
            ),
            "NotFound": _error_response("No such object."),
            "ServerError": _error_response("configuration_error or internal_error."),
            "BadGateway": _error_response("Microsoft Graph failed or refused the app's request."),
            "ServiceUnavailable": _error_response(
                "Graph kept throttling, or a credential is temporarily unavailable.", headers=("Retry-After",)
            ),
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "additionalProperties": False,
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "requestId"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "enum": list(ERROR_CODES)},
                            "message": {"type": "string"},
                            "requestId": {"type": "string"},
                        },
                    }
                },
            },
            "Health": {
                "type": "object",
                "required": ["status", "version"],
                "additionalProperties": False,
                "properties": {"status": {"type": "string", "enum": ["ok"]}, "version": {"type": "string"}},
            },
            "User": {
                "type": "object",
                "description": "A directory user with the selected properties (null when unset).",
                "required": ["id"],
                "additionalProperties": False,
                "properties": USER_FIELD_SCHEMAS,
            },
            "SharePointUser": {
                "type": "object",
                "required": ["Title", "Email", "LoginName"],
                "additionalProperties": False,
                "properties": {
                    "Title": _NULLABLE_STRING,
                    "Email": _NULLABLE_STRING,
                    "LoginName": _NULLABLE_STRING,
                },
            },
            **MAIL_SCHEMAS,
            "UserPage": {
                "type": "object",
                "required": ["value", "nextCursor"],
                "additionalProperties": False,
                "properties": {
                    "value": {"type": "array", "items": ref("schemas", "User")},
                    "nextCursor": {
                        "type": "string",
                        "nullable": True,
                        "description": "Pass as cursor to get the next page; null on the last page.",
                    },
                },
            },
        },
    },
}


def _merge_reports(document: dict[str, Any]) -> None:
    """Add the reports API's paths and components (:mod:`shared.report.openapi`)."""
    document["paths"].update(reports.PATHS)
    for kind, part in (
        ("parameters", reports.PARAMETERS),
        ("schemas", reports.SCHEMAS),
        ("responses", reports.RESPONSES),
    ):
        document["components"][kind].update(part)


_merge_reports(_DOCUMENT)


def _merge_notifications(document: dict[str, Any]) -> None:
    """Add the mail ingestion's paths and components (:mod:`shared.notifications.openapi`)."""
    document["paths"].update(ingestion.PATHS)
    for kind, part in (
        ("parameters", ingestion.PARAMETERS),
        ("schemas", ingestion.SCHEMAS),
        ("responses", ingestion.RESPONSES),
    ):
        document["components"][kind].update(part)


_merge_notifications(_DOCUMENT)


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the OpenAPI document (callers may mutate it)."""
    return copy.deepcopy(_DOCUMENT)
