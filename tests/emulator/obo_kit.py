"""Helpers for the single-page client and on-behalf-of tests: a person's token for the API, the middle
tier."""

from __future__ import annotations

from typing import Any

import msal
import requests

from tests.emulator.entra_flow import Browser, app_certificate, params_of, parse_page, pkce_pair, token_post
from tests.support.tenant import LocalTenant

SPA_REDIRECT = "http://localhost:7071/spa/"
SPA_ORIGIN = "http://localhost:7071"


def api_scope(tenant: LocalTenant) -> str:
    return f"api://{tenant.env['ENTRA_CLIENT_ID']}/access_as_user"


def person_token(tenant: LocalTenant, *, capabilities: list[str] | None = None, admin: bool = False) -> str:
    """A person's access token for the API, as the SPA holds it (:meth:`LocalTenant.person_token`)."""
    return tenant.person_token(capabilities=capabilities, admin=admin)


def middle_tier(
    tenant: LocalTenant, capabilities: list[str] | None = None
) -> msal.ConfidentialClientApplication:
    """Graph Functions as the on-behalf-of middle tier, authenticating with its certificate."""
    cert = app_certificate(tenant)
    return msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=tenant.authority,
        instance_discovery=False,
        client_capabilities=capabilities,
    )


def spa_code(
    browser: Browser, *, pkce: bool = True, claims: str | None = None, **extra: str
) -> dict[str, str]:
    """Run the SPA's authorize request as the demo member (signing in, approving MFA when asked); returns
    ``{"code", "verifier"}``."""
    tenant = browser.tenant
    verifier, challenge = pkce_pair()
    params: dict[str, str] = {
        "client_id": tenant.env["SPA_CLIENT_ID"],
        "redirect_uri": SPA_REDIRECT,
        "scope": f"openid profile offline_access {api_scope(tenant)}",
        "response_mode": "fragment",
        "state": "s1",
        "nonce": "n1",
        **extra,
    }
    if pkce:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    if claims is not None:
        params["claims"] = claims
    page = browser.authorize(**params)
    if page.status_code == 200 and "signin" in parse_page(page.text).ids:
        page = browser.sign_in(page, tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    if page.status_code == 200 and "mfa-approve" in parse_page(page.text).ids:
        page = browser.post_form(page, {"action": "approve"})
    got = params_of(page)
    assert "code" in got, got
    return {"code": got["code"], "verifier": verifier}


def redeem(
    tenant: LocalTenant, code: dict[str, str], *, origin: str | None = SPA_ORIGIN, **over: str
) -> requests.Response:
    """Redeem a SPA code as the browser does (``Origin`` header, PKCE verifier, no secret)."""
    data = {
        "grant_type": "authorization_code",
        "client_id": tenant.env["SPA_CLIENT_ID"],
        "code": code["code"],
        "code_verifier": code["verifier"],
        "redirect_uri": SPA_REDIRECT,
        "scope": f"openid profile offline_access {api_scope(tenant)}",
        "client_info": "1",
        **over,
    }
    return post_token(tenant, {k: v for k, v in data.items() if v != "<drop>"}, origin=origin)


def post_token(tenant: LocalTenant, data: dict[str, str], *, origin: str | None = None) -> requests.Response:
    if origin is None:
        return token_post(tenant, data)
    url = f"{tenant.authority}/oauth2/v2.0/token"
    return requests.post(url, data=data, headers={"Origin": origin}, verify=tenant.ca_cert, timeout=30)


def obo_form(tenant: LocalTenant, assertion: str, scope: str = "User.Read", **over: Any) -> dict[str, str]:
    """A raw on-behalf-of request (client secret given by the caller through ``over``)."""
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "requested_token_use": "on_behalf_of",
        "assertion": assertion,
        "scope": scope,
        **over,
    }
    return {k: str(v) for k, v in data.items() if v != "<drop>"}
