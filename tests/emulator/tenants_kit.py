"""Helpers for the organisations tests: Graph Functions (certificate credential) under any authority."""

from __future__ import annotations

from typing import Any

import msal
import requests

from tests.emulator.entra_flow import app_certificate, claims
from tests.support.tenant import LocalTenant

GRAPH_APP = "00000003-0000-0000-c000-000000000000"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
ADMIN_CONSENT_REDIRECT = "http://localhost:7071/auth/admin-consent/callback"

#: One pooled HTTPS connection per origin for these tests' own calls (a new TLS handshake per call costs
#: about 0.2 s on a loaded 2-core machine). MSAL gets it too: its token cache stays per app, so every
#: ``app_token`` still asks the tenant.
_HTTP = requests.Session()


def app_at(tenant: LocalTenant, segment: str) -> msal.ConfidentialClientApplication:
    """Graph Functions with its certificate, authority ``{host}/{segment}`` (a tenant id or organizations)."""
    cert = app_certificate(tenant)
    return msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=tenant.authority_of(segment),
        instance_discovery=False,
        http_client=_HTTP,
    )


def make_multi_tenant(tenant: LocalTenant) -> None:
    tenant.control(
        "PATCH", f"/apps/{tenant.env['ENTRA_CLIENT_ID']}", {"signInAudience": "AzureADMultipleOrgs"}
    )


def onboard(tenant: LocalTenant, tenant_id: str, roles: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Consent out of band in ``tenant_id`` (the portal's "Grant admin consent")."""
    body = {"roles": roles} if roles is not None else {}
    path = f"/tenants/{tenant_id}/service-principals/{tenant.env['ENTRA_CLIENT_ID']}"
    return dict(tenant.control("PUT", path, body))


def app_token(tenant: LocalTenant, tenant_id: str, scope: str = GRAPH_DEFAULT) -> dict[str, Any]:
    """The raw client-credentials answer of Graph Functions in ``tenant_id`` (a fresh MSAL app: no cache)."""
    return dict(app_at(tenant, tenant_id).acquire_token_for_client([scope]))


def graph(tenant: LocalTenant, token: str, path: str) -> requests.Response:
    return _HTTP.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.ca_cert,
        timeout=30,
    )


def tid_iss(token: str) -> tuple[str, str]:
    body = claims(token)
    return str(body["tid"]), str(body["iss"])
