"""A person's token for this API: every validation rule before an exchange (shared.identity.user_tokens) and
the endpoint's scope rule (shared.identity.access)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.core.errors import Forbidden, Unauthenticated
from shared.identity.access import Access, refusal
from shared.identity.bearer import CallerAuthenticator
from shared.identity.principal import APPLICATIONS, PEOPLE, USERS
from shared.identity.signing_keys import SigningKeys
from shared.identity.user_tokens import ACCESS_AS_USER, ClaimsVerifier, admit

from .conftest import AUTHORITY_HOST, CALLER_APP, CLIENT, TENANT, TokenFactory, jwk_of, make_settings
from .fakes import FakeTransport, respond

METADATA_URL = f"{AUTHORITY_HOST}/{TENANT}/v2.0/.well-known/openid-configuration"
JWKS_URL = f"{AUTHORITY_HOST}/{TENANT}/discovery/v2.0/keys"
PERSON = "44444444-4444-4444-4444-444444444444"
PERSON_ACCESS = Access(kinds=PEOPLE | USERS, user_scope=ACCESS_AS_USER)


@pytest.fixture
def verifier(rsa_key: rsa.RSAPrivateKey) -> CallerAuthenticator:
    transport = FakeTransport()
    transport.route(
        METADATA_URL, respond(200, {"issuer": f"{AUTHORITY_HOST}/{TENANT}/v2.0", "jwks_uri": JWKS_URL})
    )
    transport.route(JWKS_URL, respond(200, {"keys": [jwk_of(rsa_key, "key-1")]}))
    keys = SigningKeys(metadata_url=METADATA_URL, transport=transport)
    return CallerAuthenticator(tenant_id=TENANT, audiences=make_settings().api_audiences, keys=keys)


def user_token(make_token: TokenFactory, **claims: Any) -> str:
    """A person's v2 token for this API, as Entra issues it to a single-page client."""
    base: dict[str, Any] = {
        "scp": "access_as_user",
        "oid": PERSON,
        "sub": "pairwise-subject-of-the-person",
        "preferred_username": "person@contoso.test",
        "xms_cc": ["cp1"],
        "drop": ("roles",),
    }
    base.update(claims)
    return make_token(**base)


def test_the_authenticator_hands_out_verified_claims(verifier: CallerAuthenticator) -> None:
    assert isinstance(verifier, ClaimsVerifier)


def test_a_persons_token_is_admitted_with_what_the_exchange_needs(
    verifier: CallerAuthenticator, make_token: TokenFactory
) -> None:
    token = user_token(make_token, oid=PERSON.upper())
    principal, assertion = admit(verifier, token)
    assert assertion is not None and assertion.token == token and assertion.client_capable
    assert principal.kind == "user" and principal.object_id == PERSON and principal.tenant_id == TENANT
    assert principal.app_id == CALLER_APP and principal.scopes == frozenset({ACCESS_AS_USER})
    assert principal.user_principal_name == "person@contoso.test"
    assert assertion.expires_at > 0 and len(assertion.fingerprint) == 64
    assert token not in repr(assertion)  # the token never reaches a log line through a repr
    assert refusal(principal, PERSON_ACCESS) is None


@pytest.mark.parametrize(
    ("xms_cc", "capable"),
    [(["cp1"], True), (["CP1", "other"], True), ("cp1", True), (None, False), (["cp2"], False), (7, False)],
)
def test_the_claims_capability(
    verifier: CallerAuthenticator, make_token: TokenFactory, xms_cc: Any, capable: bool
) -> None:
    token = (
        user_token(make_token, xms_cc=xms_cc)
        if xms_cc is not None
        else user_token(make_token, drop=("roles", "xms_cc"))
    )
    _, assertion = admit(verifier, token)
    assert assertion is not None and assertion.client_capable is capable


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": PERSON}, "not positively a user's token"),  # oid == sub: a service principal's shape
        ({"drop": ("roles", "oid")}, "names no user object"),
        ({"oid": "not-a-guid"}, "names no user object"),
        ({"drop": ("roles", "sub")}, "not positively a user's token"),
        ({"idtyp": "app"}, "app-only token (idtyp) but carries scopes"),
        ({"idtyp": "device"}, "unknown token type"),
        ({"aud": "https://graph.microsoft.com"}, "not issued for this API"),  # a Graph token: never exchanged
        ({"aud": CALLER_APP}, "not issued for this API"),  # a token for the client app itself
        ({"tid": "99999999-9999-9999-9999-999999999999"}, "another tenant"),
    ],
)
def test_tokens_that_are_not_a_persons_token_for_this_api_are_401(
    verifier: CallerAuthenticator, make_token: TokenFactory, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unauthenticated) as caught:
        admit(verifier, user_token(make_token, **claims))
    assert caught.value.status == 401 and reason in caught.value.message


def test_an_app_only_token_is_not_a_person_and_is_refused_by_the_route(
    verifier: CallerAuthenticator, make_token: TokenFactory
) -> None:
    principal, assertion = admit(verifier, make_token())
    assert principal.kind == "application" and assertion is None
    refused = refusal(principal, PERSON_ACCESS)
    assert refused is not None and refused.code == "caller_kind_not_allowed"


def test_a_token_without_access_as_user_is_insufficient_scope(
    verifier: CallerAuthenticator, make_token: TokenFactory
) -> None:
    principal, assertion = admit(verifier, user_token(make_token, scp="User.Read openid"))
    assert assertion is not None  # valid, but not for this API's delegated scope
    refused = refusal(principal, PERSON_ACCESS)
    assert refused is not None and (refused.status, refused.code) == (403, "insufficient_scope")
    assert 'error="insufficient_scope"' in refused.response_headers()["WWW-Authenticate"]


def test_routes_serving_services_keep_refusing_a_persons_token(
    verifier: CallerAuthenticator, make_token: TokenFactory
) -> None:
    principal, _ = admit(verifier, user_token(make_token, roles=["Users.Read.All"]))
    refused = refusal(principal, Access(kinds=APPLICATIONS, app_role="Users.Read.All"))
    assert refused is not None and refused.code == "caller_kind_not_allowed"


def test_the_client_allow_list(verifier: CallerAuthenticator, make_token: TokenFactory) -> None:
    token = user_token(make_token)
    assert admit(verifier, token, allowed_client_apps=[CALLER_APP.upper(), CLIENT])[1] is not None
    with pytest.raises(Forbidden) as caught:
        admit(verifier, token, allowed_client_apps=[CLIENT])
    assert (caught.value.status, caught.value.code) == (403, "client_app_not_allowed")
    v1 = user_token(
        make_token,
        ver="1.0",
        iss=f"https://sts.windows.net/{TENANT}/",
        appid=CALLER_APP,
        drop=("roles", "azp"),
    )
    assert admit(verifier, v1, allowed_client_apps=[CALLER_APP])[1] is not None  # appid in v1 tokens


def test_access_needs_a_role_or_a_user_scope_for_bearer_kinds() -> None:
    with pytest.raises(ValueError, match="app role"):
        Access(kinds=USERS)
    with pytest.raises(ValueError, match="app role"):
        Access(kinds=APPLICATIONS | USERS, user_scope=ACCESS_AS_USER)
    assert Access(kinds=USERS, user_scope=ACCESS_AS_USER).accepts_bearer
