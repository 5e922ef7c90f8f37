"""Entra metadata: OpenID configuration, JWKS, instance discovery, user realm, key rotation."""

from __future__ import annotations

import jwt
import msal
import pytest
import requests

from tests.emulator.entra_flow import claims
from tests.support.tenant import LocalTenant

RECORDED_FIELDS = [
    "token_endpoint",
    "token_endpoint_auth_methods_supported",
    "jwks_uri",
    "response_modes_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "response_types_supported",
    "scopes_supported",
    "issuer",
    "request_uri_parameter_supported",
    "userinfo_endpoint",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "http_logout_supported",
    "frontchannel_logout_supported",
    "end_session_endpoint",
    "claims_supported",
    "kerberos_endpoint",
    "tenant_region_scope",
    "cloud_instance_name",
    "cloud_graph_host_name",
    "msgraph_host",
    "rbac_url",
]


def get(tenant: LocalTenant, path: str) -> requests.Response:
    return requests.get(f"{tenant.env['ENTRA_AUTHORITY_HOST']}{path}", verify=tenant.ca_cert, timeout=30)


@pytest.mark.parametrize("segment", ["id", "domain"])
def test_tenant_discovery_document(tenant: LocalTenant, segment: str) -> None:
    host, tid = tenant.env["ENTRA_AUTHORITY_HOST"], tenant.env["ENTRA_TENANT_ID"]
    name = tid if segment == "id" else "contoso.onmicrosoft.com"
    resp = get(tenant, f"/{name}/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 200
    doc = resp.json()
    assert list(doc) == RECORDED_FIELDS
    assert (
        doc["issuer"] == f"{host}/{tid}/v2.0"
    )  # the domain form resolves to the tenant id, as the real one does
    assert doc["token_endpoint"] == f"{host}/{tid}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{host}/{tid}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == f"{host}/{tid}/discovery/v2.0/keys"
    assert doc["end_session_endpoint"] == f"{host}/{tid}/oauth2/v2.0/logout"
    assert doc["userinfo_endpoint"] == f"{tenant.env['GRAPH_ENDPOINT']}/oidc/userinfo"
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_post",
        "private_key_jwt",
        "client_secret_basic",
    ]
    assert resp.headers["Cache-Control"] == "max-age=86400, private"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("segment", ["common", "organizations"])
def test_multi_tenant_discovery_uses_the_placeholder_issuer(tenant: LocalTenant, segment: str) -> None:
    host = tenant.env["ENTRA_AUTHORITY_HOST"]
    doc = get(tenant, f"/{segment}/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{host}/{{tenantid}}/v2.0"
    assert doc["token_endpoint"] == f"{host}/{segment}/oauth2/v2.0/token"
    keys = get(tenant, f"/{segment}/discovery/v2.0/keys").json()["keys"]
    assert all(k["issuer"] == f"{host}/{{tenantid}}/v2.0" for k in keys)


@pytest.mark.parametrize(
    "path",
    [
        "/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration",
        "/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration",
        "/consumers/v2.0/.well-known/openid-configuration",
        "/nope/discovery/v2.0/keys",
    ],
)
def test_unknown_tenant_is_aadsts90002(tenant: LocalTenant, path: str) -> None:
    resp = get(tenant, path)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_tenant" and body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant '")


def test_v1_discovery_and_keys(tenant: LocalTenant) -> None:
    tid = tenant.env["ENTRA_TENANT_ID"]
    doc = get(tenant, f"/{tid}/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"https://sts.windows.net/{tid}/"
    keys = get(tenant, f"/{tid}/discovery/keys").json()["keys"]
    assert keys and all(k["issuer"] == f"https://sts.windows.net/{tid}/" for k in keys)


def test_jwks_shape(tenant: LocalTenant) -> None:
    tid = tenant.env["ENTRA_TENANT_ID"]
    keys = get(tenant, f"/{tid}/discovery/v2.0/keys").json()["keys"]
    for key in keys:
        assert {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"} <= set(key)
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["e"] == "AQAB"
        assert key["kid"] == key["x5t"]


def test_instance_discovery(tenant: LocalTenant) -> None:
    tid = tenant.env["ENTRA_TENANT_ID"]
    ok = get(
        tenant,
        f"/common/discovery/instance?api-version=1.1&authorization_endpoint="
        f"https://127.0.0.1/{tid}/oauth2/v2.0/authorize",
    ).json()
    assert ok["tenant_discovery_endpoint"] == f"{tenant.authority}/v2.0/.well-known/openid-configuration"
    assert ok["api-version"] == "1.1"
    assert ok["metadata"][0]["preferred_network"] == tenant.env["ENTRA_AUTHORITY_HOST"].removeprefix(
        "https://"
    )
    bad = get(
        tenant,
        "/common/discovery/instance?api-version=1.1&authorization_endpoint="
        "https://login.evil.example/x/oauth2/v2.0/authorize",
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_instance"


def test_msal_with_a_custom_instance_discovery_endpoint(tenant: LocalTenant) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["CALLER_CLIENT_ID"],
        client_credential=tenant.env["CALLER_CLIENT_SECRET"],
        authority=tenant.authority,
        instance_discovery=f"{tenant.env['ENTRA_AUTHORITY_HOST']}/common/discovery/instance",
    )
    result = app.acquire_token_for_client([f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default"])
    assert "access_token" in result, result


def test_msal_oidc_authority_requires_the_matching_issuer(tenant: LocalTenant) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["CALLER_CLIENT_ID"],
        client_credential=tenant.env["CALLER_CLIENT_SECRET"],
        oidc_authority=f"{tenant.authority}/v2.0",
    )
    result = app.acquire_token_for_client([f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default"])
    assert "access_token" in result, result
    # MSAL compares the document's issuer with the oidc_authority string: they are equal here.
    doc = get(tenant, f"/{tenant.env['ENTRA_TENANT_ID']}/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{tenant.authority}/v2.0"


def test_user_realm(tenant: LocalTenant) -> None:
    managed = get(tenant, "/common/userrealm/member@contoso.onmicrosoft.com?api-version=1.0").json()
    assert managed["account_type"] == "Managed" and managed["domain_name"] == "contoso.onmicrosoft.com"
    assert get(tenant, "/common/userrealm/x@fabrikam.com?api-version=1.0").json()["account_type"] == "Unknown"


def test_signing_key_rotation_publishes_a_new_kid(fresh: LocalTenant) -> None:
    tid = fresh.env["ENTRA_TENANT_ID"]
    before = {k["kid"] for k in get(fresh, f"/{tid}/discovery/v2.0/keys").json()["keys"]}
    rotated = fresh.control("POST", "/signing-keys/rotate", {})
    after = {k["kid"] for k in get(fresh, f"/{tid}/discovery/v2.0/keys").json()["keys"]}
    assert rotated["kid"] in after and rotated["kid"] not in before and before <= after
    app = msal.ConfidentialClientApplication(
        fresh.env["CALLER_CLIENT_ID"],
        client_credential=fresh.env["CALLER_CLIENT_SECRET"],
        authority=fresh.authority,
        instance_discovery=False,
    )
    token = app.acquire_token_for_client([f"api://{fresh.env['ENTRA_CLIENT_ID']}/.default"])["access_token"]
    import jwt

    assert jwt.get_unverified_header(token)["kid"] == rotated["kid"]
    assert claims(token)["tid"] == tid


def test_every_non_graph_token_verifies_against_the_published_jwks_and_graph_tokens_do_not(
    tenant: LocalTenant,
) -> None:
    """As in the cloud: tokens for the app's own API, SharePoint, the vault and id tokens verify against the
    JWKS; Microsoft Graph's carry a header nonce and verify only inside Graph."""
    from tests.emulator.entra_flow import (
        JWT_BEARER,
        assertion,
        graph_token_claims,
        token_post,
        verify_with_jwks,
    )

    client, graph = tenant.env["ENTRA_CLIENT_ID"], tenant.env["GRAPH_ENDPOINT"]
    caller = {
        "client_id": tenant.env["CALLER_CLIENT_ID"],
        "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
    }
    cert = {"client_id": client, "client_assertion_type": JWT_BEARER}
    cases = [
        ({"grant_type": "client_credentials", "scope": f"api://{client}/.default", **caller}, client),
        ({"grant_type": "client_credentials", "scope": f"{graph}/.default", **caller}, graph),
        (
            {"grant_type": "client_credentials", "scope": "https://vault.azure.net/.default", **caller},
            "https://vault.azure.net",
        ),
        (
            {
                "grant_type": "password",
                "username": tenant.env["DEMO_USER_USERNAME"],
                "password": tenant.env["DEMO_USER_PASSWORD"],
                "scope": "openid profile offline_access User.Read",
                **cert,
            },
            "00000003-0000-0000-c000-000000000000",
        ),
        (
            {
                "grant_type": "password",
                "username": tenant.env["DEMO_USER_USERNAME"],
                "password": tenant.env["DEMO_USER_PASSWORD"],
                "scope": f"{tenant.origin('sharepoint')}/AllSites.Read",
                **cert,
            },
            tenant.origin("sharepoint"),
        ),
    ]
    for data, audience in cases:
        if "client_assertion_type" in data:
            data = {**data, "client_assertion": assertion(tenant)}
        body = token_post(tenant, data).json()
        assert "access_token" in body, body
        if audience in (graph, "00000003-0000-0000-c000-000000000000"):
            assert graph_token_claims(tenant, body["access_token"])["aud"] == audience
        else:
            verify_with_jwks(tenant, body["access_token"], audience)
            assert "nonce" not in jwt.get_unverified_header(body["access_token"])
        if "id_token" in body:
            verify_with_jwks(tenant, body["id_token"], client)
