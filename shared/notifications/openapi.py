"""The mail ingestion's part of the OpenAPI document (merged into :mod:`shared.app.openapi`): Graph's two
webhook endpoints and the operators' JSON view of the subscriptions."""

from __future__ import annotations

from typing import Any

from shared.core.patterns import GUID_PATTERN
from shared.identity.roles import AppRole
from shared.web.openapi_parts import error_refs, ok_response, ref

#: Codes the ingestion's endpoints answer (docs/errors.md).
NOTIFICATION_ERROR_CODES: tuple[str, ...] = (
    "invalid_notification",
    "invalid_validation_token",
    "payload_too_large",
)

_NULLABLE = {"type": "string", "nullable": True}
_WHEN = {"type": "string", "format": "date-time", "nullable": True}
_GUID = {"type": "string", "format": "uuid", "pattern": f"^{GUID_PATTERN}$"}
#: What authenticates and routes a notification: its subscription, its tenant (``organizationId`` in the
#: shape lifecycle events arrive in today) and the subscription's clientState.
_NOTIFICATION_IDS: dict[str, Any] = {
    "subscriptionId": _GUID,
    "tenantId": _GUID,
    "organizationId": _GUID,
    "clientState": {"type": "string", "maxLength": 255},
    "id": {"type": "string", "maxLength": 256},
}


def _collection(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["value"],
        "properties": {
            "value": {"type": "array", "minItems": 1, "maxItems": 1000, "items": ref("schemas", item)},
            "validationTokens": {
                "type": "array",
                "items": {"type": "string"},
                "description": (
                    "Rich notifications: JWTs Microsoft signs for the post's items (issuer "
                    "https://sts.windows.net/{tenant}/, audience this app, appid Graph's notification "
                    "publisher); items with encryptedContent they do not vouch for are dropped."
                ),
            },
        },
    }


def _webhook(operation_id: str, summary: str, what: str, collection: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": (
                f"Called by Microsoft Graph, which sends no token: {what} A post with a validationToken "
                "query parameter is Graph's validation handshake, answered 200 with the token as text/plain. "
                "Any other post must be a changeNotificationCollection; each notification is authenticated "
                "by its clientState (the others are dropped without a word), the genuine ones are queued, "
                "and the answer is 202 whatever became of each. Rich items (encryptedContent) also need the "
                "post's validationTokens to verify; their content is decrypted later, never on this path."
            ),
            "security": [],
            "parameters": [ref("parameters", "validationToken")],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref("schemas", collection)}},
            },
            "responses": {
                "200": {
                    "description": "The validation handshake: the token, URL-decoded, as plain text.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "202": {"description": "The post was taken; its genuine notifications are queued."},
                "413": ref("responses", "PayloadTooLarge"),
                **error_refs("400", "500", "503"),
            },
        }
    }


PATHS: dict[str, Any] = {
    "/api/graph/notifications": _webhook(
        "graphNotifications",
        "Graph change notifications (webhook).",
        "change notifications of mail and users.",
        "ChangeNotificationCollection",
    ),
    "/api/graph/lifecycle": _webhook(
        "graphLifecycle",
        "Graph lifecycle notifications (webhook).",
        "reauthorizationRequired, subscriptionRemoved and missed.",
        "LifecycleNotificationCollection",
    ),
    "/api/subscriptions": {
        "get": {
            "operationId": "listSubscriptions",
            "summary": "The mail ingestion's subscriptions and their health (/subscriptions as JSON).",
            "description": (
                f"Services with the app role {AppRole.REPORTS_RUN} (bearer token), or operators signed in to "
                f"the pages whose ID token carries {AppRole.REPORTS_RUN}. One entry per watched mailbox, and "
                "the users subscription: resource, expiry, status, last notification, last catch-up."
            ),
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "x-required-app-role": AppRole.REPORTS_RUN,
            "parameters": [],
            "responses": {
                "200": ok_response("The watched targets.", "SubscriptionList"),
                **error_refs("400", "401", "403", "500", "502", "503"),
            },
        }
    },
}
PARAMETERS: dict[str, Any] = {
    "validationToken": {
        "name": "validationToken",
        "in": "query",
        "required": False,
        "description": "Graph's validation handshake token (at most 1,024 printable characters).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[\\x20-\\x7e]*$"},
    }
}

SCHEMAS: dict[str, Any] = {
    "ChangeNotificationCollection": _collection("ChangeNotification"),
    "LifecycleNotificationCollection": _collection("LifecycleNotification"),
    "ChangeNotification": {
        "type": "object",
        "description": "One change (Graph's changeNotification); what the app reads of it.",
        "required": ["subscriptionId", "clientState", "changeType", "resource"],
        "anyOf": [{"required": ["tenantId"]}, {"required": ["organizationId"]}],
        "properties": {
            **_NOTIFICATION_IDS,
            "changeType": {"type": "string", "enum": ["created", "updated", "deleted"]},
            "resource": {"type": "string", "maxLength": 1024},
            "resourceData": {"type": "object"},
            "encryptedContent": {
                "type": "object",
                "description": (
                    "Rich notifications (NOTIFICATION_CERTIFICATE_NAME): the message's selected fields, "
                    "encrypted for the app's certificate version encryptionCertificateId."
                ),
                "properties": {
                    "data": {"type": "string"},
                    "dataKey": {"type": "string"},
                    "dataSignature": {"type": "string"},
                    "encryptionCertificateId": {"type": "string"},
                    "encryptionCertificateThumbprint": {"type": "string"},
                },
            },
        },
    },
    "LifecycleNotification": {
        "type": "object",
        "description": "One lifecycle event (Graph's lifecycle notification).",
        "required": ["subscriptionId", "clientState", "lifecycleEvent"],
        "anyOf": [{"required": ["tenantId"]}, {"required": ["organizationId"]}],
        "properties": {
            **_NOTIFICATION_IDS,
            "lifecycleEvent": {
                "type": "string",
                "enum": ["reauthorizationRequired", "subscriptionRemoved", "missed"],
            },
        },
    },
    "Subscription": {
        "type": "object",
        "properties": {
            "target": {"type": "string", "enum": ["mailbox", "users"]},
            "mailbox": _NULLABLE,
            "userPrincipalName": _NULLABLE,
            "subscriptionId": _NULLABLE,
            "resource": _NULLABLE,
            "encryptionCertificateId": {
                **_NULLABLE,
                "description": "Rich subscriptions: the certificate's Key Vault version Graph encrypts for.",
            },
            "expirationDateTime": _WHEN,
            "status": {"type": "string"},
            "lastNotification": _WHEN,
            "lastCatchUp": _WHEN,
            "lastLifecycleEvent": _NULLABLE,
            "lastError": _NULLABLE,
        },
    },
    "SubscriptionList": {
        "type": "object",
        "required": ["mode", "value"],
        "properties": {
            "mode": {"type": "string", "enum": ["webhook", "poll", "off"]},
            "value": {"type": "array", "items": ref("schemas", "Subscription")},
        },
    },
}

RESPONSES: dict[str, Any] = {
    "PayloadTooLarge": {
        "description": "The post is larger than 1 MiB (payload_too_large).",
        "content": {"application/json": {"schema": ref("schemas", "Error")}},
    }
}
