"""The embedded default reads mail (issue 17, "Also"): production's default scope reads no mailbox, but the
local tenant seeds a "Mail Readers" security group (the demo member and four people with mailboxes, and a
nested group of three more) and ``make run`` sets ``MAILBOX_SCOPE`` to it. Through devhost, the tenant's
sign-in pages and Azurite, the demo admin then reads the demo member's newest mail on ``/mail`` out of the
box, reads a member of the nested group, and is refused for a mailbox outside the group.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import Evidence, FreshHosts
from tests.integration.test_mail_kit import app_graph_token, graph_get
from tests.integration.test_report_people import admin, page_html
from tests.integration.test_signin_kit import WebBrowser, register_app_host
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scope_groups(local_tenant: LocalTenant, evidence: Evidence) -> dict[str, Any]:
    """The seeded groups by name, with their direct members' UPNs (lower-case)."""
    token = app_graph_token(local_tenant, evidence)
    groups = graph_get(local_tenant, token, "groups", **{"$top": "999"})["value"]
    found: dict[str, Any] = {}
    for group in groups:
        if group["displayName"].startswith("Mail Readers"):
            members = graph_get(local_tenant, token, f"groups/{group['id']}/members", **{"$top": "999"})
            found[group["displayName"]] = {
                "id": group["id"],
                "users": {
                    m["userPrincipalName"].lower() for m in members["value"] if "userPrincipalName" in m
                },
                "groups": {
                    m["id"] for m in members["value"] if m.get("@odata.type") == "#microsoft.graph.group"
                },
            }
    return found


@pytest.fixture(scope="module")
def reader(module_hosts: FreshHosts, local_tenant: LocalTenant) -> Iterator[WebBrowser]:
    """The demo admin signed in to a host configured as ``make run`` configures it."""
    host: DevHostProcess = module_hosts.start(
        local_tenant,
        "mail-default-scope",
        overrides={"MAILBOX_SCOPE": local_tenant.env["MAIL_READERS_GROUP_ID"]},
    )
    register_app_host(local_tenant, host)
    browser = WebBrowser(local_tenant, host)
    assert browser.sign_in(*admin(local_tenant), next_path="/mail").status_code == 303
    yield browser
    browser.session.close()


def test_the_local_tenant_seeds_the_mail_readers_scope(
    local_tenant: LocalTenant, scope_groups: dict[str, Any]
) -> None:
    readers, desk = scope_groups["Mail Readers"], scope_groups["Mail Readers - Service Desk"]
    assert readers["id"] == local_tenant.env["MAIL_READERS_GROUP_ID"]
    assert local_tenant.env["DEMO_USER_USERNAME"].lower() in readers["users"] and len(readers["users"]) == 5
    assert readers["groups"] == {desk["id"]} and len(desk["users"]) == 3
    assert local_tenant.env["DEMO_ADMIN_USERNAME"].lower() not in readers["users"] | desk["users"]


def test_the_demo_admin_reads_the_demo_members_mail_out_of_the_box(
    reader: WebBrowser, local_tenant: LocalTenant, scope_groups: dict[str, Any]
) -> None:
    nested = sorted(scope_groups["Mail Readers - Service Desk"]["users"])[0]
    for mailbox in (local_tenant.env["DEMO_USER_USERNAME"], nested):
        page = page_html(reader.get("/mail", params={"mailbox": mailbox}))
        assert "<table" in page and "mailbox_out_of_scope" not in page, mailbox
    refused = page_html(reader.get("/mail", params={"mailbox": local_tenant.env["DEMO_ADMIN_USERNAME"]}), 403)
    assert "mailbox_out_of_scope" in refused and "<table" not in refused
