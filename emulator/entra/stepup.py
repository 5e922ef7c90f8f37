"""Step-up through a claims challenge: an interactive request whose ``claims`` name a Conditional Access
policy.

When the on-behalf-of grant (or a refresh) fails with AADSTS50076/50079, the error's ``claims`` name the
policy (``{"access_token":{"capolids":{"essential":true,"values":["<policy id>"]}}}``). The middle tier hands
them back to its client, which sends them as the ``claims`` parameter of a new interactive request; the
sign-in must then satisfy that policy (the second factor) even though the policy targets another
application (the middle tier), so the new token lets the exchange pass. Sources:
``emulator/docs/spa-and-obo.md`` (claims-challenge.md, v2-oauth2-on-behalf-of-flow.md).
"""

from __future__ import annotations

import json

from emulator.directory.model import User
from emulator.entra.store import get_store
from emulator.state import EmulatorState


def named_policies(raw_claims: str | None) -> set[str]:
    """Policy ids a claims request names under ``access_token.capolids.values`` (none when malformed)."""
    if not raw_claims:
        return set()
    try:
        doc = json.loads(raw_claims)
    except ValueError:
        return set()
    access = doc.get("access_token") if isinstance(doc, dict) else None
    capolids = access.get("capolids") if isinstance(access, dict) else None
    values = capolids.get("values") if isinstance(capolids, dict) else None
    return {str(v) for v in values} if isinstance(values, list) else set()


def demands_mfa(state: EmulatorState, raw_claims: str | None, user: User) -> bool:
    """Whether the claims request names an MFA policy that applies to this user."""
    wanted = named_policies(raw_claims)
    return any(
        p.id in wanted and p.control in ("mfa", "mfaRegistration") and p.user_id in (None, user.id)
        for p in get_store(state).policies
    )
