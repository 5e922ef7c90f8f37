"""Federated identity credentials: a managed-identity token of this tenant (audience
``api://AzureADTokenExchange``, from the identity endpoint) as Graph Functions' client assertion.

Depends on the managed-identity endpoint (``emulator/managed_identity/endpoint.py``) being served on
``IDENTITY_ENDPOINT``.
"""

from __future__ import annotations

import msal
import requests

from tests.emulator.entra_flow import JWT_BEARER, assert_aadsts, claims, token_post
from tests.support.tenant import LocalTenant

EXCHANGE = "api://AzureADTokenExchange"


def mi_token(tenant: LocalTenant, resource: str = EXCHANGE, client_id: str | None = None) -> str:
    params = {"api-version": "2019-08-01", "resource": resource}
    if client_id:
        params["client_id"] = client_id
    resp = requests.get(
        tenant.env["IDENTITY_ENDPOINT"],
        params=params,
        headers={"X-IDENTITY-HEADER": tenant.env["IDENTITY_HEADER"]},
        verify=tenant.ca_cert,
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def fic_form(tenant: LocalTenant, token: str, client_id: str | None = None) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id or tenant.env["ENTRA_CLIENT_ID"],
        "scope": f"{tenant.env['GRAPH_ENDPOINT']}/.default",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": token,
    }


def test_system_assigned_identity_through_msal(tenant: LocalTenant) -> None:
    token = mi_token(tenant)
    body = claims(token)
    assert body["iss"] == f"{tenant.authority}/v2.0"
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential={"client_assertion": lambda: token},
        authority=tenant.authority,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([f"{tenant.env['GRAPH_ENDPOINT']}/.default"])
    assert "access_token" in result, result
    at = claims(result["access_token"])
    assert at["appid"] == tenant.env["ENTRA_CLIENT_ID"] and at["appidacr"] == "2"
    assert at["roles"] == ["GroupMember.Read.All", "Mail.Read", "Mail.Send", "User.Read.All"]


def test_user_assigned_identity_and_reuse(tenant: LocalTenant) -> None:
    token = mi_token(tenant, client_id=tenant.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"])
    for _ in range(2):  # azure-identity caches MI tokens for hours: the same assertion comes back
        assert token_post(tenant, fic_form(tenant, token)).status_code == 200


def test_federated_mismatches(tenant: LocalTenant) -> None:
    token = mi_token(tenant)
    caller = tenant.env["CALLER_CLIENT_ID"]
    assert_aadsts(token_post(tenant, fic_form(tenant, token, caller)), 401, "invalid_client", 700211)
    vault_token = mi_token(tenant, resource="https://vault.azure.net")  # v1 issuer: no credential trusts it
    assert_aadsts(token_post(tenant, fic_form(tenant, vault_token)), 401, "invalid_client", 700211)
    api_token = mi_token(
        tenant, resource=f"api://{tenant.env['ENTRA_CLIENT_ID']}"
    )  # v2 issuer, wrong audience
    assert_aadsts(token_post(tenant, fic_form(tenant, api_token)), 401, "invalid_client", 700212)
    # A token for the exchange audience whose subject is an app, not a trusted managed identity.
    app_token = token_post(
        tenant,
        {
            "grant_type": "client_credentials",
            "client_id": caller,
            "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
            "scope": f"{EXCHANGE}/.default",
        },
    ).json()["access_token"]
    assert_aadsts(token_post(tenant, fic_form(tenant, app_token)), 401, "invalid_client", 700213)
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert_aadsts(token_post(tenant, fic_form(tenant, tampered)), 401, "invalid_client", 700027)
