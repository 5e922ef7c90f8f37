"""Conditional Access, MFA and Continuous Access Evaluation at the token endpoint and the sign-in pages.

Policies are set through the control API (``/_emulator/entra/conditional-access``), per user and/or per
client application, and live in the Entra store (a reset forgets them). Each policy has one control:

* ``block``: no token (AADSTS53003, ``interaction_required``, ``suberror: message_only``).
* ``mfa``: the grant must come from a sign-in that completed multi-factor authentication (AADSTS50076; the
  sign-in page then asks for the second factor).
* ``mfaRegistration``: as ``mfa`` for a user who has not registered a method yet (AADSTS50079).
* ``signInFrequency``: a refresh token older than ``signInFrequency`` seconds since its sign-in is refused
  (AADSTS70043) and an older browser session must sign in again.

The claims request (``claims`` parameter) is read here too: ``access_token.xms_cc.values`` declares the
client's capabilities (``cp1``: it handles CAE claims challenges) and ``access_token.nbf.value`` answers a
CAE challenge. Sources and exact responses: ``emulator/docs/entra.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from emulator.directory.model import UTC, Application, User
from emulator.entra.context import EntraError, fail
from emulator.entra.store import get_store
from emulator.state import EmulatorState

CONTROLS = ("block", "mfa", "mfaRegistration", "signInFrequency")


@dataclass(frozen=True)
class Policy:
    id: str
    control: str
    user_id: str | None  # None: every user
    client_id: str | None  # None: every application
    sign_in_frequency: int | None = None  # seconds, for the signInFrequency control

    def applies(self, client: Application, user: User) -> bool:
        return (self.user_id is None or self.user_id == user.id) and (
            self.client_id is None or self.client_id == client.app_id
        )

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "control": self.control,
            "userId": self.user_id,
            "clientId": self.client_id,
            "signInFrequency": self.sign_in_frequency,
        }


def new_policy(control: str, user_id: str | None, client_id: str | None, frequency: int | None) -> Policy:
    return Policy(str(uuid.uuid4()), control, user_id, client_id, frequency)


@dataclass(frozen=True)
class ClaimsRequest:
    """What a ``claims`` parameter asks of the access token."""

    capabilities: tuple[str, ...] = ()
    nbf: int | None = None

    @property
    def cae_capable(self) -> bool:
        return "cp1" in self.capabilities


def parse_claims(raw: str | None) -> ClaimsRequest:
    """Parse the ``claims`` parameter (OIDC claims request JSON); raises :class:`EntraError` (AADSTS90023
    **[INFERRED]**) when it is not a JSON object."""
    if not raw:
        return ClaimsRequest()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise fail(90023, "invalid_request", "The claims parameter is not valid JSON.") from exc
    access = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or (access is not None and not isinstance(access, dict)):
        raise fail(90023, "invalid_request", "The claims parameter must be a JSON object.")
    access = access or {}
    cc = access.get("xms_cc")
    values = cc.get("values") if isinstance(cc, dict) else None
    capabilities = tuple(str(v).lower() for v in values) if isinstance(values, list) else ()
    nbf_claim = access.get("nbf")
    nbf: int | None = None
    if isinstance(nbf_claim, dict):
        try:
            nbf = int(str(nbf_claim.get("value")))
        except ValueError:
            nbf = None
    return ClaimsRequest(capabilities, nbf)


def merge_claims(*requests: ClaimsRequest) -> ClaimsRequest:
    capabilities = tuple(sorted({c for r in requests for c in r.capabilities}))
    nbfs = [r.nbf for r in requests if r.nbf is not None]
    return ClaimsRequest(capabilities, max(nbfs) if nbfs else None)


def _with_claims(error: EntraError, claims: dict[str, Any]) -> EntraError:
    """Add the ``claims`` member real CA errors carry (a claims request naming the policy)."""
    body = json.loads(bytes(error.response.body))
    body["claims"] = json.dumps(claims, separators=(",", ":"))
    headers = {
        k: v for k, v in error.response.headers.items() if k.lower() in ("cache-control", "x-ms-request-id")
    }
    return EntraError(JSONResponse(body, status_code=error.response.status_code, headers=headers))


def _policy_claims(policy: Policy) -> dict[str, Any]:
    return {"access_token": {"capolids": {"essential": True, "values": [policy.id]}}}


def _stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def policies_for(state: EmulatorState, client: Application, user: User) -> list[Policy]:
    return [p for p in get_store(state).policies if p.applies(client, user)]


def blocked(state: EmulatorState, client: Application, user: User) -> Policy | None:
    return next((p for p in policies_for(state, client, user) if p.control == "block"), None)


def mfa_policy(state: EmulatorState, client: Application, user: User) -> Policy | None:
    """The first policy demanding MFA of this sign-in (``mfa`` or ``mfaRegistration``), if any."""
    return next(
        (p for p in policies_for(state, client, user) if p.control in ("mfa", "mfaRegistration")), None
    )


def session_too_old(
    state: EmulatorState, client: Application, user: User, auth_time: float, now: float
) -> bool:
    """Whether a sign-in-frequency policy makes a sign-in from ``auth_time`` too old to reuse."""
    return any(
        p.control == "signInFrequency"
        and p.sign_in_frequency is not None
        and now - auth_time > p.sign_in_frequency
        for p in policies_for(state, client, user)
    )


def check_grant(
    state: EmulatorState,
    *,
    client: Application,
    user: User,
    resource_id: str,
    mfa_done: bool,
    auth_time: float,
    grant_type: str,
    now: float,
) -> None:
    """Evaluate the policies for a delegated token request; raises the AADSTS error Entra answers."""
    policy = blocked(state, client, user)
    if policy is not None:
        raise _with_claims(
            fail(
                53003,
                "interaction_required",
                "Access has been blocked by Conditional Access policies. The access policy does not allow "
                "token issuance.",
                suberror="message_only",
            ),
            _policy_claims(policy),
        )
    policy = mfa_policy(state, client, user)
    if policy is not None and not mfa_done:
        if policy.control == "mfaRegistration":
            code, verb, error = 50079, "enroll in", "interaction_required"
        else:
            # Observed: a refresh (and a code redemption) answers invalid_grant, ROPC interaction_required.
            code, verb = 50076, "use"
            error = "interaction_required" if grant_type == "password" else "invalid_grant"
        raise _with_claims(
            fail(
                code,
                error,
                "Due to a configuration change made by your administrator, or because you moved to a new "
                f"location, you must {verb} multi-factor authentication to access '{resource_id}'.",
                suberror="basic_action",
            ),
            _policy_claims(policy),
        )
    for policy in policies_for(state, client, user):
        if (
            grant_type == "refresh_token"
            and policy.control == "signInFrequency"
            and policy.sign_in_frequency is not None
            and now - auth_time > policy.sign_in_frequency
        ):
            raise fail(
                70043,
                "invalid_grant",
                "The refresh token has expired or is invalid due to sign-in frequency checks by conditional "
                f"access. The token was issued on {_stamp(auth_time)} and the maximum allowed lifetime for "
                f"this request is {policy.sign_in_frequency}.",
            )


def revoked_grant(user: User, issued_at: float) -> EntraError:
    """AADSTS50173: the user's sessions were revoked after this refresh token was issued."""
    return fail(
        50173,
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user "
        f"might have changed or reset their password. The grant was issued on '{_stamp(issued_at)}' and the "
        f"TokensValidFrom date (before which tokens are not valid) for this user is "
        f"'{_stamp(max(user.sessions_revoked_at, issued_at))}'.",
    )


def require_cae_claims(user: User, claims: ClaimsRequest, issued_at: float) -> None:
    """A CAE-capable client refreshing a grant older than the user's last critical event must answer the
    claims challenge (``claims`` with ``access_token.nbf`` at or after the event) **[INFERRED]**."""
    if not claims.cae_capable or user.cae_event_at <= issued_at:
        return
    value = math.ceil(user.cae_event_at)
    if claims.nbf is not None and claims.nbf >= value:
        return
    raise _with_claims(
        fail(
            50173,
            "interaction_required",
            "The provided grant has expired due to it being revoked, a fresh auth token is needed: a "
            "continuous access evaluation event occurred after it was issued. Send the claims challenge "
            "returned by the resource in the claims parameter.",
        ),
        {"access_token": {"nbf": {"essential": True, "value": str(value)}}},
    )
