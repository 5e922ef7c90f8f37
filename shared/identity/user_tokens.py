"""Callers holding a person's access token for this API: the checks made before any exchange on the
person's behalf, and what the exchange then needs (:class:`UserAssertion`).

A single-page app or another API signs a person in and asks Entra for
``api://{ENTRA_CLIENT_ID}/access_as_user``; it sends that token as ``Authorization: Bearer``. Before the
token is exchanged on-behalf-of the person (:mod:`shared.identity.on_behalf_of`) it must pass, in order
(multi-tenant-and-obo reference, part B.1; learn.microsoft.com identity-platform ``claims-validation``):

1. **signature, issuer, audience, lifetime** (:class:`~shared.identity.bearer.CallerAuthenticator`): a token
   for another audience (Graph, the client app itself) is a 401 here, never exchanged;
2. **tenant**: ``tid`` is the tenant whose keys verified it, and a tenant the deployment serves
   (:class:`~shared.identity.tenancy.TenantDirectory`, at the edge);
3. **positively a user token**: ``scp`` present (only delegated tokens carry it), ``idtyp`` absent or
   ``user`` (``app`` with ``scp`` is a 401 in the bearer check), an ``oid`` that is a GUID and a ``sub`` that
   differs from it (in an app-only token both name the client's service principal);
4. **client allowed**: with ``API_ALLOWED_CLIENT_APPS`` set, ``azp`` (``appid`` in a v1 token) must be one
   of them (403 ``client_app_not_allowed``), as Easy Auth's ``allowedApplications``;
5. **scope**: ``scp`` holds ``access_as_user`` (403 ``insufficient_scope``, from the endpoint's
   :class:`~shared.identity.access.Access` ``user_scope``).

The token itself is kept (hidden from ``repr``) for the exchange, with the client's capability to follow a
claims challenge: ``xms_cc`` holding ``cp1`` (optional claim ``xms_cc``; claims-challenge doc).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import Any, Protocol, runtime_checkable

from shared.core.errors import Forbidden, Unauthenticated
from shared.core.patterns import is_guid
from shared.core.records import Record
from shared.identity.principal import Principal

#: The delegated scope this API exposes for callers acting for a person.
ACCESS_AS_USER = "access_as_user"
#: The client capability meaning "I can handle a claims challenge" (lower case in tokens).
CLAIMS_CAPABILITY = "cp1"


@runtime_checkable
class ClaimsVerifier(Protocol):
    """A bearer validator that also hands out the verified claims
    (:class:`~shared.identity.bearer.CallerAuthenticator`)."""

    def verified_claims(self, token: str) -> dict[str, Any]: ...

    def caller_of(self, claims: Mapping[str, Any]) -> Principal: ...


class UserAssertion(Record, hidden=("token",)):
    """A validated person's token for this API, ready to be exchanged on their behalf.

    Attributes:
        principal: the caller (kind ``user``): tenant, ``oid``, client app, scopes.
        token: the token as received (the OBO grant's ``assertion``); never logged or shown.
        client_capable: the client declared ``cp1`` (can follow a claims challenge).
        expires_at: the token's ``exp`` (Unix time).
    """

    principal: Principal
    token: str
    client_capable: bool
    expires_at: float

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def object_id(self) -> str:
        return self.principal.object_id or ""

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the token (hex): names it in memory without keeping a second copy."""
        return hashlib.sha256(self.token.encode("ascii")).hexdigest()


def admit(
    verifier: ClaimsVerifier, token: str, *, allowed_client_apps: Collection[str] = ()
) -> tuple[Principal, UserAssertion | None]:
    """The caller of ``token`` and, for a person's token, the assertion to exchange (module docstring).

    An app-only token comes back as its principal with no assertion: the endpoint's access decides (a
    service calling a person's route is refused ``caller_kind_not_allowed`` there).

    Raises:
        Unauthenticated: the token fails validation, or is delegated but not positively a person's (401).
        Forbidden: ``client_app_not_allowed``: the client app is not in ``allowed_client_apps`` (403).
        CredentialUnavailable: the tenant's signing keys cannot be fetched (503).
    """
    claims = verifier.verified_claims(token)
    principal = verifier.caller_of(claims)
    if principal.kind != "user":
        return principal, None
    oid, sub = claims.get("oid"), claims.get("sub")
    if claims.get("idtyp") not in (None, "user"):
        raise Unauthenticated("The bearer token is not a user's token (idtyp)")
    if not isinstance(oid, str) or not is_guid(oid):
        raise Unauthenticated("The bearer token names no user object (oid)")
    if not isinstance(sub, str) or not sub or sub == oid:
        raise Unauthenticated("The bearer token is not positively a user's token (sub)")
    allowed = {app.lower() for app in allowed_client_apps}
    if allowed and principal.app_id.lower() not in allowed:
        raise Forbidden(
            "The application that obtained this token may not call this API for a person "
            "(API_ALLOWED_CLIENT_APPS)",
            code="client_app_not_allowed",
        )
    expires = claims.get("exp")
    assertion = UserAssertion(
        principal=principal._replace(object_id=oid.lower()),
        token=token,
        client_capable=_declares_cp1(claims.get("xms_cc")),
        expires_at=float(expires) if isinstance(expires, int | float) else 0.0,
    )
    return assertion.principal, assertion


def _declares_cp1(value: object) -> bool:
    """``xms_cc`` is a list of strings (a single string in some tokens); capabilities compare
    case-insensitively (MSAL sends ``CP1``, tokens carry ``cp1``)."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return any(isinstance(item, str) and item.lower() == CLAIMS_CAPABILITY for item in values)
