"""The routes serving a person, called with the person's own bearer token, end to end in-process: real
blueprints and edge, a fake OBO exchange and a fake Graph at the HTTP seam."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.core.errors import CredentialUnavailable
from shared.identity.obo_exchange import ExchangeRefusedError
from shared.identity.on_behalf_of import OnBehalfOf

from . import test_endpoints
from .conftest import GRAPH, TokenFactory
from .fakes import respond
from .test_endpoints import App, HttpFunction, assert_error, body
from .test_on_behalf_of import FakeExchange
from .test_user_tokens import PERSON, user_token

CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
ME = f"{GRAPH}/v1.0/me"


#: The module-scoped fixture of test_endpoints (the app's functions, indexed once per module).
functions = test_endpoints.functions


@pytest.fixture
def app(functions: dict[str, HttpFunction], rsa_key: rsa.RSAPrivateKey) -> App:
    return App(functions, rsa_key)


@pytest.fixture
def exchange(app: App) -> FakeExchange:
    fake = FakeExchange()
    app.runtime.tenant()._on_behalf_of = OnBehalfOf(fake)
    return fake


def _cae_challenge() -> Any:
    header = (
        f'Bearer realm="", error="insufficient_claims", claims="{base64.b64encode(CLAIMS.encode()).decode()}"'
    )
    return respond(
        401, {"error": {"code": "InvalidAuthenticationToken"}}, headers={"WWW-Authenticate": header}
    )


def _profile() -> Any:
    return respond(200, {"id": PERSON, "displayName": "Person", "userPrincipalName": "person@contoso.test"})


def test_a_warm_call_costs_no_exchange_and_one_graph_call(
    app: App, exchange: FakeExchange, make_token: TokenFactory
) -> None:
    token = user_token(make_token)
    app.transport.queue(_profile(), _profile())
    for _ in range(2):
        response = app.call("me", token=token, url="http://localhost/api/me")
        assert response.status_code == 200 and body(response)["id"] == PERSON
    assert len(exchange.calls) == 1 and exchange.calls[0][0] == token
    assert exchange.calls[0][1] == (f"{GRAPH}/User.Read",)
    graph = app.graph_requests()
    assert [r.url for r in graph] == [ME, ME]
    assert {r.headers["Authorization"] for r in graph} == {"Bearer graph-token-1"}  # never the person's token


def test_own_messages_with_delegated_mail_read(
    app: App, exchange: FakeExchange, make_token: TokenFactory
) -> None:
    app.transport.queue(respond(200, {"value": []}))
    response = app.call(
        "me_messages",
        token=user_token(make_token),
        params={"top": "3"},
        url="http://localhost/api/me/messages",
    )
    assert response.status_code == 200 and body(response) == {"value": [], "nextCursor": None}
    assert exchange.calls[0][1] == (f"{GRAPH}/Mail.Read",)
    (graph,) = app.graph_requests()
    assert graph.url == f"{GRAPH}/v1.0/users/{PERSON}/messages" and graph.params is not None
    assert graph.params["$top"] == "3"


def test_delegated_users_listing(app: App, exchange: FakeExchange, make_token: TokenFactory) -> None:
    app.transport.queue(respond(200, {"value": []}))
    response = app.call("users_list", token=user_token(make_token))
    assert response.status_code == 200
    assert (
        exchange.calls[0][1] == (f"{GRAPH}/User.ReadBasic.All",) and app.tokens.scopes == []
    )  # not app-only


def test_graphs_cae_challenge_is_answered_by_a_new_exchange(
    app: App, exchange: FakeExchange, make_token: TokenFactory
) -> None:
    app.transport.queue(_cae_challenge(), _profile())
    response = app.call("me", token=user_token(make_token), url="http://localhost/api/me")
    assert response.status_code == 200
    assert [claims for _, _, claims in exchange.calls] == [None, CLAIMS]


def test_entra_needing_the_person_is_a_claims_challenge_for_a_capable_client(
    app: App, exchange: FakeExchange, make_token: TokenFactory
) -> None:
    exchange.failure = ExchangeRefusedError("MFA", kind="claims", claims=CLAIMS)
    response = app.call("me", token=user_token(make_token), url="http://localhost/api/me")
    assert_error(response, 401, "insufficient_claims")
    header = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_claims"' in header and base64.b64encode(CLAIMS.encode()).decode() in header
    not_capable = user_token(make_token, drop=("roles", "xms_cc"))
    assert_error(app.call("me", token=not_capable, url="http://localhost/api/me"), 403, "step_up_required")
    assert app.graph_requests() == []


def test_a_second_graph_challenge_goes_back_to_the_client(
    app: App, exchange: FakeExchange, make_token: TokenFactory
) -> None:
    app.transport.queue(_cae_challenge(), _cae_challenge())
    response = app.call("me", token=user_token(make_token), url="http://localhost/api/me")
    assert_error(response, 401, "insufficient_claims")
    assert len(exchange.calls) == 2


def test_an_entra_outage_is_a_clean_503(app: App, exchange: FakeExchange, make_token: TokenFactory) -> None:
    exchange.failure = CredentialUnavailable("down", retry_after=5)
    response = app.call("me", token=user_token(make_token), url="http://localhost/api/me")
    assert_error(response, 503, "credential_unavailable")
    assert response.headers["Retry-After"] == "5"


def test_refusals_before_any_exchange(app: App, exchange: FakeExchange, make_token: TokenFactory) -> None:
    assert_error(
        app.call("me", token=make_token(), url="http://localhost/api/me"), 403, "caller_kind_not_allowed"
    )
    graph_token = user_token(make_token, aud="https://graph.microsoft.com")
    assert_error(app.call("me", token=graph_token, url="http://localhost/api/me"), 401, "unauthenticated")
    wrong_scope = user_token(make_token, scp="User.Read")
    assert_error(app.call("me", token=wrong_scope, url="http://localhost/api/me"), 403, "insufficient_scope")
    # A service's route: a person's token keeps being refused with today's code.
    response = app.call("users_get", token=user_token(make_token), route={"id": PERSON})
    assert_error(response, 403, "caller_kind_not_allowed")
    assert exchange.calls == [] and app.graph_requests() == []
