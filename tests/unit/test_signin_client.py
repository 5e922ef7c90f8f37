"""How SignInClient turns MSAL's outcomes into results and typed errors (a fake MSAL app stands in)."""

from __future__ import annotations

from typing import Any

import msal
import pytest

from shared.core.errors import CredentialUnavailable, SignInFailed, SignInRequired
from shared.core.settings import Settings
from shared.identity.credentials import ClientCredential
from shared.signin.client import SignInClient

from .conftest import TENANT

ACCOUNT = {"home_account_id": f"oid-1.{TENANT}"}


class FakeApp:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[tuple[Any, ...]] = []

    def _answer(self) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def get_accounts(self) -> list[dict[str, str]]:
        return [ACCOUNT]

    def acquire_token_silent_with_error(
        self, scopes: list[str], account: Any, claims_challenge: Any = None, force_refresh: bool = False
    ) -> Any:
        self.calls.append((scopes, account, claims_challenge))
        return self._answer()

    def acquire_token_by_auth_code_flow(self, flow: Any, response: Any) -> Any:
        self.calls.append((flow, response))
        return self._answer()


def client(settings: Settings, outcome: Any) -> tuple[SignInClient, FakeApp]:
    fake = FakeApp(outcome)
    credential = ClientCredential(kind="secret", msal_credential="s", fingerprint="f")
    sign_in = SignInClient(settings.sign_in, credential=lambda: credential)
    sign_in._app = lambda cache: fake  # type: ignore[method-assign]
    return sign_in, fake


def silent(sign_in: SignInClient, claims: str | None = None) -> str:
    return sign_in.acquire_silent(
        msal.SerializableTokenCache(), home_account_id=ACCOUNT["home_account_id"], scopes=["s"], claims=claims
    )


def test_a_token_is_returned_and_claims_are_passed_on(settings: Settings) -> None:
    sign_in, fake = client(settings, {"access_token": "at"})
    assert silent(sign_in, claims='{"a":1}') == "at"
    assert fake.calls == [(["s"], ACCOUNT, '{"a":1}')]


@pytest.mark.parametrize(
    ("outcome", "code", "claims"),
    [
        (None, "session_expired", None),
        ({"error": "invalid_grant", "error_description": "AADSTS700082: expired"}, "session_expired", None),
        (
            {"error": "invalid_grant", "suberror": "basic_action", "claims": '{"c":1}'},
            "interaction_required",
            '{"c":1}',
        ),
        ({"error": "interaction_required"}, "interaction_required", None),
        ({"error": "invalid_grant", "suberror": "consent_required"}, "interaction_required", None),
    ],
)
def test_results_that_need_the_person(
    settings: Settings, outcome: Any, code: str, claims: str | None
) -> None:
    sign_in, _ = client(settings, outcome)
    with pytest.raises(SignInRequired) as caught:
        silent(sign_in)
    assert caught.value.code == code and caught.value.claims == claims and caught.value.status == 401


@pytest.mark.parametrize(
    "outcome",
    [
        {"error": "temporarily_unavailable"},
        ConnectionError("down"),
        msal.exceptions.MsalServiceError(error="x", error_description="5xx"),
    ],
)
def test_entra_failures_are_503(settings: Settings, outcome: Any) -> None:
    sign_in, _ = client(settings, outcome)
    with pytest.raises(CredentialUnavailable) as caught:
        silent(sign_in)
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


def test_the_callbacks_errors(settings: Settings) -> None:
    sign_in, fake = client(settings, {"access_token": "at"})
    with pytest.raises(SignInFailed) as denied:
        sign_in.finish({"state": "s"}, {"error": "access_denied", "state": "s"})
    assert denied.value.code == "sign_in_denied" and fake.calls == []  # nothing redeemed
    with pytest.raises(SignInFailed) as other:
        sign_in.finish({"state": "s"}, {"error": "server_error", "state": "s"})
    assert other.value.code == "sign_in_failed"
    for outcome in (ValueError("state mismatch"), {"error": "invalid_grant"}, {"access_token": "at"}):
        sign_in, _ = client(settings, outcome)
        with pytest.raises(SignInFailed) as failed:
            sign_in.finish({"state": "s"}, {"code": "c", "state": "s"})
        assert failed.value.code == "sign_in_failed" and failed.value.status == 400


def test_an_id_token_of_another_tenant_is_refused(settings: Settings) -> None:
    claims = {"oid": "o", "tid": "00000000-0000-0000-0000-000000000000"}
    sign_in, _ = client(settings, {"access_token": "at", "id_token_claims": claims})
    with pytest.raises(SignInFailed):
        sign_in.finish({"state": "s"}, {"code": "c", "state": "s"})
    good = {"oid": "o", "tid": TENANT}
    sign_in, _ = client(settings, {"access_token": "at", "id_token_claims": good})
    assert sign_in.finish({"state": "s"}, {"code": "c", "state": "s"}).claims == good
