"""Client credentials with the real MSAL and azure-identity: secrets, certificates (RS256/x5t, x5c, PS256),
app roles, audiences, and every client-authentication error."""

from __future__ import annotations

import base64
import time

import jwt
import msal
import pytest
import requests
from azure.identity import CertificateCredential, ClientSecretCredential

from tests.emulator.entra_flow import (
    JWT_BEARER,
    app_certificate,
    assert_aadsts,
    assertion,
    claims,
    graph_token_claims,
    token_post,
    verify_with_jwks,
)
from tests.support.tenant import LocalTenant

API_ROLES = ["Audit.Read", "Mail.Read.All", "Reports.Read", "Reports.Run", "Tenants.Manage", "Users.Read.All"]


def api_scope(tenant: LocalTenant) -> str:
    return f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default"


def caller_app(tenant: LocalTenant, *, norole: bool = False) -> msal.ConfidentialClientApplication:
    prefix = "CALLER_NOROLE" if norole else "CALLER"
    return msal.ConfidentialClientApplication(
        tenant.env[f"{prefix}_CLIENT_ID"],
        client_credential=tenant.env[f"{prefix}_CLIENT_SECRET"],
        authority=tenant.authority,
        instance_discovery=False,
    )


def test_caller_gets_a_v2_token_for_the_api_with_all_roles(tenant: LocalTenant) -> None:
    result = caller_app(tenant).acquire_token_for_client([api_scope(tenant)])
    assert result["token_type"] == "Bearer" and result["expires_in"] > 0
    body = verify_with_jwks(tenant, result["access_token"], tenant.env["ENTRA_CLIENT_ID"])
    assert body["ver"] == "2.0" and body["aud"] == tenant.env["ENTRA_CLIENT_ID"]
    assert body["iss"] == f"{tenant.authority}/v2.0"
    assert body["azp"] == tenant.env["CALLER_CLIENT_ID"] and body["azpacr"] == "1"
    assert body["roles"] == API_ROLES
    assert body["oid"] == body["sub"] and "scp" not in body


def test_norole_caller_gets_no_roles_claim(tenant: LocalTenant) -> None:
    result = caller_app(tenant, norole=True).acquire_token_for_client([api_scope(tenant)])
    body = claims(result["access_token"])
    assert "roles" not in body and body["azp"] == tenant.env["CALLER_NOROLE_CLIENT_ID"]


def test_second_call_is_served_from_the_msal_cache(tenant: LocalTenant) -> None:
    app = caller_app(tenant)
    seq = tenant.last_seq()
    first = app.acquire_token_for_client([api_scope(tenant)])
    second = app.acquire_token_for_client([api_scope(tenant)])
    assert second["token_source"] == "cache" and second["access_token"] == first["access_token"]
    posts = [e for e in tenant.requests_since(seq, "login") if e["route"].endswith("/token")]
    assert len(posts) == 1
    assert (
        posts[0]["client_id"] == tenant.env["CALLER_CLIENT_ID"]
        and posts[0]["grant_type"] == "client_credentials"
    )


@pytest.mark.parametrize(
    "scope,aud",
    [
        ("https://graph.microsoft.com/.default", "https://graph.microsoft.com"),
        ("GRAPH/.default", "GRAPH"),
        ("00000003-0000-0000-c000-000000000000/.default", "00000003-0000-0000-c000-000000000000"),
    ],
)
def test_graph_token_audience_follows_the_requested_identifier(
    tenant: LocalTenant, scope: str, aud: str
) -> None:
    graph = tenant.env["GRAPH_ENDPOINT"]
    scope, aud = scope.replace("GRAPH", graph), aud.replace("GRAPH", graph)
    result = caller_app(tenant).acquire_token_for_client([scope])
    body = graph_token_claims(tenant, result["access_token"])
    assert body["aud"] == aud
    assert body["ver"] == "1.0" and body["iss"] == f"https://sts.windows.net/{tenant.env['ENTRA_TENANT_ID']}/"
    assert body["idtyp"] == "app" and body["appidacr"] == "1"
    assert "x5t" in jwt.get_unverified_header(result["access_token"])  # v1 tokens carry x5t


def test_certificate_with_thumbprint_rs256(tenant: LocalTenant) -> None:
    cert = app_certificate(tenant)
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=tenant.authority,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([f"{tenant.env['GRAPH_ENDPOINT']}/.default"])
    body = claims(result["access_token"])
    assert body["appidacr"] == "2"
    assert body["roles"] == ["GroupMember.Read.All", "Mail.Read", "Mail.Send", "User.Read.All"]
    # MSAL reuses its assertion for ~9 minutes: a second resource must still work (Entra allows reuse).
    second = app.acquire_token_for_client([f"{tenant.origin('sharepoint')}/.default"])
    assert claims(second["access_token"])["roles"] == ["Sites.Read.All"]


def test_certificate_with_x5c(tenant: LocalTenant) -> None:
    cert = app_certificate(tenant)
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        authority=tenant.authority,
        instance_discovery=False,
        client_credential={
            "private_key": cert.key_pem,
            "thumbprint": cert.sha1_hex,
            "public_certificate": cert.cert_pem,
        },
    )
    assert "access_token" in app.acquire_token_for_client([api_scope(tenant)])


def test_certificate_ps256_without_thumbprint(tenant: LocalTenant) -> None:
    cert = app_certificate(tenant)
    seen: list[dict[str, object]] = []
    session = requests.Session()
    original = session.request

    def spy(method: str, url: str, **kwargs: object) -> requests.Response:  # observe, do not alter
        data = kwargs.get("data")
        if isinstance(data, dict) and "client_assertion" in data:
            raw = data["client_assertion"]
            seen.append(jwt.get_unverified_header(raw.decode() if isinstance(raw, bytes) else str(raw)))
        return original(method, url, **kwargs)  # type: ignore[arg-type]

    session.request = spy  # type: ignore[method-assign]
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        authority=tenant.authority,
        instance_discovery=False,
        http_client=session,
        client_credential=cert.msal_credential(public_certificate=cert.cert_pem),
    )
    result = app.acquire_token_for_client([api_scope(tenant)])
    assert "access_token" in result, result
    assert seen and seen[0]["alg"] == "PS256" and "x5t#S256" in seen[0] and "x5c" in seen[0]


def test_azure_identity_secret_and_certificate_credentials(tenant: LocalTenant, tmp_path: object) -> None:
    from pathlib import Path

    scope = api_scope(tenant)
    secret = ClientSecretCredential(
        tenant.env["ENTRA_TENANT_ID"],
        tenant.env["CALLER_CLIENT_ID"],
        tenant.env["CALLER_CLIENT_SECRET"],
        authority=tenant.env["ENTRA_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )
    assert claims(secret.get_token(scope).token)["roles"] == API_ROLES
    pem = Path(str(tmp_path)) / "app.pem"
    cert = app_certificate(tenant)
    pem.write_text(cert.key_pem + cert.cert_pem)
    certificate = CertificateCredential(
        tenant.env["ENTRA_TENANT_ID"],
        tenant.env["ENTRA_CLIENT_ID"],
        str(pem),
        authority=tenant.env["ENTRA_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )
    token = certificate.get_token(f"{tenant.env['GRAPH_ENDPOINT']}/.default").token
    assert claims(token)["appidacr"] == "2"


def test_client_secret_basic(tenant: LocalTenant) -> None:
    resp = token_post(
        tenant,
        {"grant_type": "client_credentials", "scope": api_scope(tenant)},
        auth=(tenant.env["CALLER_CLIENT_ID"], tenant.env["CALLER_CLIENT_SECRET"]),
    )
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert resp.headers["Cache-Control"].startswith("no-store")


# ------------------------------------------------------------------------------------------- errors
def cc(tenant: LocalTenant, **overrides: str) -> dict[str, str]:
    data = {
        "grant_type": "client_credentials",
        "client_id": tenant.env["CALLER_CLIENT_ID"],
        "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
        "scope": api_scope(tenant),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != "<drop>"}


def test_wrong_secret_through_msal(tenant: LocalTenant) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["CALLER_CLIENT_ID"],
        client_credential="wrong~secret",
        authority=tenant.authority,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([api_scope(tenant)])
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]


@pytest.mark.parametrize(
    "overrides,status,error,code",
    [
        ({"client_secret": "nope"}, 401, "invalid_client", 7000215),
        ({"client_secret": "<drop>"}, 401, "invalid_client", 7000218),
        ({"client_id": "11111111-2222-3333-4444-555555555555"}, 400, "unauthorized_client", 700016),
        ({"client_id": "<drop>"}, 400, "invalid_request", 900144),
        ({"scope": "<drop>"}, 400, "invalid_request", 900144),
        ({"grant_type": "<drop>"}, 400, "invalid_request", 900144),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:device_code"},
            400,
            "unsupported_grant_type",
            70003,
        ),
        ({"scope": "User.Read"}, 400, "invalid_scope", 1002012),
        (
            {"scope": "https://graph.microsoft.com/.default https://vault.azure.net/.default"},
            400,
            "invalid_scope",
            70011,
        ),
        ({"scope": "https://nothing.example/.default"}, 400, "invalid_resource", 500011),
        ({"resource": "https://graph.microsoft.com"}, 400, "invalid_request", 901002),
        ({"client_assertion_type": JWT_BEARER}, 400, "invalid_request", 900144),
    ],
)
def test_client_credentials_errors(
    tenant: LocalTenant, overrides: dict[str, str], status: int, error: str, code: int
) -> None:
    assert_aadsts(token_post(tenant, cc(tenant, **overrides)), status, error, code)


def test_common_and_organizations_cannot_mint_app_tokens(tenant: LocalTenant) -> None:
    assert_aadsts(token_post(tenant, cc(tenant), tenant_segment="common"), 400, "invalid_request", 9001023)
    assert_aadsts(
        token_post(tenant, cc(tenant), tenant_segment="organizations"), 400, "invalid_request", 50059
    )
    assert_aadsts(
        token_post(tenant, cc(tenant), tenant_segment="fabrikam.com"), 400, "invalid_request", 90002
    )


def test_token_endpoint_only_accepts_post(tenant: LocalTenant) -> None:
    resp = requests.get(f"{tenant.authority}/oauth2/v2.0/token", verify=tenant.ca_cert, timeout=30)
    assert_aadsts(resp, 400, "invalid_request", 900561)


def test_expired_and_rotated_secrets(fresh: LocalTenant) -> None:
    caller = fresh.env["CALLER_CLIENT_ID"]
    expired = fresh.control("POST", f"/apps/{caller}/secrets/rotate", {"expired": True, "returnValue": True})
    assert_aadsts(
        token_post(fresh, cc(fresh, client_secret=expired["secretText"])), 401, "invalid_client", 7000222
    )
    new = fresh.control("POST", f"/apps/{caller}/secrets/rotate", {"revokeOld": True, "returnValue": True})
    assert new["secretCount"] == 1 and new["hint"] == new["secretText"][:3]
    assert_aadsts(token_post(fresh, cc(fresh)), 401, "invalid_client", 7000215)  # the old secret is gone
    assert token_post(fresh, cc(fresh, client_secret=new["secretText"])).status_code == 200


def test_disabled_and_public_clients(fresh: LocalTenant) -> None:
    caller = fresh.env["CALLER_CLIENT_ID"]
    fresh.control("PATCH", f"/apps/{caller}", {"enabled": False})
    assert_aadsts(token_post(fresh, cc(fresh)), 400, "unauthorized_client", 7000112)
    fresh.control("PATCH", f"/apps/{caller}", {"enabled": True, "isPublicClient": True})
    assert_aadsts(token_post(fresh, cc(fresh)), 401, "invalid_client", 700025)
    assert_aadsts(token_post(fresh, cc(fresh, client_secret="<drop>")), 401, "invalid_client", 7000218)


def test_two_authentication_methods_are_refused(tenant: LocalTenant) -> None:
    resp = token_post(
        tenant, cc(tenant), auth=(tenant.env["CALLER_CLIENT_ID"], tenant.env["CALLER_CLIENT_SECRET"])
    )
    assert_aadsts(resp, 400, "invalid_request", 90023)


# ------------------------------------------------------------------------------ assertion errors
def assertion_form(tenant: LocalTenant, jwt_text: str, **extra: str) -> dict[str, str]:
    data = {
        "grant_type": "client_credentials",
        "client_id": tenant.env["ENTRA_CLIENT_ID"],
        "scope": api_scope(tenant),
        "client_assertion_type": JWT_BEARER,
        "client_assertion": jwt_text,
    }
    data.update(extra)
    return data


def test_handmade_assertions_rs256_and_ps256_with_float_times(tenant: LocalTenant) -> None:
    for alg in ("RS256", "PS256"):
        resp = token_post(tenant, assertion_form(tenant, assertion(tenant, alg=alg)))
        assert resp.status_code == 200, resp.text
    domain_aud = f"{tenant.env['ENTRA_AUTHORITY_HOST']}/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert token_post(tenant, assertion_form(tenant, assertion(tenant, aud=domain_aud))).status_code == 200


@pytest.mark.parametrize(
    "kwargs,status,error,code",
    [
        ({"exp": time.time() - 3600, "iat": time.time() - 4200}, 401, "invalid_client", 700024),
        ({"nbf": time.time() + 3600}, 401, "invalid_client", 700024),
        ({"iat": time.time() + 3600, "exp": time.time() + 4200}, 401, "invalid_client", 700024),
        ({"sub": "someone-else"}, 401, "invalid_client", 50048),
        (
            {"iss": "11111111-2222-3333-4444-555555555555", "sub": "11111111-2222-3333-4444-555555555555"},
            401,
            "invalid_client",
            700021,
        ),
        ({"aud": "https://login.microsoftonline.com/x/oauth2/v2.0/token"}, 401, "invalid_client", 50027),
        ({"exp": None}, 401, "invalid_client", 50027),
        (
            {"headers": {"x5t": base64.urlsafe_b64encode(b"\x01" * 20).decode()}},
            401,
            "invalid_client",
            700027,
        ),
    ],
)
def test_assertion_errors(
    tenant: LocalTenant, kwargs: dict[str, object], status: int, error: str, code: int
) -> None:
    token = assertion(tenant, **kwargs)  # type: ignore[arg-type]
    assert_aadsts(token_post(tenant, assertion_form(tenant, token)), status, error, code)


def test_assertion_signed_by_another_key(tenant: LocalTenant) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    body = assert_aadsts(
        token_post(tenant, assertion_form(tenant, assertion(tenant, key_pem=other))),
        401,
        "invalid_client",
        700027,
    )
    assert "signature" in body["error_description"]
    hs = jwt.encode({"iss": "x"}, "k" * 32, algorithm="HS256")
    assert_aadsts(token_post(tenant, assertion_form(tenant, hs)), 401, "invalid_client", 700027)
    assert_aadsts(token_post(tenant, assertion_form(tenant, "not.a.jwt")), 400, "invalid_request", 50027)


def test_assertion_for_a_client_without_that_certificate(tenant: LocalTenant) -> None:
    data = assertion_form(
        tenant,
        assertion(tenant, iss=tenant.env["CALLER_CLIENT_ID"], sub=tenant.env["CALLER_CLIENT_ID"]),
        client_id=tenant.env["CALLER_CLIENT_ID"],
    )
    body = assert_aadsts(token_post(tenant, data), 401, "invalid_client", 700027)
    assert "not registered" in body["error_description"]


def test_x5c_must_be_a_registered_certificate(tenant: LocalTenant) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-functions")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    # Same subject name as the registered certificate, but not the registered certificate: refused.
    token = assertion(tenant, key_pem=key_pem, headers={"x5c": [base64.b64encode(der).decode()]})
    assert_aadsts(token_post(tenant, assertion_form(tenant, token)), 401, "invalid_client", 700027)


def test_assertion_replay_is_refused_when_enabled(fresh: LocalTenant) -> None:
    token = assertion(fresh)
    assert token_post(fresh, assertion_form(fresh, token)).status_code == 200
    assert (
        token_post(fresh, assertion_form(fresh, token)).status_code == 200
    )  # Entra's default: reuse allowed
    fresh.control("PUT", "/entra/settings", {"rejectAssertionReplay": True})
    assert_aadsts(token_post(fresh, assertion_form(fresh, token)), 401, "invalid_client", 50013)
    assert token_post(fresh, assertion_form(fresh, assertion(fresh))).status_code == 200  # a new jti is fine


def test_client_ids_compare_case_insensitively(tenant: LocalTenant) -> None:
    upper = tenant.env["CALLER_CLIENT_ID"].upper()
    resp = token_post(tenant, cc(tenant, client_id=upper))
    assert resp.status_code == 200, resp.text
    assert claims(resp.json()["access_token"])["azp"] == tenant.env["CALLER_CLIENT_ID"]
