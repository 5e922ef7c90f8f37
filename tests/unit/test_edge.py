"""The edge's building blocks: declared access and the one access decision, the tenant directory, the Graph
client answering a claims challenge through the token source, and the package contracts."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.app.tenants import graph_config
from shared.core.errors import ClaimsChallenge, Unauthenticated
from shared.graph.client import GraphClient
from shared.identity import APPLICATIONS, PEOPLE, USERS, Access, AppRole, Principal, TenantDirectory, refusal

from .conftest import GRAPH, TENANT, make_settings
from .fakes import FakeClock, FakeResponse, FakeTokens, FakeTransport, respond

ROOT = Path(__file__).resolve().parents[2]


def principal(kind: str, *roles: str) -> Principal:
    return Principal(kind=kind, app_id="app", object_id="oid", tenant_id=TENANT, roles=frozenset(roles))  # type: ignore[arg-type]


# --- Access -----------------------------------------------------------------------------------------------


def test_an_endpoint_open_to_bearer_callers_must_name_their_role() -> None:
    with pytest.raises(ValueError, match="app role"):
        Access(kinds=APPLICATIONS)
    with pytest.raises(ValueError, match="at least one"):
        Access(kinds=frozenset())
    assert Access(kinds=PEOPLE).person_role is None  # any person


def test_a_caller_of_another_kind_is_refused_naming_the_accepted_kinds() -> None:
    services_only = Access(kinds=APPLICATIONS, app_role=AppRole.USERS_READ)
    refused = refusal(principal("user", AppRole.USERS_READ), services_only)
    assert refused is not None and refused.code == "caller_kind_not_allowed" and refused.status == 403
    assert "applications (app-only)" in refused.message and "signed-in users (delegated)" in refused.message
    # A bearer token on a page for people: the message names people, the kind the endpoint takes.
    people_only = refusal(principal("application", AppRole.USERS_READ), Access(kinds=PEOPLE))
    assert people_only is not None and "people signed in to this app" in people_only.message


def test_roles_are_checked_per_kind() -> None:
    access = Access(kinds=APPLICATIONS | PEOPLE, app_role=AppRole.MAIL_READ, person_role=AppRole.AUDIT_READ)
    assert refusal(principal("application", AppRole.MAIL_READ), access) is None
    lacking = refusal(principal("application", AppRole.AUDIT_READ), access)
    assert lacking is not None and lacking.code == "forbidden" and "Mail.Read.All" in lacking.message
    assert refusal(principal("person", AppRole.AUDIT_READ), access) is None
    person = refusal(principal("person", AppRole.MAIL_READ), access)
    assert person is not None and person.code == "forbidden" and "Audit.Read" in person.message
    # No person role declared: any signed-in person.
    assert refusal(principal("person"), Access(kinds=PEOPLE)) is None
    assert refusal(principal("user", "x"), Access(kinds=USERS, app_role="x")) is None


def test_app_roles_are_their_names_wherever_they_are_used() -> None:
    assert (
        f"{AppRole.REPORTS_READ}" == "Reports.Read" and json.dumps(AppRole.USERS_READ) == '"Users.Read.All"'
    )
    assert principal("person", "Reports.Run").has_role(AppRole.REPORTS_RUN)


# --- Tenants ----------------------------------------------------------------------------------------------


def test_the_directory_serves_its_tenants_only() -> None:
    directory = TenantDirectory.single(tenant_id=TENANT, authority=f"https://login.example/{TENANT}")
    home = directory.get(TENANT.upper())
    assert home is directory.home and home.storage_prefix == ""
    assert home.metadata_url == f"https://login.example/{TENANT}/v2.0/.well-known/openid-configuration"
    with pytest.raises(Unauthenticated):
        directory.get("99999999-9999-9999-9999-999999999999")
    assert list(directory) == [home]


# --- Claims challenges inside the client ------------------------------------------------------------------


class ChallengeableTokens(FakeTokens):
    """A token source that answers claims challenges (as a person's delegated tokens do)."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[tuple[str, str]] = []

    def require_claims(self, claims: str, scope: str) -> None:
        self.claims.append((claims, scope))
        self.generation += 1


def _challenge() -> FakeResponse:
    claims = base64.b64encode(b'{"access_token":{"nbf":{"essential":true}}}').decode()
    header = f'Bearer realm="", error="insufficient_claims", claims="{claims}"'
    return respond(
        401, {"error": {"code": "InvalidAuthenticationToken"}}, headers={"WWW-Authenticate": header}
    )


def _client(transport: FakeTransport, tokens: FakeTokens) -> GraphClient:
    clock = FakeClock()
    return GraphClient(
        config=graph_config(make_settings()),
        tokens=tokens,
        transport=transport,
        sleep=clock.sleep,
        clock=clock,
    )


def test_a_claims_challenge_is_answered_once_by_the_token_source() -> None:
    transport = FakeTransport([_challenge(), respond(200, {"id": "me"})])
    tokens = ChallengeableTokens()
    assert _client(transport, tokens).get_json("me") == {"id": "me"}
    assert tokens.claims == [('{"access_token":{"nbf":{"essential":true}}}', f"{GRAPH}/.default")]
    first, second = transport.requests
    assert (
        first.headers["authorization"] == "Bearer token-1"
        and second.headers["authorization"] == "Bearer token-2"
    )


def test_a_second_challenge_needs_the_person() -> None:
    transport = FakeTransport([_challenge(), _challenge()])
    tokens = ChallengeableTokens()
    with pytest.raises(ClaimsChallenge) as raised:
        _client(transport, tokens).get_json("me")
    assert raised.value.claims and len(tokens.claims) == 1 and len(transport.requests) == 2


def test_the_apps_own_tokens_cannot_answer_a_challenge() -> None:
    transport = FakeTransport([_challenge()])
    with pytest.raises(ClaimsChallenge):
        _client(transport, FakeTokens()).get_json("me")
    assert len(transport.requests) == 1


# --- Contracts --------------------------------------------------------------------------------------------


def test_the_architecture_contracts_hold() -> None:
    """The import-linter contracts of pyproject.toml (layers, independent capabilities, the edge alone
    reaching the process's services, package surfaces for blueprints) are kept, with nothing ignored."""
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "ignore_imports" not in (ROOT / "pyproject.toml").read_text()
