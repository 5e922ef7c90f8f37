"""Caller authentication end to end: forged and wrong tokens against ``/api/users``, and key rotation.

Tokens with a VALID signature over wrong claims are signed with the tenant's current signing key, read
from its state dir (the harness owns it). Every rejection must be the documented 401/403 envelope, and
no rejected request may reach Graph.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import Evidence, FreshHosts, TenantFactory, own_caller
from tests.support.apphost import Caller, b64url, current_signing_key, forge_token, token_claims
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

OTHER_TENANT = "7c1f9b3e-0000-4000-8000-00000000abcd"


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem_from_jwks(tenant: LocalTenant, kid: str) -> bytes:
    jwks_uri = f"{tenant.authority}/discovery/v2.0/keys"
    keys = requests.get(jwks_uri, timeout=30).json()["keys"]
    jwk = next(key for key in keys if key["kid"] == kid)
    public = jwt.PyJWK(jwk, algorithm="RS256").key
    return bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _unsigned(header: dict[str, object], claims: dict[str, object], signature: str = "") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{signature}"


def _tamper_signature(token: str) -> str:
    head, body, signature = token.split(".")
    middle = len(signature) // 2  # not the last character, whose low bits may be padding
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{body}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


Forger = Callable[[LocalTenant, Caller, rsa.RSAPrivateKey], str]


def _hs256_with_public_key(tenant: LocalTenant, caller: Caller, attacker: rsa.RSAPrivateKey) -> str:
    """The classic algorithm confusion: HMAC keyed with the tenant's PUBLIC key bytes from the JWKS."""
    kid, _ = current_signing_key(tenant)
    secret = _public_pem_from_jwks(tenant, kid)
    unsigned = _unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, token_claims(tenant))
    mac = hmac.new(secret, unsigned.rstrip(".").encode(), hashlib.sha256).digest()
    return unsigned + b64url(mac)


def _alg_none(tenant: LocalTenant, caller: Caller, attacker: rsa.RSAPrivateKey) -> str:
    kid, _ = current_signing_key(tenant)
    return _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, token_claims(tenant))


def _alg_none_with_signature(tenant: LocalTenant, caller: Caller, attacker: rsa.RSAPrivateKey) -> str:
    kid, _ = current_signing_key(tenant)
    return _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, token_claims(tenant), "c2lnbmF0dXJl")


def _now() -> int:
    return int(time.time())


FORGED: dict[str, Forger] = {
    "garbage": lambda t, c, a: "not-a-jwt",
    "three-garbage-segments": lambda t, c, a: "abc.def.ghi",
    "alg-none": _alg_none,
    "alg-none-with-signature": _alg_none_with_signature,
    "hs256-signed-with-public-key": _hs256_with_public_key,
    "graph-audience-token": lambda t, c, a: c.token(c.graph_scope),
    "wrong-audience": lambda t, c, a: forge_token(t, aud=f"api://{uuid.uuid4()}"),
    "wrong-issuer": lambda t, c, a: forge_token(
        t, iss=f"https://evil.example/{t.env['ENTRA_TENANT_ID']}/v2.0"
    ),
    "v1-issuer-of-other-tenant": lambda t, c, a: forge_token(
        t, iss=f"https://sts.windows.net/{OTHER_TENANT}/"
    ),
    "other-tenant-tid": lambda t, c, a: forge_token(t, tid=OTHER_TENANT),
    "expired": lambda t, c, a: forge_token(t, iat=_now() - 7200, nbf=_now() - 7200, exp=_now() - 600),
    "not-yet-valid": lambda t, c, a: forge_token(t, nbf=_now() + 600, exp=_now() + 4000),
    "no-exp": lambda t, c, a: forge_token(t, exp=None),
    "no-caller-app-id": lambda t, c, a: forge_token(t, azp=None),
    "bad-signature": lambda t, c, a: _tamper_signature(c.token()),
    "claims-swapped-under-real-signature": lambda t, c, a: ".".join(
        [
            c.token().split(".")[0],
            forge_token(t, roles=["Users.Read.All", "Admin"]).split(".")[1],
            c.token().split(".")[2],
        ]
    ),
    "unknown-kid-own-key": lambda t, c, a: forge_token(
        t,
        key=a.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        kid=f"attacker-{uuid.uuid4().hex[:8]}",
    ),
    "known-kid-own-key": lambda t, c, a: forge_token(
        t,
        key=a.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    ),
    "oversized": lambda t, c, a: forge_token(t, padding="x" * 20_000),
    # A person's token for this API without scp, holding the app role through the person (issue 17, 9):
    # its sub is pairwise, not its oid, so it is no app-only token.
    "user-token-without-scp": lambda t, c, a: forge_token(t, sub=str(uuid.uuid4())),
    "user-token-without-scp-idtyp-user": lambda t, c, a: forge_token(t, idtyp="user"),
}


def test_a_correctly_forged_token_is_accepted(app_host: DevHostProcess, local_tenant: LocalTenant) -> None:
    """Control for the matrix below: the forging harness itself produces tokens the app accepts, so each
    rejection is caused by the one defect that case introduces."""
    assert call(app_host, "/api/users", forge_token(local_tenant), {"top": "1"}).status_code == 200
    v1 = forge_token(
        local_tenant,
        iss=f"https://sts.windows.net/{local_tenant.env['ENTRA_TENANT_ID']}/",
        aud=f"api://{local_tenant.env['ENTRA_CLIENT_ID']}",
        azp=None,
        appid=local_tenant.env["CALLER_CLIENT_ID"],
        ver="1.0",
    )
    assert call(app_host, "/api/users", v1, {"top": "1"}).status_code == 200


@pytest.mark.parametrize("case", list(FORGED))
def test_invalid_bearer_token_is_401(
    app_host: DevHostProcess,
    local_tenant: LocalTenant,
    caller: Caller,
    attacker_key: rsa.RSAPrivateKey,
    evidence: Evidence,
    case: str,
) -> None:
    token = FORGED[case](local_tenant, caller, attacker_key)
    evidence.tokens.append(token)
    seq = local_tenant.last_seq()
    response = call(app_host, "/api/users", token, {"top": "1"})
    assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert local_tenant.requests_since(seq, "graph") == []


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Token abc.def.ghi"],
    ids=["no-header", "bearer-no-token", "bearer-empty", "basic", "lowercase-no-token", "other-scheme"],
)
def test_missing_or_malformed_authorization_header_is_401(
    app_host: DevHostProcess, local_tenant: LocalTenant, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    seq = local_tenant.last_seq()
    response = call(app_host, "/api/users", headers=headers)
    assert_error(response, 401, "unauthenticated")
    challenge = response.headers["WWW-Authenticate"]
    if authorization is None:
        assert challenge == "Bearer"  # RFC 6750 3.1: no error code when no credentials were sent
    else:
        assert challenge.startswith('Bearer error="invalid_token"')
    assert local_tenant.requests_since(seq) == []


def test_caller_without_the_app_role_is_403(
    app_host: DevHostProcess, local_tenant: LocalTenant, norole_caller: Caller
) -> None:
    seq = local_tenant.last_seq()
    for path in ("/api/users", f"/api/users/{local_tenant.env['DEMO_ADMIN_USERNAME']}"):
        response = call(app_host, path, norole_caller.token())
        error = assert_error(response, 403, "forbidden")
        assert "Users.Read.All" in error["message"]
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    forged = forge_token(local_tenant, roles=["Mail.Read.All"])
    assert_error(call(app_host, "/api/users", forged), 403, "forbidden")
    assert local_tenant.requests_since(seq, "graph") == []


def test_get_user_checks_the_token_before_the_id(app_host: DevHostProcess) -> None:
    """Anonymous callers learn nothing about parameters: a malformed id is still a 401 without a token."""
    assert_error(call(app_host, "/api/users/not an id"), 401, "unauthenticated")
    assert_error(call(app_host, "/api/users", params={"top": "0"}), 401, "unauthenticated")


def test_rotated_signing_key_is_accepted_after_one_jwks_refetch(
    tenant_factory: TenantFactory,
    fresh_hosts: FreshHosts,
    evidence: Evidence,
    attacker_key: rsa.RSAPrivateKey,
) -> None:
    own = tenant_factory()  # signing keys survive a reset: rotate them on a tenant of this test's own
    host = fresh_hosts.start(own, "key-rotation")
    before = own_caller(own, evidence)
    old_token = before.token()
    assert call(host, "/api/users", old_token, {"top": "1"}).status_code == 200  # JWKS cached: old key only

    rotated = own.control("POST", "/signing-keys/rotate", {})
    assert len(rotated["published"]) == 2
    seq = own.last_seq()
    new_token = own_caller(own, evidence).token()  # a new client: msal's cache would return the old token
    assert jwt.get_unverified_header(new_token)["kid"] == rotated["kid"]
    response = call(host, "/api/users", new_token, {"top": "1"})
    assert response.status_code == 200, response.text
    jwks_fetches = [e for e in own.requests_since(seq, "login") if e["path"].endswith("/discovery/v2.0/keys")]
    assert len(jwks_fetches) == 1
    # Tokens signed by the previous key (still published) keep working.
    assert call(host, "/api/users", old_token, {"top": "1"}).status_code == 200
    # Invented kids cannot make the app hammer the tenant: no second refetch right after the first.
    seq = own.last_seq()
    pem = attacker_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for attempt in range(3):
        forged = forge_token(own, key=pem, kid=f"invented-{attempt}")
        assert_error(call(host, "/api/users", forged), 401, "unauthenticated")
    assert [e for e in own.requests_since(seq, "login") if e["path"].endswith("/keys")] == []
