"""The answers a caller holding a person's token gets when Microsoft Entra ID needs more than its token: a
claims challenge it can follow, or a stable refusal it can show.

Microsoft's convention for a web API that calls another API on behalf of a user (learn.microsoft.com,
identity-platform ``claims-challenge`` and ``v2-oauth2-on-behalf-of-flow``): when Entra (or Graph under
Continuous Access Evaluation) asks for claims (MFA step-up, a Conditional Access policy, a revoked session),
the API answers **401** with every parameter in one header::

    WWW-Authenticate: Bearer realm="", authorization_uri="https://login.microsoftonline.com/{tid}/oauth2/v2.0/authorize",
        error="insufficient_claims", claims="<base64 of the claims JSON>"

but only to a client that declared it can handle one (``xms_cc`` holding ``cp1`` in its token); any other
client gets a **403** with a stable code (:class:`StepUpRequired`), since it would otherwise retry its
cached token forever. Missing consent is a 403 ``consent_required`` carrying the consent hint
(:class:`ConsentRequired`; header parameters as Microsoft.Identity.Web sends them: ``consentUri``,
``scopes``, ``proposedAction="consent"``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from shared.core.errors import Forbidden, Unauthenticated

#: Response headers a single-page app on another origin must be able to read to follow a challenge (CORS
#: exposes only the safelisted ones otherwise).
EXPOSED = "WWW-Authenticate, Retry-After, x-request-id"
#: What may appear inside a quoted header parameter we build (RFC 7230 quoted-string, minus quote,
#: backslash and controls, which we never need).
_QUOTABLE = r'[^"\\\x00-\x1f\x7f]*'


def _quoted(value: str) -> str:
    if re.fullmatch(_QUOTABLE, value) is None:
        value = re.sub(r'["\\\x00-\x1f\x7f]', "", value)
    return f'"{value}"'


def encode_claims(claims: str) -> str:
    """``claims`` (the JSON text Entra or Graph sent) as standard base64, as the header carries it."""
    return base64.b64encode(claims.encode("utf-8")).decode("ascii")


class InsufficientClaims(Unauthenticated):
    """401 ``insufficient_claims``: the caller's client must get a new token with :attr:`claims` (decoded
    from the header by the client and passed to MSAL as ``claims``) and call again.

    Attributes:
        claims: the claims challenge (JSON text).
        authorization_uri: the tenant's authorization endpoint, for the header.
    """

    default_code = "insufficient_claims"

    def __init__(self, message: str, *, claims: str, authorization_uri: str) -> None:
        super().__init__(message, code="insufficient_claims")
        self.claims = claims
        self.authorization_uri = authorization_uri

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        params = (
            'realm=""',
            f"authorization_uri={_quoted(self.authorization_uri)}",
            'error="insufficient_claims"',
            f"claims={_quoted(encode_claims(self.claims))}",
        )
        headers["WWW-Authenticate"] = "Bearer " + ", ".join(params)
        headers["Access-Control-Expose-Headers"] = EXPOSED
        return headers


class StepUpRequired(Forbidden):
    """403 ``step_up_required``: Entra needs the person (MFA, Conditional Access, a renewed sign-in) and the
    calling client did not declare it can follow a claims challenge (no ``cp1`` in ``xms_cc``)."""

    default_code = "step_up_required"


class ConditionalAccessBlocked(Forbidden):
    """403 ``conditional_access_blocked``: a Conditional Access policy blocks this access outright
    (AADSTS53003); no other token would help."""

    default_code = "conditional_access_blocked"


class ConsentRequired(Forbidden):
    """403 ``consent_required``: nobody consented to this app using ``scopes`` on the person's behalf
    (AADSTS65001). The header names the consent URI and the scopes to consent to.

    Attributes:
        consent_uri: where the person (or an administrator, for the tenant) can consent.
        scopes: the permissions the consent must cover.
    """

    default_code = "consent_required"

    def __init__(self, message: str, *, consent_uri: str, scopes: Sequence[str]) -> None:
        super().__init__(message, code="consent_required")
        self.consent_uri = consent_uri
        self.scopes = tuple(scopes)

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        params = (
            'error="insufficient_scope"',
            f"consentUri={_quoted(self.consent_uri)}",
            f"scopes={_quoted(','.join(self.scopes))}",
            'proposedAction="consent"',
        )
        headers["WWW-Authenticate"] = "Bearer " + ", ".join(params)
        headers["Access-Control-Expose-Headers"] = EXPOSED
        return headers
