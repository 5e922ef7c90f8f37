"""Which client a request comes from, as the service itself sees it (for fault matching and the log).

The result is an application (client) id or None, decided from the request alone, before and
independently of the service's own authentication:

- login (Entra ID): the ``client_id`` of a form-encoded body, else the user of HTTP Basic, else the
  ``iss`` of a ``client_assertion`` JWT (RFC 7523 §3: ``iss`` is the client id for a certificate
  assertion); for other methods (``/authorize``, logout) the ``client_id`` query parameter.
- Graph, Key Vault, SharePoint: the ``appid`` (v1 tokens) or ``azp`` (v2 tokens) of the bearer token.
- the managed-identity endpoint: the identity named by ``client_id`` / ``clientid`` (legacy),
  ``principal_id`` / ``object_id`` or ``mi_res_id``, else the system-assigned identity's app id.

Tokens are decoded **without** verification: a forged or expired token still names the client it
claims, which is what a fault rule keyed on that client wants to catch. Nothing here rejects a request.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt

from emulator.directory.model import Application

#: The managed-identity protocol version whose only identity parameter is ``clientid``.
LEGACY_API_VERSION = "2017-09-01"
#: The longest client id the log keeps (the services' own attribution truncates the same way).
MAX_CLIENT_ID = 64

_MI_RES_ID = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/"
    r"userassignedidentities/([^/]+)$",
    re.IGNORECASE,
)


def _short(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:MAX_CLIENT_ID] or None


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT without checking its signature or lifetime; empty when it is not a JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _authorization(headers: Mapping[str, str]) -> tuple[str, str]:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return scheme.lower(), value.strip()


def bearer_client(headers: Mapping[str, str]) -> str | None:
    """``appid`` or ``azp`` of the bearer token (the Azure resource services' view of the caller)."""
    scheme, value = _authorization(headers)
    if scheme != "bearer" or not value:
        return None
    claims = unverified_claims(value)
    found = claims.get("appid") or claims.get("azp")
    return _short(found) if isinstance(found, str) else None


def basic_user(headers: Mapping[str, str]) -> str | None:
    """The user part of HTTP Basic (RFC 6749 §2.3.1: form-urlencoded, then base64)."""
    scheme, value = _authorization(headers)
    if scheme != "basic" or not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, _ = raw.partition(":")
    return _short(unquote_plus(user)) if sep else None


def token_request_client(headers: Mapping[str, str], body: bytes) -> str | None:
    """The client of a token request: form ``client_id``, Basic user, or ``client_assertion``'s ``iss``."""
    form: dict[str, str] = {}
    if "application/x-www-form-urlencoded" in headers.get("content-type", "").lower():
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
    if _short(form.get("client_id")):
        return _short(form.get("client_id"))
    basic = basic_user(headers)
    if basic:
        return basic
    issuer = unverified_claims(form.get("client_assertion", "")).get("iss")
    return _short(issuer) if isinstance(issuer, str) else None


def managed_identity_client(
    query: Mapping[str, str], system: Application, user_assigned: tuple[Application, ...]
) -> str | None:
    """The app id of the identity a managed-identity token request names (system-assigned when none).

    api-version 2017-09-01 names a user-assigned identity only by ``clientid``; later versions by
    ``client_id``, ``principal_id`` / ``object_id`` or ``mi_res_id`` (as the endpoint reads them)."""
    if query.get("api-version") == LEGACY_API_VERSION:
        return _short(query.get("clientid")) or system.app_id
    if query.get("client_id"):
        return _short(query["client_id"])
    wanted = (query.get("principal_id") or query.get("object_id") or "").strip().lower()
    resource = _MI_RES_ID.match(query.get("mi_res_id", "").strip())
    for identity in (system, *user_assigned):
        if wanted and identity.sp_id.lower() == wanted:
            return identity.app_id
        if resource and identity.display_name.lower() == resource.group(1).lower():
            return identity.app_id
    if wanted or "mi_res_id" in query:
        return None  # names an identity this tenant does not have: the endpoint answers 400
    return system.app_id


class ClientResolver:
    """Resolves the client of a request on one service; ``needs_body`` says whether the body is read."""

    def __init__(self, service: str, identities: Callable[[], tuple[Application, ...]] | None = None) -> None:
        """``identities`` returns the function app's identities, system-assigned first (read per
        request, since a reset of the local tenant re-seeds the directory)."""
        self.service = service
        self.identities = identities

    def needs_body(self, method: str, headers: Mapping[str, str]) -> bool:
        """Only a login-origin form POST carries its client in the body."""
        return (
            self.service == "login"
            and method == "POST"
            and "application/x-www-form-urlencoded" in headers.get("content-type", "").lower()
        )

    def resolve(self, method: str, headers: Mapping[str, str], query: str, body: bytes) -> str | None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if self.service == "login":
            if method == "POST":
                return token_request_client(headers, body)
            return _short(params.get("client_id"))
        if self.service == "identity":
            found = self.identities() if self.identities is not None else ()
            if not found:
                return None
            return managed_identity_client(params, found[0], found[1:])
        return bearer_client(headers)
