"""The App Service managed-identity endpoint, through the real azure-identity and raw HTTP (real sockets)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from emulator.managed_identity.endpoint import subscription_id
from tests.support.tenant import LocalTenant

#: Variables that would make azure-identity pick another credential or another managed-identity source.
FOREIGN_VARS = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)
VAULT = "https://vault.azure.net/.default"


@pytest.fixture
def mi_env(tenant: LocalTenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalTenant]:
    """The process environment of a function app on App Service: only IDENTITY_ENDPOINT/IDENTITY_HEADER."""
    for name in FOREIGN_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", tenant.env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", tenant.env["IDENTITY_HEADER"])
    yield tenant


def logged(tenant: LocalTenant, seq: int, service: str, count: int) -> list[dict[str, Any]]:
    """The request-log entries of ``service`` after ``seq``, once ``count`` of them are there: the server
    records a request just after sending its response, so the client can be a moment ahead of the log."""
    deadline = time.monotonic() + 5
    entries = tenant.requests_since(seq, service)
    while len(entries) < count and time.monotonic() < deadline:
        time.sleep(0.02)
        entries = tenant.requests_since(seq, service)
    return entries


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def msi(tenant: LocalTenant, header: str | None = "default", **params: str) -> requests.Response:
    value = tenant.env["IDENTITY_HEADER"] if header == "default" else header
    headers = {} if value is None else {"X-IDENTITY-HEADER": value}
    query = {"api-version": "2019-08-01", "resource": "https://vault.azure.net", **params}
    return requests.get(
        tenant.env["IDENTITY_ENDPOINT"],
        params={k: v for k, v in query.items() if v != ""},
        headers=headers,
        timeout=10,
    )


def test_default_azure_credential_gets_a_vault_token_from_the_system_identity(mi_env: LocalTenant) -> None:
    seq = mi_env.last_seq()
    token = DefaultAzureCredential().get_token("https://vault.azure.net/.default")
    claims = claims_of(token.token)
    assert claims["aud"] == "https://vault.azure.net"
    assert claims["iss"] == f"https://sts.windows.net/{mi_env.env['ENTRA_TENANT_ID']}/"
    assert claims["appidacr"] == "2" and claims["idtyp"] == "app" and "scp" not in claims
    assert claims["oid"] == claims["sub"]
    assert claims["appid"] != mi_env.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]  # system-assigned
    assert "/providers/Microsoft.Web/sites/" in claims["xms_mirid"]
    assert token.expires_on == claims["exp"]
    assert 23 * 3600 < claims["exp"] - time.time() <= 24 * 3600 + 5  # managed-identity tokens live 24 h
    [entry] = logged(mi_env, seq, "identity", 1)
    assert entry["status"] == 200 and entry["route"] == "/msi/token"
    assert entry["client_id"] == claims["appid"]
    assert "api-version=2019-08-01" in entry["query"] and "resource=https" in entry["query"]


@pytest.mark.parametrize("scope", ["https://graph.microsoft.com/.default", "GRAPH_ENDPOINT/.default"])
def test_graph_tokens_keep_the_audience_as_requested(mi_env: LocalTenant, scope: str) -> None:
    scope = scope.replace("GRAPH_ENDPOINT", mi_env.env["GRAPH_ENDPOINT"])
    claims = claims_of(DefaultAzureCredential().get_token(scope).token)
    assert claims["aud"] == scope.removesuffix("/.default")
    assert claims["ver"] == "1.0"


def test_user_assigned_identity_by_client_id(mi_env: LocalTenant) -> None:
    client_id = mi_env.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    token = ManagedIdentityCredential(client_id=client_id).get_token("https://vault.azure.net/.default")
    claims = claims_of(token.token)
    assert claims["appid"] == client_id
    assert claims["xms_mirid"].endswith(
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-graph-functions"
    )


def test_user_assigned_identity_by_object_id_and_resource_id(mi_env: LocalTenant) -> None:
    client_id = mi_env.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    oid = claims_of(
        ManagedIdentityCredential(client_id=client_id).get_token("https://storage.azure.com/.default").token
    )["oid"]
    by_oid = ManagedIdentityCredential(identity_config={"object_id": oid}).get_token(VAULT)
    assert claims_of(by_oid.token)["appid"] == client_id
    sub = subscription_id(mi_env.env["ENTRA_TENANT_ID"])
    res_id = (
        f"/subscriptions/{sub}/resourceGroups/rg-graph-functions/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/id-graph-functions"
    )
    by_res = ManagedIdentityCredential(identity_config={"resource_id": res_id}).get_token(
        "https://vault.azure.net/.default"
    )
    assert claims_of(by_res.token)["appid"] == client_id
    assert msi(mi_env, principal_id=oid).json()["client_id"] == client_id  # principal_id: alias of object_id


def test_unknown_user_assigned_identity_is_the_real_400(mi_env: LocalTenant) -> None:
    with pytest.raises(ClientAuthenticationError) as err:
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001").get_token(
            "https://vault.azure.net/.default"
        )
    assert "Unable to load the proper Managed Identity." in str(err.value)
    resp = msi(mi_env, client_id="00000000-0000-0000-0000-000000000001")
    assert resp.status_code == 400
    body = resp.json()
    assert body["statusCode"] == 400 and body["message"] == "Unable to load the proper Managed Identity."
    assert resp.headers["X-CORRELATION-ID"] == body["correlationId"]


def test_response_shape_of_api_version_2019_08_01(tenant: LocalTenant) -> None:
    resp = msi(tenant)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id", "not_before"}
    assert body["token_type"] == "Bearer" and body["resource"] == "https://vault.azure.net"
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()
    assert int(body["expires_on"]) == claims_of(body["access_token"])["exp"]
    assert int(body["not_before"]) == claims_of(body["access_token"])["nbf"]
    assert body["client_id"] == claims_of(body["access_token"])["appid"]


def test_the_identity_header_is_required_and_checked(tenant: LocalTenant) -> None:
    missing = msi(tenant, header=None)
    assert missing.status_code == 400
    assert "X-IDENTITY-HEADER" in missing.json()["message"]
    wrong = msi(tenant, header="not-the-header")
    assert wrong.status_code == 401 and wrong.json()["statusCode"] == 401
    assert "access_token" not in wrong.text


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"api-version": ""}, 400, "api-version"),
        ({"api-version": "2018-02-01"}, 400, "not supported"),
        ({"resource": ""}, 400, "resource"),
        ({"client_id": "a", "object_id": "b"}, 400, "Only one of"),
        (
            {
                "mi_res_id": "/subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/someone-else"
            },
            400,
            "Unable to load the proper Managed Identity",
        ),
        ({"resource": "https://unknown.example"}, 400, "AADSTS500011"),
        ({"resource": "https://vault.azure.net/.default"}, 400, "AADSTS500011"),
    ],
)
def test_bad_requests(tenant: LocalTenant, params: dict[str, str], status: int, needle: str) -> None:
    resp = msi(tenant, **params)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"statusCode", "message", "correlationId"}
    assert needle in body["message"]


def test_other_paths_and_methods(tenant: LocalTenant) -> None:
    base = tenant.env["IDENTITY_ENDPOINT"]
    imds_path = base.replace("/msi/token", "/metadata/identity/oauth2/token")
    assert requests.get(imds_path, timeout=10).status_code == 404
    upper = requests.get(
        base.replace("/msi/token", "/MSI/token"),
        params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
        headers={"X-IDENTITY-HEADER": tenant.env["IDENTITY_HEADER"]},
        timeout=10,
    )
    assert upper.status_code == 200  # the Windows spelling of IDENTITY_ENDPOINT
    post = requests.post(
        base,
        params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
        headers={"X-IDENTITY-HEADER": tenant.env["IDENTITY_HEADER"]},
        timeout=10,
    )
    assert post.status_code == 405


def test_token_exchange_assertion_for_federated_credentials(tenant: LocalTenant) -> None:
    """The MI token an app presents as client assertion (managed identity as a federated credential)."""
    body = msi(
        tenant,
        resource="api://AzureADTokenExchange",
        client_id=tenant.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"],
    ).json()
    claims = claims_of(body["access_token"])
    assert claims["aud"] == "api://AzureADTokenExchange"
    assert claims["iss"] == f"{tenant.env['ENTRA_AUTHORITY_HOST']}/{tenant.env['ENTRA_TENANT_ID']}/v2.0"
    assert claims["ver"] == "2.0" and claims["azp"] == tenant.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    assert claims["sub"] == claims["oid"]
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"


def test_legacy_2017_protocol(tenant: LocalTenant) -> None:
    base, secret = tenant.env["IDENTITY_ENDPOINT"], tenant.env["IDENTITY_HEADER"]
    params = {
        "api-version": "2017-09-01",
        "resource": "https://vault.azure.net",
        "clientid": tenant.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"],
    }
    resp = requests.get(base, params=params, headers={"secret": secret}, timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type"}
    assert body["expires_on"].endswith(" +00:00") and "/" in body["expires_on"]  # MM/dd/yyyy hh:mm:ss tt
    assert claims_of(body["access_token"])["appid"] == params["clientid"]
    # the 2017 protocol reads the ``secret`` header, not X-IDENTITY-HEADER
    wrong_header = requests.get(base, params=params, headers={"X-IDENTITY-HEADER": secret}, timeout=10)
    assert wrong_header.status_code == 400


def test_managed_identity_as_federated_credential_end_to_end(tenant: LocalTenant) -> None:
    """The app authenticates to the token endpoint with a managed identity's token as its client assertion
    (no secret, no certificate)."""
    for params in ({"client_id": tenant.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]}, {}):  # user, system

        def assertion(params: dict[str, str] = params) -> str:
            return str(msi(tenant, resource="api://AzureADTokenExchange", **params).json()["access_token"])

        app = msal.ConfidentialClientApplication(
            tenant.env["ENTRA_CLIENT_ID"],
            authority=tenant.authority,
            client_credential={"client_assertion": assertion},
            instance_discovery=False,
        )
        result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        assert "access_token" in result, result
        claims = claims_of(result["access_token"])
        assert claims["appid"] == tenant.env["ENTRA_CLIENT_ID"] and claims["appidacr"] == "2"
