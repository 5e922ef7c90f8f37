"""On-behalf-of with a cache that works (shared.identity.on_behalf_of): reuse per person and scope set,
single-flight, held outages, claims, and the answers a caller gets."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence

import pytest

from shared.core.challenges import InsufficientClaims
from shared.core.errors import CredentialUnavailable, GraphFunctionsError
from shared.identity.obo_exchange import Exchanged, ExchangeRefusedError, RefusalKind
from shared.identity.on_behalf_of import OboTokens, OnBehalfOf, refusal_for
from shared.identity.principal import Principal
from shared.identity.user_tokens import UserAssertion

from .conftest import AUTHORITY_HOST, CALLER_APP, CLIENT, GRAPH, TENANT
from .fakes import FakeClock

AUTHORITY = f"{AUTHORITY_HOST}/{TENANT}"
PERSON = "44444444-4444-4444-4444-444444444444"
OTHER = "55555555-5555-5555-5555-555555555555"
USER_READ = (f"{GRAPH}/User.Read",)
CLAIMS = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'


def assertion(token: str = "assertion-1", *, oid: str = PERSON, capable: bool = True) -> UserAssertion:
    principal = Principal(
        kind="user", app_id=CALLER_APP, object_id=oid, tenant_id=TENANT, roles=frozenset(),
        scopes=frozenset({"access_as_user"}),
    )  # fmt: skip
    return UserAssertion(principal=principal, token=token, client_capable=capable, expires_at=0.0)


class FakeExchange:
    """Counts exchanges; answers a token, an error, or waits on a gate (to hold callers in flight)."""

    authority = AUTHORITY

    def __init__(self, lifetime: int = 3600) -> None:
        self.calls: list[tuple[str, tuple[str, ...], str | None]] = []
        self.lifetime = lifetime
        self.failure: GraphFunctionsError | None = None
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(self, assertion: str, scopes: Sequence[str], claims: str | None = None) -> Exchanged:
        with self._lock:
            self.calls.append((assertion, tuple(scopes), claims))
            number = len(self.calls)
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.failure is not None:
            raise self.failure
        return Exchanged(token=f"graph-token-{number}", expires_in=self.lifetime)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def exchange() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
def obo(exchange: FakeExchange, clock: FakeClock) -> OnBehalfOf:
    return OnBehalfOf(exchange, clock=clock)


def test_a_repeated_assertion_costs_no_exchange(obo: OnBehalfOf, exchange: FakeExchange) -> None:
    first = obo.token(assertion(), USER_READ)
    assert [obo.token(assertion(), USER_READ) for _ in range(5)] == [first] * 5
    assert len(exchange.calls) == 1 and obo.token_requests == 1
    assert exchange.calls[0] == ("assertion-1", USER_READ, None)


def test_one_token_per_person_and_scope_set(obo: OnBehalfOf, exchange: FakeExchange) -> None:
    token = obo.token(assertion(), USER_READ)
    # The same person with a newer token of theirs: the cached Graph token still serves them.
    assert obo.token(assertion("assertion-2"), USER_READ) == token
    mail = obo.token(assertion(), (f"{GRAPH}/Mail.Read",))
    other = obo.token(assertion("assertion-3", oid=OTHER), USER_READ)
    assert len({token, mail, other}) == 3 and len(exchange.calls) == 3
    both = (f"{GRAPH}/Mail.Read", f"{GRAPH}/User.Read")
    assert obo.token(assertion(), both) == obo.token(assertion(), tuple(reversed(both)))  # a set: order-free
    assert len(exchange.calls) == 4 and obo.cached() == 4


def test_reused_until_shortly_before_expiry(
    obo: OnBehalfOf, exchange: FakeExchange, clock: FakeClock
) -> None:
    token = obo.token(assertion(), USER_READ)
    clock.advance(3600 - 61)
    assert obo.token(assertion(), USER_READ) == token
    clock.advance(2)  # inside the last 60 s: a Graph call could outlive it
    assert obo.token(assertion(), USER_READ) != token and len(exchange.calls) == 2


def test_short_lived_tokens_keep_a_tenth_of_their_life(clock: FakeClock) -> None:
    exchange = FakeExchange(lifetime=300)
    obo = OnBehalfOf(exchange, clock=clock)
    obo.token(assertion(), USER_READ)
    clock.advance(269)
    obo.token(assertion(), USER_READ)
    clock.advance(2)
    obo.token(assertion(), USER_READ)
    assert len(exchange.calls) == 2


def test_concurrent_first_calls_share_one_exchange(obo: OnBehalfOf, exchange: FakeExchange) -> None:
    exchange.gate = threading.Event()
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(obo.token(assertion(f"a-{i % 3}"), USER_READ)))
        for i in range(50)
    ]
    for thread in threads:
        thread.start()
    while not exchange.calls:  # the leader is in flight; the others queue on it
        threading.Event().wait(0.001)
    exchange.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 50 and set(results) == {"graph-token-1"} and len(exchange.calls) == 1


def test_an_outage_is_held_for_every_caller_then_recovers(
    obo: OnBehalfOf, exchange: FakeExchange, clock: FakeClock
) -> None:
    warm = obo.token(assertion(oid=OTHER), USER_READ)
    exchange.failure = CredentialUnavailable("Entra is down", retry_after=7)
    exchange.gate = threading.Event()
    errors: list[GraphFunctionsError] = []

    def call() -> None:
        try:
            obo.token(assertion(), USER_READ)
        except GraphFunctionsError as error:
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(exchange.calls) < 2:
        threading.Event().wait(0.001)
    exchange.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4 and all(e.status == 503 and e.retry_after for e in errors)
    assert len(exchange.calls) == 2  # the warm-up and ONE exchange for the four
    clock.advance(3)
    with pytest.raises(CredentialUnavailable) as held:
        obo.token(assertion("a-new-one"), USER_READ)
    assert held.value.retry_after == 4 and len(exchange.calls) == 2  # answered from memory
    assert obo.token(assertion(oid=OTHER), USER_READ) == warm  # cached tokens keep serving meanwhile
    clock.advance(4.5)
    exchange.failure = None
    assert obo.token(assertion(), USER_READ) == "graph-token-3"


def test_a_refusal_about_the_person_is_not_held(obo: OnBehalfOf, exchange: FakeExchange) -> None:
    exchange.failure = ExchangeRefusedError("MFA", kind="claims", claims=CLAIMS)
    with pytest.raises(ExchangeRefusedError):
        obo.token(assertion(), USER_READ)
    exchange.failure = None
    assert obo.token(assertion("stepped-up"), USER_READ) == "graph-token-2"  # the new token reaches Entra


def test_claims_bypass_and_replace_the_cached_token(obo: OnBehalfOf, exchange: FakeExchange) -> None:
    first = obo.token(assertion(), USER_READ)
    second = obo.token(assertion(), USER_READ, claims=CLAIMS)
    assert second != first and exchange.calls[1] == ("assertion-1", USER_READ, CLAIMS)
    assert obo.token(assertion(), USER_READ) == second and len(exchange.calls) == 2


def test_the_cache_is_bounded(exchange: FakeExchange, clock: FakeClock) -> None:
    obo = OnBehalfOf(exchange, clock=clock, max_entries=10)
    for n in range(25):
        obo.token(assertion(oid=f"00000000-0000-0000-0000-{n:012d}"), USER_READ)
        clock.advance(1)
    assert obo.cached() <= 10


def test_graph_token_source_maps_the_default_scope_and_answers_claims(
    obo: OnBehalfOf, exchange: FakeExchange
) -> None:
    tokens = OboTokens(obo, assertion(), graph_endpoint=GRAPH, permissions=("Mail.Read",), client_id=CLIENT)
    token = tokens.get_token(f"{GRAPH}/.default")
    assert exchange.calls[0][1] == (f"{GRAPH}/Mail.Read",)
    sharepoint = tokens.get_token("https://contoso.test/AllSites.Read")
    assert exchange.calls[1][1] == ("https://contoso.test/AllSites.Read",) and sharepoint != token
    tokens.require_claims(CLAIMS, f"{GRAPH}/.default")  # Graph's CAE challenge
    assert tokens.get_token(f"{GRAPH}/.default") != token and exchange.calls[2][2] == CLAIMS
    tokens.invalidate(f"{GRAPH}/.default", "some-older-token")  # not the cached one: kept
    assert tokens.get_token(f"{GRAPH}/.default") == "graph-token-3"
    exchange.failure = ExchangeRefusedError("MFA", kind="claims", claims=CLAIMS)
    tokens.invalidate(f"{GRAPH}/.default")
    with pytest.raises(InsufficientClaims):
        tokens.get_token(f"{GRAPH}/.default")


def _answer(kind: RefusalKind, *, capable: bool = True, claims: str | None = CLAIMS) -> GraphFunctionsError:
    refused = ExchangeRefusedError("x", kind=kind, claims=claims)
    return refusal_for(
        refused, assertion(capable=capable), authority=AUTHORITY, client_id=CLIENT, scopes=USER_READ
    )


def test_a_capable_client_gets_the_claims_challenge_as_microsoft_documents_it() -> None:
    answer = _answer("claims")
    assert (answer.status, answer.code) == (401, "insufficient_claims")
    header = answer.response_headers()["WWW-Authenticate"]
    encoded = base64.b64encode(CLAIMS.encode()).decode()
    assert header == (
        f'Bearer realm="", authorization_uri="{AUTHORITY}/oauth2/v2.0/authorize", '
        f'error="insufficient_claims", claims="{encoded}"'
    )


@pytest.mark.parametrize(
    ("kind", "capable", "claims", "status", "code"),
    [
        ("claims", False, CLAIMS, 403, "step_up_required"),  # cannot follow a challenge
        ("claims", True, None, 403, "step_up_required"),  # interaction needed, but no claims to hand on
        ("blocked", True, None, 403, "conditional_access_blocked"),
        ("assertion", True, None, 401, "token_revoked"),
        ("revoked", True, None, 401, "token_revoked"),
    ],
)
def test_the_other_answers(
    kind: RefusalKind, capable: bool, claims: str | None, status: int, code: str
) -> None:
    answer = _answer(kind, capable=capable, claims=claims)
    assert (answer.status, answer.code) == (status, code)
    assert "claims=" not in answer.response_headers()["WWW-Authenticate"]


def test_missing_consent_names_the_consent_uri_and_scopes() -> None:
    answer = _answer("consent", claims=None)
    assert (answer.status, answer.code) == (403, "consent_required")
    header = answer.response_headers()["WWW-Authenticate"]
    assert f'consentUri="{AUTHORITY}/oauth2/v2.0/authorize?client_id={CLIENT}' in header
    assert f'scopes="{GRAPH}/User.Read"' in header and 'proposedAction="consent"' in header
