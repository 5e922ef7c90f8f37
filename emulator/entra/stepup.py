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

from starlette.responses import JSONResponse

from emulator.directory.model import User
from emulator.entra.conditional_access import Policy
from emulator.entra.context import EntraError, fail
from emulator.entra.scopes import ScopeRequest
from emulator.entra.store import get_store
from emulator.state import EmulatorState

NO_STORE = {"Cache-Control": "no-store, no-cache"}


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


def named_mfa_policy(state: EmulatorState, raw_claims: str | None, user: User) -> Policy | None:
    """The first MFA policy (``mfa``, ``mfaRegistration``) the claims name that applies to the user."""
    wanted = named_policies(raw_claims)
    return next(
        (
            p
            for p in get_store(state).policies
            if p.id in wanted and p.control in ("mfa", "mfaRegistration") and p.user_id in (None, user.id)
        ),
        None,
    )


def demands_mfa(state: EmulatorState, raw_claims: str | None, user: User) -> bool:
    """Whether the claims request names an MFA policy that applies to this user."""
    return named_mfa_policy(state, raw_claims, user) is not None


def require_mfa(
    state: EmulatorState, raw_claims: str | None, user: User, req: ScopeRequest, *, mfa_done: bool, grant: str
) -> None:
    """A non-interactive grant (refresh token, password) carrying a claims challenge that names an MFA
    policy cannot satisfy it without a sign-in that did MFA: AADSTS50076 (``invalid_grant`` on refresh,
    ``interaction_required`` on the password grant, ``suberror: basic_action``, the same ``claims``), so the
    client falls back to an interactive request (MSAL.js's ``acquireTokenSilent({claims})`` refreshes
    first)."""
    if mfa_done:
        return
    policy = named_mfa_policy(state, raw_claims, user)
    if policy is None:
        return
    error = "interaction_required" if grant == "password" else "invalid_grant"
    resource_id = req.resource(state.directory).app.app_id
    raise _with_policy_claims(
        fail(
            50076,
            error,
            "Due to a configuration change made by your administrator, or because you moved to a new "
            f"location, you must use multi-factor authentication to access '{resource_id}'.",
            suberror="basic_action",
        ),
        policy.id,
    )


def _with_policy_claims(error: EntraError, policy_id: str) -> EntraError:
    """The error with the ``claims`` member naming the policy, as Conditional Access errors carry it."""
    body = json.loads(bytes(error.response.body))
    challenge = {"access_token": {"capolids": {"essential": True, "values": [policy_id]}}}
    body["claims"] = json.dumps(challenge, separators=(",", ":"))
    return EntraError(JSONResponse(body, status_code=error.response.status_code, headers=NO_STORE))
