"""SharePoint REST over real sockets with requests, with tokens from the tenant's own endpoints.

Tests using ``token_endpoint`` get their tokens from ``/{tenant}/oauth2/v2.0/token`` through msal; the
others use the managed-identity endpoint only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.emulator.test_identity import logged
from tests.support.tenant import LocalTenant

VERBOSE = {"Accept": "application/json;odata=verbose"}
NOMETADATA = {"Accept": "application/json;odata=nometadata"}


def site(tenant: LocalTenant) -> str:
    return tenant.env["SHAREPOINT_SITE_URL"]


def sp_origin(tenant: LocalTenant) -> str:
    return site(tenant).split("/sites/")[0]


def mi_token(tenant: LocalTenant, resource: str) -> str:
    params = {"api-version": "2019-08-01", "resource": resource}
    resp = requests.get(
        tenant.env["IDENTITY_ENDPOINT"],
        params=params,
        headers={"X-IDENTITY-HEADER": tenant.env["IDENTITY_HEADER"]},
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def current_user(
    tenant: LocalTenant, token: str | None, headers: dict[str, str] | None = None, root: bool = False
) -> requests.Response:
    hdrs = dict(headers or NOMETADATA)
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    base = sp_origin(tenant) if root else site(tenant)
    return requests.get(f"{base}/_api/web/currentuser", headers=hdrs, timeout=10)


@pytest.fixture(scope="module")
def token_endpoint(tenant: LocalTenant) -> str:
    """The authority whose token endpoint issues the tokens (it must be served: a 404 fails the test)."""
    probe = requests.post(
        f"{tenant.authority}/oauth2/v2.0/token", data={"grant_type": "client_credentials"}, timeout=10
    )
    assert probe.status_code != 404, "the local tenant's token endpoint is not served"
    return tenant.authority


def certificate_credential(tenant: LocalTenant) -> dict[str, Any]:
    pem = (tenant.state_dir / "apps" / "graph-functions.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    key = serialization.load_pem_private_key(pem, None)
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "thumbprint": hashlib.sha1(der).hexdigest(),  # noqa: S324 - certificate thumbprints are SHA-1
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def acquire(result: dict[str, Any]) -> str:
    assert "access_token" in result, result
    return str(result["access_token"])


# ------------------------------------------------------------------------- without the token endpoint
def test_anonymous_request_is_forbidden(tenant: LocalTenant) -> None:
    resp = current_user(tenant, None, VERBOSE)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "-2147024891, System.UnauthorizedAccessException"


def test_empty_bearer_gets_the_realm_challenge(tenant: LocalTenant) -> None:
    resp = requests.get(
        f"{site(tenant)}/_api/web/currentuser", headers={"Authorization": "Bearer "}, timeout=10
    )
    assert resp.status_code == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith(
        f'Bearer realm="{tenant.env["ENTRA_TENANT_ID"]}",'
        'client_id="00000003-0000-0ff1-ce00-000000000000",trusted_issuers="'
    )
    assert f'authorization_uri="{tenant.env["ENTRA_AUTHORITY_HOST"]}/common/oauth2/authorize"' in challenge


@pytest.mark.parametrize("resource", ["https://graph.microsoft.com", "https://vault.azure.net"])
def test_token_for_another_resource_is_invalid_issuer_or_signature(
    tenant: LocalTenant, resource: str
) -> None:
    resp = current_user(tenant, mi_token(tenant, resource))
    assert resp.status_code == 401
    assert resp.json() == {"error_description": "Invalid issuer or signature."}
    assert resp.headers["x-ms-diagnostics"].startswith("3000003;")


def test_managed_identity_without_a_sharepoint_role_is_denied(tenant: LocalTenant) -> None:
    """A managed-identity token is app-only with appidacr 2, but the identity holds no Sites.* role."""
    token = mi_token(tenant, sp_origin(tenant))
    seq = tenant.last_seq()
    resp = current_user(tenant, token, VERBOSE)
    assert resp.status_code == 403
    assert resp.json()["error"]["message"]["value"].startswith("Access denied.")
    [entry] = logged(tenant, seq, "sharepoint", 1)
    assert entry["route"] == "/sites/contoso/_api/web/currentuser" and entry["client_id"]


# ---------------------------------------------------------------------------- with the token endpoint
def test_app_only_with_certificate_is_the_app_principal(tenant: LocalTenant, token_endpoint: str) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        authority=token_endpoint,
        client_credential=certificate_credential(tenant),
        instance_discovery=False,
    )
    token = acquire(app.acquire_token_for_client(scopes=[f"{sp_origin(tenant)}/.default"]))
    for root in (False, True):
        resp = current_user(tenant, token, root=root)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["LoginName"] == "i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint"
        assert body["Id"] == 1073741822 and body["Title"] == "SharePoint App"


def test_app_only_with_a_secret_is_unsupported(tenant: LocalTenant, token_endpoint: str) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["CALLER_CLIENT_ID"],
        authority=token_endpoint,
        client_credential=tenant.env["CALLER_CLIENT_SECRET"],
        instance_discovery=False,
    )
    token = acquire(app.acquire_token_for_client(scopes=[f"{sp_origin(tenant)}/.default"]))
    resp = current_user(tenant, token)
    assert resp.status_code == 401
    assert resp.json() == {"error_description": "Unsupported app only token."}


def test_graph_token_from_the_token_endpoint_is_rejected(tenant: LocalTenant, token_endpoint: str) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        authority=token_endpoint,
        client_credential=certificate_credential(tenant),
        instance_discovery=False,
    )
    token = acquire(app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"]))
    resp = current_user(tenant, token)
    assert resp.status_code == 401 and resp.json() == {"error_description": "Invalid issuer or signature."}


def test_delegated_user_and_profile(tenant: LocalTenant, token_endpoint: str) -> None:
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        authority=token_endpoint,
        client_credential=certificate_credential(tenant),
        instance_discovery=False,
    )
    username = tenant.env["DEMO_USER_USERNAME"]
    # msal's acquire_token_by_username_password first asks https://{host}/common/userrealm/... with the
    # authority's port dropped (port 443), which a loopback authority on another port cannot answer; its
    # OAuth2 client sends the same ROPC request without that detour (and with the certificate assertion).
    token = acquire(
        app.client.obtain_token_by_username_password(
            username, tenant.env["DEMO_USER_PASSWORD"], scope=[f"{sp_origin(tenant)}/AllSites.Read"]
        )
    )
    resp = current_user(tenant, token, VERBOSE)
    assert resp.status_code == 200, resp.text
    user = resp.json()["d"]
    assert user["__metadata"]["type"] == "SP.User"
    assert user["LoginName"] == f"i:0#.f|membership|{username.lower()}" and user["IsSiteAdmin"] is False
    assert user["UserId"]["NameIdIssuer"] == "urn:federation:microsoftonline"
    profile = requests.get(
        f"{site(tenant)}/_api/SP.UserProfiles.PeopleManager/GetMyProperties",
        headers={**NOMETADATA, "Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert profile.status_code == 200
    props = {p["Key"]: p["Value"] for p in profile.json()["UserProfileProperties"]}
    assert props["AccountName"] == user["LoginName"] and props["UserName"].lower() == username.lower()
