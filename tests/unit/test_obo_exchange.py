"""One on-behalf-of exchange through the real MSAL Python, with a fake at the HTTP seam (MSAL's
``http_client``): the grant as Microsoft documents it, and every answer of Entra mapped (B.3 of the
multi-tenant-and-obo reference)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from shared.core.errors import CredentialUnavailable
from shared.identity.credentials import ClientCredential
from shared.identity.obo_exchange import ExchangeRefusedError, MsalExchange, classify

from .conftest import AUTHORITY_HOST, CLIENT, GRAPH, TENANT
from .fakes import FakeResponse, respond

AUTHORITY = f"{AUTHORITY_HOST}/{TENANT}"
TOKEN_URL = f"{AUTHORITY}/oauth2/v2.0/token"
CLAIMS = '{"access_token":{"capolids":{"essential":true,"values":["p1"]}}}'


class EntraSeam:
    """MSAL's ``http_client``: serves discovery, records token POSTs and answers them from a queue."""

    def __init__(self) -> None:
        self.posts: list[dict[str, list[str]]] = []
        self.answers: list[FakeResponse | Exception] = []

    def get(self, url: str, **_: Any) -> FakeResponse:
        assert url == f"{AUTHORITY}/v2.0/.well-known/openid-configuration", url
        return respond(
            200,
            {
                "issuer": f"{AUTHORITY}/v2.0",
                "authorization_endpoint": f"{AUTHORITY}/oauth2/v2.0/authorize",
                "token_endpoint": TOKEN_URL,
            },
        )

    def post(self, url: str, data: Any = None, **_: Any) -> FakeResponse:
        assert url == TOKEN_URL
        self.posts.append(parse_qs(data) if isinstance(data, str) else {k: [v] for k, v in data.items()})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        pass


def secret() -> ClientCredential:
    return ClientCredential(kind="secret", msal_credential="app-secret", fingerprint="f")


@pytest.fixture
def seam() -> EntraSeam:
    return EntraSeam()


@pytest.fixture
def exchange(seam: EntraSeam) -> MsalExchange:
    return MsalExchange(
        client_id=CLIENT, authority=AUTHORITY, microsoft_cloud=False, credential=secret, http_client=seam
    )


def error(status: int, error: str, codes: list[int], **extra: Any) -> FakeResponse:
    body = {
        "error": error,
        "error_description": f"AADSTS{codes[0]}: text.\r\nTrace ID: x",
        "error_codes": codes,
    }
    return respond(status, {**body, **extra})


def test_the_grant_is_the_documented_one(seam: EntraSeam, exchange: MsalExchange) -> None:
    seam.answers.append(
        respond(200, {"access_token": "graph-at", "expires_in": 3599, "token_type": "Bearer"})
    )
    result = exchange("the-persons-token", [f"{GRAPH}/User.Read"])
    assert (result.token, result.expires_in) == ("graph-at", 3599) and "graph-at" not in repr(result)
    (form,) = seam.posts
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert form["requested_token_use"] == ["on_behalf_of"] and form["assertion"] == ["the-persons-token"]
    assert form["client_id"] == [CLIENT] and form["client_secret"] == ["app-secret"]
    scopes = form["scope"][0].split()
    assert f"{GRAPH}/User.Read" in scopes and "offline_access" not in scopes  # no refresh token kept
    assert json.loads(form["claims"][0]) == {"access_token": {"xms_cc": {"values": ["CP1"]}}}


def test_a_claims_challenge_is_merged_with_the_capability(seam: EntraSeam, exchange: MsalExchange) -> None:
    seam.answers.append(
        respond(200, {"access_token": "graph-at", "expires_in": 3599, "token_type": "Bearer"})
    )
    exchange("the-persons-token", [f"{GRAPH}/User.Read"], claims=CLAIMS)
    sent = json.loads(seam.posts[0]["claims"][0])["access_token"]
    assert sent["xms_cc"] == {"values": ["CP1"]} and sent["capolids"]["values"] == ["p1"]


@pytest.mark.parametrize(
    ("answer", "kind", "claims"),
    [
        (error(400, "interaction_required", [50076], claims=CLAIMS), "claims", CLAIMS),
        (error(400, "invalid_grant", [50079], suberror="basic_action", claims=CLAIMS), "claims", CLAIMS),
        (
            error(400, "interaction_required", [53003], suberror="message_only", claims=CLAIMS),
            "blocked",
            None,
        ),
        (error(400, "invalid_grant", [53003]), "blocked", None),
        (error(400, "interaction_required", [50173], claims=CLAIMS), "claims", CLAIMS),  # CAE revocation
        (error(400, "invalid_grant", [65001], suberror="consent_required"), "consent", None),
        (error(400, "invalid_grant", [500131]), "assertion", None),
        (error(400, "invalid_grant", [500133]), "assertion", None),
        (error(400, "invalid_grant", [50173]), "revoked", None),
    ],
)
def test_refusals_about_the_person(
    seam: EntraSeam, exchange: MsalExchange, answer: FakeResponse, kind: str, claims: str | None
) -> None:
    seam.answers.append(answer)
    with pytest.raises(ExchangeRefusedError) as caught:
        exchange("the-persons-token", [f"{GRAPH}/User.Read"])
    assert (caught.value.kind, caught.value.claims) == (kind, claims)


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (respond(503, {"error": "temporarily_unavailable"}, {"Retry-After": "9"}), 9),
        (respond(500, text="<html>oops</html>"), 5),
        (error(429, "temporarily_unavailable", [50196]), 5),
        (respond(200, text="not json"), 5),
        (requests.ConnectionError("dropped"), 5),
        (requests.Timeout("slow"), 5),
        (error(401, "invalid_client", [7000215]), 5),  # the app's credential: not the person's fault
        (error(400, "unauthorized_client", [700016]), 5),
    ],
)
def test_outages_and_the_apps_own_problems_are_503(
    seam: EntraSeam, exchange: MsalExchange, answer: Any, retry_after: int
) -> None:
    seam.answers.append(answer)
    with pytest.raises(CredentialUnavailable) as caught:
        exchange("the-persons-token", [f"{GRAPH}/User.Read"])
    assert caught.value.status == 503 and caught.value.retry_after == retry_after


def test_a_throttled_answer_with_retry_after(seam: EntraSeam, exchange: MsalExchange) -> None:
    seam.answers.append(respond(429, {"error": "too_many"}, {"Retry-After": "12"}))
    with pytest.raises(CredentialUnavailable) as caught:
        exchange("the-persons-token", [f"{GRAPH}/User.Read"])
    assert caught.value.retry_after == 12


def test_msal_answers_a_repeated_refused_assertion_from_its_memory(
    seam: EntraSeam, exchange: MsalExchange
) -> None:
    seam.answers.append(error(400, "invalid_grant", [65001], suberror="consent_required"))
    for _ in range(3):
        with pytest.raises(ExchangeRefusedError):
            exchange("the-persons-token", [f"{GRAPH}/Mail.Read"])
    assert len(seam.posts) == 1  # one POST: MSAL keeps an HTTP 400 for 60 s, keyed by the request


def test_classify_never_keys_on_error_alone() -> None:
    assert isinstance(classify({"error": "server_error"}), CredentialUnavailable)
    refused = classify({"error": "invalid_grant", "suberror": "message_only"})
    assert isinstance(refused, ExchangeRefusedError) and refused.kind == "claims"
