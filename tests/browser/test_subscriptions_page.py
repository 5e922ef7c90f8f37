"""The ``/subscriptions`` page in headless Chromium, through devhost (with its HTTPS listener), the local
tenant and Azurite: after the subscriptions timer ran, the demo admin (who holds the operators' role
Reports.Run) sees the users subscription and the scope group's mailboxes with their expiry, status and last
catch-up, under the app's strict CSP; the same data is the JSON of ``/api/subscriptions`` for the page's
cookie and for a service's bearer token; the demo member (no role) gets the 403 page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext

from tests.browser.app_kit import Shots, Watch, admin, member, registered, through_tenant
from tests.integration.ingestion_kit import IngestionHost, subscriptions, wait_for
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ingestion(
    browser_tenant: LocalTenant, azurite: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestionHost]:
    host = IngestionHost(browser_tenant, azurite, Path(tmp_path_factory.mktemp("browser-subscriptions")))
    try:
        host.run_timer()
        wait_for(
            lambda: (
                len([s for s in subscriptions(browser_tenant) if host.https_url in s["notificationUrl"]]) >= 2
                and all(t.get("LastCatchUp") for t in host.targets() if t["RowKey"] != "users")
            ),
            "the timer's subscriptions and first catch-up",
        )
        yield host
    finally:
        host.stop()
        browser_tenant.reset()


@pytest.fixture
def site(browser_tenant: LocalTenant, ingestion: IngestionHost) -> Iterator[LocalTenant]:
    with registered(browser_tenant, ingestion.host) as tenant:
        yield tenant


def test_an_operator_sees_each_subscription_and_its_health(
    site: LocalTenant, ingestion: IngestionHost, context: BrowserContext, shots: Shots
) -> None:
    app = ingestion.host
    page = context.new_page()
    watch = Watch(page)
    page.goto(app.url("/auth/login?next=/subscriptions"))
    through_tenant(page, app, *admin(site))
    assert page.url == app.url("/subscriptions")
    assert "webhook" in page.locator("main p").first.inner_text()
    rows = page.locator("#subscriptions tbody tr")
    texts = [rows.nth(n).inner_text() for n in range(rows.count())]
    assert texts[0].startswith("Directory users") and "users" in texts[0]
    mine = [t for t in texts if site.env["DEMO_USER_USERNAME"].lower() in t.lower()]
    assert len(mine) == 1 and "active" in mine[0] and "mailFolders('inbox')/messages" in mine[0]
    assert "—" not in mine[0].split("active", 1)[1].split("\t")[2]  # a last catch-up is shown
    assert watch.dialogs == [] and not [t for t in watch.console if "Content Security Policy" in t]
    shots.take(page, "subscriptions")

    listed = context.request.get(app.url("/api/subscriptions"))
    assert listed.status == 200
    document = listed.json()
    assert document["mode"] == "webhook" and len(document["value"]) == len(texts)
    assert {"subscriptionId", "expirationDateTime", "status", "lastNotification", "lastCatchUp"} <= set(
        document["value"][0]
    )
    assert "clientState" not in str(document) and "deltaLink" not in str(document)
    caller = Caller(site)
    try:
        reply = requests.get(
            app.url("/api/subscriptions"), headers={"Authorization": f"Bearer {caller.token()}"}, timeout=30
        )
        assert reply.status_code == 200 and reply.json()["value"] == document["value"]
    finally:
        caller.close()


def test_a_member_without_the_operators_role_is_refused(
    site: LocalTenant, ingestion: IngestionHost, context: BrowserContext
) -> None:
    app = ingestion.host
    page = context.new_page()
    page.goto(app.url("/auth/login?next=/subscriptions"))
    through_tenant(page, app, *member(site))
    assert "Reports.Run" in page.locator("main").inner_text()
    response = page.goto(app.url("/subscriptions"))
    assert response is not None and response.status == 403
    assert context.request.get(app.url("/api/subscriptions")).status == 403
