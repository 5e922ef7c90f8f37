"""Helpers of the multi-tenant integration tests (no tests here): a local tenant whose Graph Functions
registration is multi-tenant (``--sign-in-audience AzureADMultipleOrgs``) with the seeded customer
(Northwind) and one more organisation, a devhost app with ``ENTRA_TENANCY=multi``, the scripted browser
walks of onboarding, and direct reads of the tenants table (what an operator sees on ``/tenants``).

Nothing is patched: the app runs under devhost, Entra is the local tenant, the registry lives in Azurite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.test_signin_kit import WebBrowser, forms_of, host_values
from tests.support.apphost import start_app_host
from tests.support.tenant import LocalTenant, trusted_tenant

ORGANISATIONS = 2  # the customer (Northwind) and org002


@contextlib.contextmanager
def multi_tenant(tmp: Path) -> Iterator[LocalTenant]:
    """A local tenant with a multi-tenant registration and :data:`ORGANISATIONS` customer organisations."""
    with trusted_tenant(
        tmp,
        users=20,
        extra_args=("--sign-in-audience", "AzureADMultipleOrgs", "--tenants", str(ORGANISATIONS)),
    ) as tenant:
        yield tenant


def start_multi_host(tmp: Path, tenant: LocalTenant, storage: str, **overrides: str) -> DevHostProcess:
    """devhost serving the app with ``ENTRA_TENANCY=multi``; its URIs registered on the registration."""
    host = start_app_host(tmp, tenant.env, storage, overrides={"ENTRA_TENANCY": "multi", **overrides})
    register(tenant, host)
    return host


def register(tenant: LocalTenant, host: DevHostProcess) -> None:
    """Register the host's sign-in, onboarding and post-logout URIs (kept across resets: re-run after)."""
    app_id = tenant.env["ENTRA_CLIENT_ID"]
    current = tenant.control("GET", f"/apps/{app_id}")
    redirects = list(current["redirectUris"])
    for path in ("/auth/callback", "/auth/admin-consent/callback", "/onboard/callback"):
        if host.url(path) not in redirects:
            redirects.append(host.url(path))
    logout = list(current["postLogoutRedirectUris"])
    if host.url("/") not in logout:
        logout.append(host.url("/"))
    tenant.control("PATCH", f"/apps/{app_id}", {"redirectUris": redirects, "postLogoutRedirectUris": logout})


def browser(tenant: LocalTenant, host: DevHostProcess) -> WebBrowser:
    return WebBrowser(tenant, host)


def start_onboarding(web: WebBrowser, group: str = "") -> requests.Response:
    """``POST /onboard`` from the app's own page (``group``: the mailbox group chosen); returns the
    tenant's sign-in page."""
    page = web.get("/onboard")
    assert page.status_code == 200, page.text[:300]
    form = {"start": "1", "mailbox_group": group}
    started = web.post("/onboard", form, headers={"Origin": web.host.base_url})
    assert started.status_code == 303, (started.status_code, started.text[:300])
    assert "/organizations/oauth2/v2.0/authorize" in started.headers["Location"]
    return web.get(started.headers["Location"])


def onboard(
    web: WebBrowser, username: str, password: str, *, accept: bool = True, group: str = ""
) -> requests.Response:
    """The whole walk: sign in at /organizations, the app's redirect to that tenant's admin consent, the
    consent page, back to the app; returns the app's final page."""
    back = web.through_tenant(start_onboarding(web, group), username, password)
    to_consent = web.get(back.headers["Location"])
    if to_consent.status_code != 303:
        return to_consent  # the app ended the walk after the sign-in (home tenant, an error page)
    assert "/v2.0/adminconsent?" in to_consent.headers["Location"], to_consent.headers["Location"]
    answer = web.through_tenant(web.get(to_consent.headers["Location"]), username, password, accept=accept)
    return web.get(answer.headers["Location"])


def outcome(page: requests.Response) -> str:
    """The ``data-outcome`` of an onboarding page."""
    marker = 'data-outcome="'
    start = page.text.find(marker)
    assert start >= 0, page.text[:800]
    return page.text[start + len(marker) : page.text.index('"', start + len(marker))]


def registry(host: DevHostProcess) -> dict[str, dict[str, Any]]:
    """The tenants table's rows by tenant id (what the operator's page lists)."""
    from azure.data.tables import TableServiceClient

    values = host_values(host)
    table = TableServiceClient.from_connection_string(values["AzureWebJobsStorage"]).get_table_client(
        values.get("TENANTS_TABLE") or "tenants"
    )
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return {str(row["RowKey"]): dict(row) for row in table.list_entities()}
    except ResourceNotFoundError:  # no table yet: nothing onboarded
        return {}


def csrf_of(page: requests.Response) -> str:
    for form in forms_of(page.text).forms:
        if "csrf" in form["fields"]:
            return str(form["fields"]["csrf"])
    raise AssertionError("no CSRF field on the page")
