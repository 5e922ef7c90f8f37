"""RoleConfirmation with an injected clock, on the in-memory session table: roles trusted for one period,
then one refresh; a refused refresh deletes the session; Entra down changes nothing."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from shared.core.errors import CredentialUnavailable, SignInRequired
from shared.signin.roles import ROLE_CHECK_SECONDS, RoleConfirmation
from shared.signin.sessions import Session, SessionClaims
from tests.unit.test_sessions import FakeTable, Wall, store

CLAIMS = SessionClaims(oid="o-1", tid="t-1", roles=("Reports.Read", "Reports.Run"))


class FakeSignIn:
    """Answers ``refreshed_claims`` with ``outcome`` (claims, or an exception to raise) and counts."""

    def __init__(self, outcome: Mapping[str, Any] | Exception) -> None:
        self.outcome = outcome
        self.calls: list[str] = []

    def refreshed_claims(self, cache: Any, *, home_account_id: str) -> Mapping[str, Any]:
        self.calls.append(home_account_id)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def setup(outcome: Mapping[str, Any] | Exception) -> tuple[RoleConfirmation, FakeSignIn, Wall, Session, Any]:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    session = sessions.create(CLAIMS, "{}")
    sign_in = FakeSignIn(outcome)
    confirmation = RoleConfirmation(sign_in=sign_in, sessions=sessions, now=wall)  # type: ignore[arg-type]
    return confirmation, sign_in, wall, session, sessions


def test_roles_are_trusted_for_one_period_then_replaced_by_entras_at_one_refresh() -> None:
    confirmation, sign_in, wall, session, sessions = setup(
        {"oid": "o-1", "tid": "T-1", "roles": ["Reports.Read"]}
    )
    assert session.claims.roles_checked == wall.now.timestamp()  # stamped at sign-in
    wall.now += datetime.timedelta(seconds=ROLE_CHECK_SECONDS - 1)
    assert confirmation.confirmed(session) is session and sign_in.calls == []
    wall.now += datetime.timedelta(seconds=1)
    confirmed = confirmation.confirmed(session)
    assert confirmed.claims.roles == ("Reports.Read",) and sign_in.calls == ["o-1.t-1"]
    assert confirmed.claims.roles_checked == wall.now.timestamp()
    stored = sessions.load(session.id)
    assert stored is not None and stored.claims == confirmed.claims
    assert confirmation.confirmed(confirmed) is confirmed and len(sign_in.calls) == 1  # the next period


@pytest.mark.parametrize(
    "refusal",
    [
        SignInRequired("refresh token revoked", code="session_expired"),
        SignInRequired("policy", code="interaction_required", claims='{"access_token":{}}'),
        {"oid": "someone-else", "tid": "t-1", "roles": ["Reports.Run"]},
    ],
    ids=["invalid-grant", "interaction-required", "another-account"],
)
def test_a_refused_refresh_deletes_the_session(refusal: Mapping[str, Any] | Exception) -> None:
    confirmation, _, wall, session, sessions = setup(refusal)
    wall.now += datetime.timedelta(seconds=ROLE_CHECK_SECONDS)
    with pytest.raises(SignInRequired):
        confirmation.confirmed(session)
    assert sessions.load(session.id) is None


def test_entra_unreachable_is_503_and_changes_nothing() -> None:
    confirmation, _, wall, session, sessions = setup(CredentialUnavailable("Entra down"))
    wall.now += datetime.timedelta(seconds=ROLE_CHECK_SECONDS)
    with pytest.raises(CredentialUnavailable):
        confirmation.confirmed(session)
    stored = sessions.load(session.id)
    assert stored is not None and stored.claims == session.claims  # still signed in, roles not refreshed


def test_a_record_without_a_confirmation_time_is_confirmed_at_once() -> None:
    confirmation, sign_in, _, session, _ = setup({"oid": "o-1", "tid": "t-1"})
    legacy = session._replace(claims=session.claims._replace(roles_checked=0.0))
    assert confirmation.confirmed(legacy).claims.roles == () and len(sign_in.calls) == 1
    assert SessionClaims.from_json({"oid": "o", "tid": "t"}).roles_checked == 0.0
