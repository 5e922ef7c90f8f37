"""Bearer tokens of any organisation (multi-tenant, ``ENTRA_TENANCY=multi``): validated against the
``/organizations`` signing keys with the issuer checked exactly for the token's own tenant.

Entra's multi-tenant metadata (``{host}/organizations/v2.0/.well-known/openid-configuration``) publishes
the issuer as a template, ``https://login.microsoftonline.com/{tenantid}/v2.0``: the validator puts the
token's ``tid`` (which must be a GUID) into it and requires an exact match with ``iss`` ("Validate the
issuer", access-tokens.md; shared/reference/multi-tenant-and-obo.md A.5). The v1 issuer
``https://sts.windows.net/{tid}/`` is derived the same way. A signing key whose JWKS entry names one fixed
``issuer`` (not the template) may only sign tokens of exactly that issuer ("the key's issuer"). Everything
else (signature, audience, lifetime, caller kind) is :class:`~shared.identity.bearer.CallerAuthenticator`'s.

Validation says who the caller is, not whether their organisation is served: the allow-list (onboarded and
active) is decided afterwards by the tenant directory, so a valid token of another organisation is a 403
``tenant_not_onboarded``, and a forged one a 401.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from shared.core.errors import Unauthenticated
from shared.core.patterns import GUID_PATTERN
from shared.identity.bearer import LEEWAY_SECONDS, CallerAuthenticator
from shared.identity.signing_keys import SigningKeys

#: The tenant placeholder of Entra's multi-tenant issuer.
TENANT_PLACEHOLDER = "{tenantid}"
_V1_MULTI = r"^(https://[^/]+/)(organizations|common)/$"


class MultiTenantAuthenticator(CallerAuthenticator):
    """Validates tokens issued by any organisation for this API (module docstring)."""

    def __init__(
        self, *, audiences: Collection[str], keys: SigningKeys, leeway: int = LEEWAY_SECONDS
    ) -> None:
        """``keys``: the ``/organizations`` metadata's signing keys."""
        super().__init__(tenant_id="organizations", audiences=audiences, keys=keys, leeway=leeway)

    def _issuers(self, token: str) -> list[str]:
        tenant = _unverified_tenant(token)
        fixed = self._fixed_key_issuer(token)
        issuers = []
        for template in self._keys.issuers():
            if TENANT_PLACEHOLDER in template:
                issuers.append(template.replace(TENANT_PLACEHOLDER, tenant))
            elif (match := re.fullmatch(_V1_MULTI, template)) is not None:
                issuers.append(f"{match.group(1)}{tenant}/")
        if not issuers:  # a tenant-specific metadata document: no template to fill in
            raise Unauthenticated("The bearer token was not issued by this tenant")
        if fixed is not None:
            # A key published for one fixed issuer (e.g. Microsoft accounts' tenant) signs only that one.
            issuers = [issuer for issuer in issuers if issuer == fixed]
            if not issuers:
                raise Unauthenticated("The bearer token's signing key is not valid for its tenant's issuer")
        return issuers

    def _fixed_key_issuer(self, token: str) -> str | None:
        """The issuer the token's signing key is restricted to (None: a template, or none named)."""
        import jwt  # noqa: PLC0415 - jwt is heavy: imported on first use (cold start)

        kid = jwt.get_unverified_header(token).get("kid")
        issuer = self._keys.key_issuer(kid) if isinstance(kid, str) else None
        return None if issuer is None or TENANT_PLACEHOLDER in issuer else issuer

    def _tenant_of(self, claims: Mapping[str, Any]) -> str:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not re.fullmatch(GUID_PATTERN, tid):
            raise Unauthenticated("The bearer token names no tenant (tid)")
        return tid.lower()


def _unverified_tenant(token: str) -> str:
    """The ``tid`` the token claims (checked afterwards: the issuer built from it must match ``iss``
    exactly, on a token whose signature is verified)."""
    import jwt  # noqa: PLC0415 - jwt is heavy: imported on first use (cold start)

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The bearer token is not a well-formed JWT") from exc
    tid = claims.get("tid")
    if not isinstance(tid, str) or not re.fullmatch(GUID_PATTERN, tid):
        raise Unauthenticated("The bearer token names no tenant (tid)")
    return tid
