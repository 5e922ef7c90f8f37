"""The daily report of several organisations and revoked consent, through devhost, the local tenant and
Azurite: the timer queues one run per served tenant, each organisation's report lands in its own
container with its own directory only; an organisation that deletes the app is marked
``consent_revoked`` at the app's next token request there while the others' reports complete, its people
are refused with ``tenant_consent_revoked``, and onboarding again restores it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.azurite import Azurite
from shared.report import layout
from shared.tenants import storage_prefix
from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.fixtures import FreshHosts
from tests.integration.tenants_kit import (
    browser,
    multi_tenant,
    onboard,
    outcome,
    register,
    registry,
    start_multi_host,
)
from tests.integration.test_signin_kit import host_values
from tests.support.tenant import LocalTenant


@pytest.fixture(scope="module")
def mt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    with multi_tenant(Path(tmp_path_factory.mktemp("multi-tenant-reports"))) as tenant:
        yield tenant


@pytest.fixture(scope="module")
def host(
    mt: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    started = start_multi_host(
        Path(tmp_path_factory.mktemp("multi-host-reports")),
        mt,
        azurite.connection_string,
        REPORT_CONTAINER="mtreports",
        TENANTS_TABLE="mtreporttenants",
        REPORT_QUEUE="mt-report-runs",
    )
    try:
        yield started
    finally:
        started.stop()


def invoke_timer(host: DevHostProcess) -> None:
    response = requests.post(host.url("/admin/functions/report_timer"), json={"input": ""}, timeout=10)
    assert response.status_code == 202, response.text


def summary(host: DevHostProcess, container: str, date: dt.date) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(host_values(host)["AzureWebJobsStorage"])
    try:
        data = service.get_blob_client(container, layout.blob(date, "summary.json")).download_blob().readall()
    except ResourceNotFoundError:
        return None
    return dict(json.loads(data))


def users_csv(host: DevHostProcess, container: str, date: dt.date, name: str) -> str:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(host_values(host)["AzureWebJobsStorage"])
    return service.get_blob_client(container, name).download_blob().readall().decode("utf-8")


def container_of(tenant_id: str) -> str:
    return f"mtreports-{storage_prefix(tenant_id)}"


def org_admin(mt: LocalTenant, tenant_id: str) -> tuple[str, str]:
    org = mt.control("GET", f"/tenants/{tenant_id}")
    return str(org["admin"]["username"]), str(org["admin"]["password"])


def test_the_timer_reports_each_organisation_into_its_own_container(
    mt: LocalTenant, host: DevHostProcess
) -> None:
    env = mt.env
    customer = env["CUSTOMER_TENANT_ID"]
    register(mt, host)
    page = onboard(browser(mt, host), env["CUSTOMER_ADMIN_USERNAME"], env["CUSTOMER_ADMIN_PASSWORD"])
    assert outcome(page) == "onboarded"
    today = dt.datetime.now(dt.UTC).date()
    invoke_timer(host)
    containers = {env["ENTRA_TENANT_ID"]: "mtreports", customer: container_of(customer)}
    done: dict[str, dict[str, Any]] = {}

    def all_completed() -> bool:
        for tid, container in containers.items():
            found = summary(host, container, today)
            if found is not None:
                done[tid] = found
        return len(done) == len(containers)

    wait_until(all_completed, timeout=90, what="every tenant's report")
    customer_users = mt.control("GET", f"/tenants/{customer}")["users"]
    assert done[customer]["totals"]["users"] == customer_users, done[customer]["totals"]
    assert done[env["ENTRA_TENANT_ID"]]["totals"]["users"] != customer_users
    text = users_csv(host, container_of(customer), today, done[customer]["blobPrefix"] + "users.csv")
    assert env["CUSTOMER_DOMAIN"] in text and "@" + env["DEMO_USER_USERNAME"].split("@")[1] not in text


def test_an_organisation_that_deletes_the_app_is_marked_consent_revoked_and_can_come_back(
    mt: LocalTenant, host: DevHostProcess, fresh_hosts: FreshHosts
) -> None:
    env = mt.env
    org = mt.create_organization()
    tid = str(org["tenantId"])
    register(mt, host)
    assert outcome(onboard(browser(mt, host), *org_admin(mt, tid))) == "onboarded"
    assert registry(host)[tid]["Status"] == "active"
    mt.control("DELETE", f"/tenants/{tid}/service-principals/{env['ENTRA_CLIENT_ID']}")

    # A cold instance holds no token of the organisation: its next token request there meets 7000229.
    values = host_values(host)
    # Its own queue, so that it (not the module's host, whose registry read may be 15 s old) runs them.
    cold = fresh_hosts.start(
        mt,
        "cold-revoked",
        overrides={
            **{key: values[key] for key in ("ENTRA_TENANCY", "REPORT_CONTAINER", "TENANTS_TABLE")},
            "REPORT_QUEUE": "mt-report-runs-cold",
        },
    )
    register(mt, cold)
    invoke_timer(cold)
    wait_until(lambda: registry(host)[tid]["Status"] == "consent_revoked", timeout=60, what="consent_revoked")
    assert "7000229" in str(registry(host)[tid]["StatusReason"])
    today = dt.datetime.now(dt.UTC).date()
    # The other organisation's report is not held up by the revoked one.
    wait_until(
        lambda: summary(host, container_of(env["CUSTOMER_TENANT_ID"]), today) is not None,
        timeout=60,
        what="the customer's report",
    )
    assert summary(host, container_of(tid), today) is None

    member = org["member"]
    web = browser(mt, cold)
    mt.control("PUT", f"/tenants/{tid}/service-principals/{env['ENTRA_CLIENT_ID']}", {})
    refused = web.sign_in(str(member["username"]), str(member["password"]))
    assert (
        refused.status_code == 403 and "tenant_consent_revoked" in refused.text and "/onboard" in refused.text
    )
    assert web.session_id is None

    assert outcome(onboard(browser(mt, cold), *org_admin(mt, tid))) == "onboarded"
    assert registry(host)[tid]["Status"] == "active"
    again = browser(mt, cold)
    assert again.sign_in(str(member["username"]), str(member["password"]), "/me").status_code == 303
    assert again.get("/me").status_code == 200
