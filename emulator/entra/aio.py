"""The ``aio`` claim of delegated access tokens: how and when the user signed in.

Entra documents ``aio`` as "an internal claim used by Microsoft Entra ID to record data for token reuse";
resources must not read it. The local tenant records the sign-in behind a token there (whether it completed
multi-factor authentication, and when), so the on-behalf-of grant can evaluate Conditional Access against the
original sign-in, as the cloud does with its own opaque value. The claim is inside the signed token, so it
cannot be forged; a token without the marker counts as a single-factor sign-in of unknown time.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass

_PREFIX = "L1."


@dataclass(frozen=True)
class SignIn:
    mfa: bool = False
    auth_time: float = 0.0


def encode(*, mfa: bool, auth_time: float) -> str:
    """An opaque-looking ``aio`` value carrying the sign-in (plus random bytes, as real values vary)."""
    raw = json.dumps({"m": int(mfa), "t": int(auth_time), "r": secrets.token_hex(4)}, separators=(",", ":"))
    return _PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(value: object) -> SignIn:
    """The sign-in recorded in a (verified) token's ``aio``; a default :class:`SignIn` when absent."""
    if not isinstance(value, str) or not value.startswith(_PREFIX):
        return SignIn()
    body = value[len(_PREFIX) :]
    try:
        doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return SignIn(bool(doc["m"]), float(doc["t"]))
    except (ValueError, KeyError, TypeError):
        return SignIn()
