from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.core.errors import CredentialUnavailable, Forbidden, Unauthenticated
from shared.identity.bearer import CallerAuthenticator
from shared.identity.principal import APPLICATIONS, USERS, CallerKind
from shared.identity.signing_keys import SigningKeys

from .conftest import AUTHORITY_HOST, CALLER_APP, CLIENT, TENANT, TokenFactory, jwk_of, make_settings
from .fakes import FakeClock, FakeResponse, FakeTransport, SentRequest, connection_error, respond

METADATA_URL = f"{AUTHORITY_HOST}/{TENANT}/v2.0/.well-known/openid-configuration"
JWKS_URL = f"{AUTHORITY_HOST}/{TENANT}/discovery/v2.0/keys"
ROLE = "Users.Read.All"


class Tenant:
    """Serves OpenID metadata and a mutable JWKS through a FakeTransport."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.jwks: list[dict[str, Any]] = [jwk_of(key, "key-1")]
        self.jwks_fetches = 0
        self.down = False
        self.transport = FakeTransport()
        self.transport.route(METADATA_URL, self._metadata)
        self.transport.route(JWKS_URL, self._keys)
        self.clock = FakeClock()
        self.keys = SigningKeys(
            metadata_url=METADATA_URL, transport=self.transport, clock=self.clock, spawn=lambda f: f()
        )
        self.authenticator = CallerAuthenticator(
            tenant_id=TENANT, audiences=make_settings().api_audiences, keys=self.keys
        )

    def _metadata(self, request: SentRequest) -> FakeResponse:
        if self.down:
            raise connection_error()
        return respond(200, {"issuer": f"{AUTHORITY_HOST}/{TENANT}/v2.0", "jwks_uri": JWKS_URL})

    def _keys(self, request: SentRequest) -> FakeResponse:
        self.jwks_fetches += 1
        return respond(200, {"keys": self.jwks})

    def authenticate(
        self, token: str | None, role: str = ROLE, kinds: frozenset[CallerKind] = APPLICATIONS
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.authenticator.authenticate(headers, required_role=role, kinds=kinds)


@pytest.fixture
def tenant(rsa_key: rsa.RSAPrivateKey) -> Tenant:
    return Tenant(rsa_key)


def test_valid_v2_app_token(tenant: Tenant, make_token: TokenFactory) -> None:
    caller = tenant.authenticate(make_token(oid="sp-object-id"))
    assert caller.kind == "application"
    assert caller.app_id == CALLER_APP and caller.object_id == "sp-object-id" and caller.tenant_id == TENANT
    assert caller.roles == frozenset({ROLE}) and caller.scopes == frozenset()


def test_v1_token_with_api_uri_audience(tenant: Tenant, make_token: TokenFactory) -> None:
    token = make_token(
        iss=f"https://sts.windows.net/{TENANT}/",
        aud=f"api://{CLIENT}",
        appid=CALLER_APP,
        drop=("azp",),
        ver="1.0",
    )
    assert tenant.authenticate(token).app_id == CALLER_APP


def test_header_name_and_scheme_are_case_insensitive(tenant: Tenant, make_token: TokenFactory) -> None:
    caller = tenant.authenticator.authenticate(
        {"AUTHORIZATION": f"bearer {make_token()}"}, required_role=ROLE, kinds=APPLICATIONS
    )
    assert caller.app_id == CALLER_APP


def test_delegated_token_is_a_user_caller(tenant: Tenant, make_token: TokenFactory) -> None:
    caller = tenant.authenticate(make_token(scp="User.Read profile"), kinds=USERS)
    assert caller.kind == "user" and caller.scopes == frozenset({"User.Read", "profile"})


def test_delegated_token_with_the_role_does_not_pass_an_application_only_endpoint(
    tenant: Tenant, make_token: TokenFactory
) -> None:
    token = make_token(scp="User.Read", roles=[ROLE])  # a signed-in user who holds the app role
    with pytest.raises(Forbidden) as caught:
        tenant.authenticate(token, kinds=APPLICATIONS)
    assert (caught.value.status, caught.value.code) == (403, "caller_kind_not_allowed")
    assert "applications" in caught.value.message
    assert tenant.authenticate(token, kinds=APPLICATIONS | USERS).kind == "user"  # both kinds: passes


def test_application_token_does_not_pass_a_user_only_endpoint(
    tenant: Tenant, make_token: TokenFactory
) -> None:
    with pytest.raises(Forbidden) as caught:
        tenant.authenticate(make_token(), kinds=USERS)
    assert caught.value.code == "caller_kind_not_allowed"


def expect_401(tenant: Tenant, token: str | None, fragment: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        tenant.authenticate(token)
    error = caught.value
    assert fragment in error.message, error.message
    assert (error.status, error.code) == (401, "unauthenticated")
    return error


def test_missing_token_gets_a_bare_challenge(tenant: Tenant) -> None:
    error = expect_401(tenant, None, "bearer token is required")
    assert error.response_headers() == {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        ("Basic dXNlcjpwdw==", "must be 'Bearer <token>'"),
        ("Bearer", "must be 'Bearer <token>'"),
        ("Bearer not-a-jwt", "not a well-formed JWT"),
        ("Bearer a.b.c d", "not a well-formed JWT"),
        ("Bearer " + "a" * 20000 + ".b.c", "not a well-formed JWT"),
        ("Bearer e30.e30.e30", "must be signed with RS256"),
    ],
)
def test_malformed_authorization(tenant: Tenant, authorization: str, fragment: str) -> None:
    with pytest.raises(Unauthenticated, match=fragment) as caught:
        tenant.authenticator.authenticate(
            {"authorization": authorization}, required_role=ROLE, kinds=APPLICATIONS
        )
    assert caught.value.response_headers()["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_alg_none_is_rejected(tenant: Tenant, make_token: TokenFactory) -> None:
    unsigned = make_token(key="", algorithm="none")
    assert unsigned.endswith(".")
    expect_401(tenant, unsigned, "not a well-formed JWT")
    expect_401(tenant, unsigned + "c2lnbmF0dXJl", "must be signed with RS256")  # with a dummy signature


def test_hs256_signed_with_the_public_key_is_rejected(
    tenant: Tenant, rsa_key: rsa.RSAPrivateKey, make_token: TokenFactory
) -> None:
    import base64
    import hashlib
    import hmac
    import json

    # Forge by hand: PyJWT itself refuses to HMAC with a PEM key, an attacker would not.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    genuine = make_token()
    payload = genuine.split(".")[1]
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    expect_401(tenant, f"{header}.{payload}.{signature}", "must be signed with RS256")


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"aud": "api://someone-else"}, "not issued for this API"),
        ({"aud": "https://graph.microsoft.com"}, "not issued for this API"),
        ({"iss": "https://evil.example/tenant/v2.0"}, "not issued by this tenant"),
        ({"iss": f"{AUTHORITY_HOST}/99999999-9999-9999-9999-999999999999/v2.0"}, "not issued by this tenant"),
        ({"tid": "99999999-9999-9999-9999-999999999999"}, "another tenant"),
        # Times relative to when the test runs ("offset" below), not to collection: a long suite would
        # otherwise reach a future nbf/iat before this test runs.
        ({"exp": ("offset", -120)}, "has expired"),
        ({"nbf": ("offset", 600)}, "not valid yet"),
        ({"iat": ("offset", 600)}, "not valid yet"),
        ({"drop": ("exp",)}, "lacks the 'exp' claim"),
        ({"drop": ("aud",)}, "lacks the 'aud' claim"),
        ({"drop": ("azp",)}, "does not identify the calling application"),
        ({"roles": "Users.Read.All"}, "malformed roles"),
    ],
)
def test_invalid_claims(
    tenant: Tenant, make_token: TokenFactory, claims: dict[str, Any], fragment: str
) -> None:
    now = int(time.time())
    resolved = {
        name: now + value[1] if isinstance(value, tuple) and value[:1] == ("offset",) else value
        for name, value in claims.items()
    }
    expect_401(tenant, make_token(**resolved), fragment)


def test_small_clock_skew_is_tolerated(tenant: Tenant, make_token: TokenFactory) -> None:
    now = int(time.time())
    assert tenant.authenticate(make_token(exp=now - 30, nbf=now + 30, iat=now + 30))


def test_bad_signature(tenant: Tenant, make_token: TokenFactory, other_rsa_key: rsa.RSAPrivateKey) -> None:
    forged = make_token(
        key=other_rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    expect_401(tenant, forged, "signature is invalid")
    header, payload, signature = make_token().split(".")
    tampered = make_token(roles=["Directory.ReadWrite.All"]).split(".")[1]
    assert tampered != payload
    expect_401(tenant, f"{header}.{tampered}.{signature}", "signature is invalid")


def test_missing_kid(tenant: Tenant, rsa_key: rsa.RSAPrivateKey) -> None:
    import jwt

    from .conftest import pem_of

    token = jwt.encode({"aud": CLIENT}, pem_of(rsa_key), algorithm="RS256")
    expect_401(tenant, token, "no key id")


def test_unknown_kid_refetches_once_then_is_rate_limited(
    tenant: Tenant, make_token: TokenFactory, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    from .conftest import pem_of

    tenant.authenticate(make_token())
    assert tenant.jwks_fetches == 1
    # Keys roll over: the tenant starts publishing key-2. A token signed with it triggers one refetch.
    tenant.jwks.append(jwk_of(other_rsa_key, "key-2"))
    tenant.clock.advance(MIN_REFRESH + 1)
    assert tenant.authenticate(make_token(key=pem_of(other_rsa_key), kid="key-2"))
    assert tenant.jwks_fetches == 2
    # Attackers inventing kids cannot make the app hammer the tenant.
    for kid in ("evil-1", "evil-2", "evil-3"):
        expect_401(tenant, make_token(kid=kid), "key this tenant does not publish")
    assert tenant.jwks_fetches == 2
    tenant.clock.advance(MIN_REFRESH + 1)
    expect_401(tenant, make_token(kid="evil-4"), "key this tenant does not publish")
    assert tenant.jwks_fetches == 3


def test_unknown_kid_right_after_start_refetches_once(
    tenant: Tenant, make_token: TokenFactory, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    from .conftest import pem_of

    tenant.authenticate(make_token())
    tenant.jwks.append(jwk_of(other_rsa_key, "key-2"))
    # The initial fetch does not count against the refetch budget: a rollover just after start is honoured.
    assert tenant.authenticate(make_token(key=pem_of(other_rsa_key), kid="key-2"))
    assert tenant.jwks_fetches == 2
    # But that was the one refetch of the interval: invented kids do not cause another.
    expect_401(tenant, make_token(kid="evil-1"), "does not publish")
    assert tenant.jwks_fetches == 2


def test_keys_are_refreshed_when_old(tenant: Tenant, make_token: TokenFactory) -> None:
    tenant.authenticate(make_token())
    tenant.clock.advance(13 * 3600)
    tenant.authenticate(make_token())
    assert tenant.jwks_fetches == 2


def test_removed_key_stops_being_trusted_after_refresh(
    tenant: Tenant, make_token: TokenFactory, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    tenant.authenticate(make_token())
    tenant.jwks[:] = [jwk_of(other_rsa_key, "key-2")]
    tenant.clock.advance(13 * 3600)
    assert tenant.authenticate(make_token())  # served from the cached keys while they are refreshed
    assert tenant.jwks_fetches == 2
    expect_401(tenant, make_token(), "does not publish")


def test_missing_role_is_403(tenant: Tenant, make_token: TokenFactory) -> None:
    with pytest.raises(Forbidden) as caught:
        tenant.authenticate(make_token(roles=["Mail.Read"]))
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    assert "Users.Read.All" in caught.value.message
    assert caught.value.response_headers()["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    with pytest.raises(Forbidden):
        tenant.authenticate(make_token(drop=("roles",)))


def test_signing_keys_unreachable_is_503(tenant: Tenant, make_token: TokenFactory) -> None:
    tenant.down = True
    with pytest.raises(CredentialUnavailable):
        tenant.authenticate(make_token())


def test_cached_keys_survive_a_failed_refresh(tenant: Tenant, make_token: TokenFactory) -> None:
    tenant.authenticate(make_token())
    tenant.down = True
    tenant.clock.advance(13 * 3600)
    assert tenant.authenticate(make_token())  # stale keys beat an outage


def test_metadata_problems(rsa_key: rsa.RSAPrivateKey, make_token: TokenFactory) -> None:
    for metadata in ({"issuer": "x"}, {"issuer": "x", "jwks_uri": "http://insecure/keys"}):
        transport = FakeTransport()
        transport.route(METADATA_URL, respond(200, metadata))
        keys = SigningKeys(metadata_url=METADATA_URL, transport=transport)
        with pytest.raises(CredentialUnavailable):
            CallerAuthenticator(
                tenant_id=TENANT, audiences=make_settings().api_audiences, keys=keys
            ).authenticate(
                {"authorization": f"Bearer {make_token()}"}, required_role=ROLE, kinds=APPLICATIONS
            )
    transport = FakeTransport()
    transport.route(METADATA_URL, respond(200, {"issuer": "x", "jwks_uri": JWKS_URL}))
    transport.route(
        JWKS_URL, respond(200, {"keys": [{"kty": "EC", "kid": "k"}, {"kty": "RSA", "kid": "bad"}]})
    )
    with pytest.raises(CredentialUnavailable, match="no usable"):
        SigningKeys(metadata_url=METADATA_URL, transport=transport).key("k")
    transport = FakeTransport()
    transport.route(METADATA_URL, respond(500, {"error": "boom"}))
    with pytest.raises(CredentialUnavailable, match="HTTP 500"):
        SigningKeys(metadata_url=METADATA_URL, transport=transport).key("k")


MIN_REFRESH = 300


def test_outage_does_not_make_every_request_refetch(tenant: Tenant, make_token: TokenFactory) -> None:
    tenant.authenticate(make_token())
    tenant.down = True
    tenant.clock.advance(13 * 3600)
    for _ in range(5):
        assert tenant.authenticate(make_token())
    assert tenant.keys.fetches == 2  # one failed refresh, then cached keys until the interval passes


def test_first_fetch_failure_is_retried_after_a_short_pause(tenant: Tenant, make_token: TokenFactory) -> None:
    tenant.down = True
    for _ in range(3):
        with pytest.raises(CredentialUnavailable):
            tenant.authenticate(make_token())
    assert tenant.keys.fetches == 1
    tenant.down = False
    tenant.clock.advance(6)
    assert tenant.authenticate(make_token())
    assert tenant.keys.fetches == 2


def test_stale_keys_are_served_while_one_thread_refreshes(
    rsa_key: rsa.RSAPrivateKey, make_token: TokenFactory
) -> None:
    """The refresh of stale keys runs aside: requests with a known kid never wait for the tenant."""
    import threading

    release = threading.Event()
    fetching = threading.Event()
    tenant = Tenant(rsa_key)
    tenant.authenticate(make_token())
    original = tenant._keys

    def slow_keys(request: SentRequest) -> FakeResponse:
        fetching.set()
        assert release.wait(10)
        return original(request)

    tenant.transport._routes = [(METADATA_URL, tenant._metadata), (JWKS_URL, slow_keys)]
    tenant.keys._spawn = lambda target: threading.Thread(target=target, daemon=True).start()
    tenant.clock.advance(13 * 3600)
    assert tenant.authenticate(make_token())  # starts the refresh, answered from the cached keys
    assert fetching.wait(10)  # the refresh is now blocked inside the JWKS fetch
    outcomes: list[Any] = []
    worker = threading.Thread(target=lambda: outcomes.append(tenant.authenticate(make_token())))
    worker.start()
    worker.join(5)  # bounded: with the old lock-held refetch this request would wait for the fetch
    assert outcomes and outcomes[0].app_id == CALLER_APP
    assert tenant.keys.fetches == 2  # one refresh, however many requests found the keys stale
    release.set()


def test_jwks_and_metadata_size_is_capped(rsa_key: rsa.RSAPrivateKey) -> None:
    from shared.identity.signing_keys import MAX_DOCUMENT_BYTES

    huge = {"keys": [jwk_of(rsa_key, "key-1")], "padding": "x" * MAX_DOCUMENT_BYTES}
    transport = FakeTransport()
    transport.route(METADATA_URL, respond(200, {"issuer": "x", "jwks_uri": JWKS_URL}))
    transport.route(JWKS_URL, respond(200, huge))
    with pytest.raises(CredentialUnavailable, match="exceeds"):
        SigningKeys(metadata_url=METADATA_URL, transport=transport).key("key-1")
    declared = FakeTransport()
    declared.route(METADATA_URL, respond(200, {"issuer": "x"}, headers={"Content-Length": "999999999"}))
    with pytest.raises(CredentialUnavailable, match="exceeds"):
        SigningKeys(metadata_url=METADATA_URL, transport=declared).key("key-1")


@pytest.mark.parametrize(
    ("authority_host", "v1_issuer_host", "foreign_v1_host"),
    [
        ("https://login.microsoftonline.us", "sts.windows.net", "sts.chinacloudapi.cn"),
        ("https://login.chinacloudapi.cn", "sts.chinacloudapi.cn", "sts.windows.net"),
        ("https://login.microsoftonline.com", "sts.windows.net", "sts.chinacloudapi.cn"),
    ],
    ids=["us-government", "china-21vianet", "global"],
)
def test_sovereign_cloud_issuers_come_from_the_authority_host(
    rsa_key: rsa.RSAPrivateKey,
    make_token: TokenFactory,
    authority_host: str,
    v1_issuer_host: str,
    foreign_v1_host: str,
) -> None:
    metadata_url = f"{authority_host}/{TENANT}/v2.0/.well-known/openid-configuration"
    jwks_url = f"{authority_host}/{TENANT}/discovery/v2.0/keys"
    transport = FakeTransport()
    transport.route(
        metadata_url, respond(200, {"issuer": f"{authority_host}/{TENANT}/v2.0", "jwks_uri": jwks_url})
    )
    transport.route(jwks_url, respond(200, {"keys": [jwk_of(rsa_key, "key-1")]}))
    settings = make_settings(ENTRA_AUTHORITY_HOST=authority_host)
    authenticator = CallerAuthenticator(
        tenant_id=settings.tenant_id,
        audiences=settings.api_audiences,
        keys=SigningKeys(metadata_url=metadata_url, transport=transport),
    )

    def authenticate(token: str) -> Any:
        return authenticator.authenticate(
            {"authorization": f"Bearer {token}"}, required_role=ROLE, kinds=APPLICATIONS
        )

    assert authenticate(make_token(iss=f"{authority_host}/{TENANT}/v2.0")).app_id == CALLER_APP
    v1 = {"aud": f"api://{CLIENT}", "appid": CALLER_APP, "drop": ("azp",), "ver": "1.0"}
    assert authenticate(make_token(iss=f"https://{v1_issuer_host}/{TENANT}/", **v1)).app_id == CALLER_APP
    with pytest.raises(Unauthenticated, match="not issued by this tenant"):
        authenticate(make_token(iss=f"https://{foreign_v1_host}/{TENANT}/", **v1))
    with pytest.raises(Unauthenticated, match="not issued by this tenant"):
        authenticate(make_token(iss=f"{AUTHORITY_HOST}/{TENANT}/v2.0"))  # another cloud's v2 issuer


def test_user_token_without_scp_is_not_an_application(tenant: Tenant, make_token: TokenFactory) -> None:
    """A person's token for this API with no delegated scope may still carry the person's app roles: it
    must not pass as the application holding them (issue 17, finding 9)."""
    token = make_token(oid="user-object-id", sub="pairwise-subject", roles=[ROLE])
    with pytest.raises(Unauthenticated) as caught:
        tenant.authenticate(token, kinds=APPLICATIONS)
    assert caught.value.status == 401 and "neither an app-only token" in caught.value.message
    with pytest.raises(Unauthenticated):
        tenant.authenticate(make_token(oid="user-object-id", drop=("sub",)), kinds=APPLICATIONS)


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        ({"idtyp": "app", "oid": "sp", "sub": "sp"}, "application"),
        ({"idtyp": "app", "oid": "sp", "sub": "other"}, "application"),  # idtyp decides where present
        ({"idtyp": "user", "oid": "u", "sub": "pairwise", "scp": "access_as_user"}, "user"),
        ({"oid": "u", "sub": "pairwise", "scp": "access_as_user"}, "user"),
    ],
)
def test_token_kind_is_recognised_positively(
    tenant: Tenant, make_token: TokenFactory, claims: dict[str, str], kind: str
) -> None:
    assert tenant.authenticate(make_token(**claims), kinds=APPLICATIONS | USERS).kind == kind


@pytest.mark.parametrize(
    "claims",
    [
        {"idtyp": "user", "oid": "u", "sub": "u"},  # a user token without scopes, whatever oid and sub say
        {"idtyp": "app", "scp": "access_as_user"},  # contradictory
        {"idtyp": "device"},
    ],
)
def test_token_of_no_recognised_kind_is_401(
    tenant: Tenant, make_token: TokenFactory, claims: dict[str, str]
) -> None:
    with pytest.raises(Unauthenticated):
        tenant.authenticate(make_token(**claims), kinds=APPLICATIONS | USERS)
