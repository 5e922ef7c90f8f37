"""Entra ID round 2: id_token and access-token claims as Microsoft's claims references list them (scopes,
optional claims, B2B guests, pairwise ``sub``), and Graph tokens in the cloud's unverifiable shape."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import requests

from tests.emulator.entra_flow import (
    JWT_BEARER,
    assertion,
    claims,
    graph_token_claims,
    token_post,
    verify_with_jwks,
)
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

GUEST_UPN = "guest.partner_fabrikam.com#EXT#@contoso.onmicrosoft.com"
GUEST_PASSWORD = "Pw!guest-for-claims-1"


def ropc(tenant: LocalTenant, scope: str, username: str, password: str) -> dict[str, Any]:
    data = {
        "grant_type": "password",
        "client_id": tenant.env["ENTRA_CLIENT_ID"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(tenant),
        "username": username,
        "password": password,
        "scope": scope,
    }
    resp = token_post(tenant, data)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def member(tenant: LocalTenant, scope: str) -> dict[str, Any]:
    return ropc(tenant, scope, tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])


def test_id_token_claims_follow_the_requested_scopes(tenant: LocalTenant) -> None:
    client = tenant.env["ENTRA_CLIENT_ID"]
    bare = verify_with_jwks(tenant, member(tenant, "openid User.Read")["id_token"], client)
    assert {"aud", "iss", "iat", "nbf", "exp", "sub", "tid", "ver", "aio", "uti", "rh", "sid"} <= set(bare)
    assert bare["ver"] == "2.0" and bare["iss"] == f"{tenant.authority}/v2.0"
    # name, preferred_username and oid need the profile scope; email the email scope (MSAL sends neither
    # email nor, here, profile).
    assert not {"name", "preferred_username", "oid", "email", "idp"} & set(bare), bare
    profile = verify_with_jwks(tenant, member(tenant, "openid profile User.Read")["id_token"], client)
    assert profile["preferred_username"] == tenant.env["DEMO_USER_USERNAME"]
    assert profile["name"] and profile["oid"] and "email" not in profile
    with_email = verify_with_jwks(tenant, member(tenant, "openid profile email")["id_token"], client)
    assert with_email["email"] == tenant.env["DEMO_USER_USERNAME"]
    assert bare["sub"] == profile["sub"] == with_email["sub"]


def test_email_optional_claim_puts_email_in_the_id_token(fresh: LocalTenant) -> None:
    client = fresh.env["ENTRA_CLIENT_ID"]
    fresh.control("PATCH", f"/apps/{client}", {"optionalClaims": {"idToken": ["email"]}})
    assert fresh.control("GET", f"/apps/{client}")["optionalClaims"] == {"idToken": ["email"]}
    token = verify_with_jwks(fresh, member(fresh, "openid profile")["id_token"], client)
    assert token["email"] == fresh.env["DEMO_USER_USERNAME"]
    fresh.control("PATCH", f"/apps/{client}", {"optionalClaims": {"idToken": "email"}}, expect=400)


def test_sub_is_stable_per_user_and_application_and_is_not_the_oid(tenant: LocalTenant) -> None:
    first, second = member(tenant, "openid profile User.Read"), member(tenant, "openid profile User.Read")
    admin = ropc(
        tenant,
        "openid profile User.Read",
        tenant.env["DEMO_ADMIN_USERNAME"],
        tenant.env["DEMO_ADMIN_PASSWORD"],
    )
    one, two, other = claims(first["id_token"]), claims(second["id_token"]), claims(admin["id_token"])
    assert one["sub"] == two["sub"] != one["oid"] and other["sub"] != one["sub"]
    at = graph_token_claims(tenant, first["access_token"])
    assert at["oid"] == one["oid"] and at["sub"] == one["sub"]


def test_guest_tokens_name_the_home_tenant_and_their_own_address(fresh: LocalTenant) -> None:
    """ "Understand user tokens in Microsoft Entra B2B collaboration": a guest's token has no upn;
    unique_name and email are the guest's address and idp is the home tenant's issuer."""
    fresh.control("PATCH", f"/users/{requests.utils.quote(GUEST_UPN, safe='')}", {"password": GUEST_PASSWORD})
    client = fresh.env["ENTRA_CLIENT_ID"]
    # Guests sign in with their own address.
    body = ropc(fresh, "openid profile User.Read", "guest.partner@fabrikam.com", GUEST_PASSWORD)
    id_token = verify_with_jwks(fresh, body["id_token"], client)
    assert id_token["email"] == "guest.partner@fabrikam.com"  # by default for guests, without the scope
    assert id_token["preferred_username"] == "guest.partner@fabrikam.com"
    home = id_token["idp"]
    assert home.startswith("https://sts.windows.net/") and fresh.env["ENTRA_TENANT_ID"] not in home
    assert id_token["tid"] == fresh.env["ENTRA_TENANT_ID"]
    at = graph_token_claims(fresh, body["access_token"])
    assert "upn" not in at and at["unique_name"] == at["email"] == "guest.partner@fabrikam.com"
    assert at["idp"] == home and at["iss"] == f"https://sts.windows.net/{fresh.env['ENTRA_TENANT_ID']}/"
    members = member(fresh, "openid profile User.Read")
    assert "idp" not in claims(members["id_token"])
    assert claims(members["access_token"])["upn"] == fresh.env["DEMO_USER_USERNAME"]


@pytest.mark.parametrize("flow", ["client_credentials", "delegated"])
def test_graph_tokens_have_a_header_nonce_and_do_not_verify_against_the_jwks(
    tenant: LocalTenant, flow: str
) -> None:
    """AzureAD/azure-activedirectory-identitymodel-extensions-for-dotnet#609: Graph's tokens carry a nonce
    and their signature is over its SHA-256, so third parties cannot verify them; Graph accepts them."""
    if flow == "client_credentials":
        data = {
            "grant_type": "client_credentials",
            "client_id": tenant.env["ENTRA_CLIENT_ID"],
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(tenant),
            "scope": f"{tenant.env['GRAPH_ENDPOINT']}/.default",
        }
        token = token_post(tenant, data).json()["access_token"]
    else:
        token = member(tenant, "User.Read")["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["nonce"]
    with pytest.raises(jwt.InvalidSignatureError):
        verify_with_jwks(tenant, token, str(claims(token)["aud"]))
    graph_token_claims(tenant, token)  # Graph itself accepts it
    # A tampered nonce is refused by Graph too: the signature covers its hash.
    head, payload, signature = token.split(".")
    forged_header = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(head).replace(header["nonce"].encode(), b"A" * len(header["nonce"]))
    ).decode()
    answer = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users?$top=1",
        headers={"Authorization": f"Bearer {forged_header}.{payload}.{signature}"},
        verify=tenant.ca_cert,
        timeout=30,
    )
    assert answer.status_code == 401, answer.text
    # The app's own API tokens stay verifiable by anyone with the JWKS.
    api = {
        "grant_type": "client_credentials",
        "client_id": tenant.env["CALLER_CLIENT_ID"],
        "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
        "scope": f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default",
    }
    own = token_post(tenant, api).json()["access_token"]
    assert "nonce" not in jwt.get_unverified_header(own)
    verify_with_jwks(tenant, own, tenant.env["ENTRA_CLIENT_ID"])


def test_idtyp_optional_claim_marks_the_apis_app_only_tokens(fresh: LocalTenant) -> None:
    """``idtyp`` is an optional access-token claim "only in app-only access tokens" (optional claims
    reference); an app-only token's ``oid`` and ``sub`` both name the client's service principal."""
    api = fresh.env["ENTRA_CLIENT_ID"]
    plain = verify_with_jwks(fresh, Caller(fresh).token(), api)
    assert "idtyp" not in plain and plain["oid"] == plain["sub"] and "scp" not in plain
    fresh.control("PATCH", f"/apps/{api}", {"optionalClaims": {"accessToken": ["idtyp"]}})
    marked = verify_with_jwks(fresh, Caller(fresh).token(), api)
    assert marked["idtyp"] == "app" and marked["oid"] == marked["sub"] == plain["oid"]
