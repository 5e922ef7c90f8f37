"""Cross-site navigations that would read mail (issue 17, finding 3), through devhost, the local tenant's
sign-in pages and Azurite: another site's link or redirect to ``/mail?mailbox=victim`` (or the messages API)
rides along with the reader's ``SameSite=Lax`` session cookie. The browser names such a request with
``Sec-Fetch-Site`` (``cross-site``, ``same-site``); the app then reads nothing, records nothing, and the page
offers a same-origin "Continue" link to the same address. The app's own links (``same-origin``), typed
addresses and bookmarks (``none``) read as before, and a bearer caller is not concerned.
"""

from __future__ import annotations

import html as html_lib
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import FreshHosts
from tests.integration.test_mail_kit import Directory, audit_records, directory
from tests.integration.test_report_people import admin, page_html
from tests.integration.test_signin_kit import WebBrowser, register_app_host
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

AUDIT_TABLE = f"audit{uuid.uuid4().hex[:8]}"
__all__ = ["directory"]  # a fixture, used by name


@pytest.fixture(scope="module")
def host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(
        local_tenant, "mail-cross-site", overrides={"MAILBOX_SCOPE": "*", "AUDIT_TABLE": AUDIT_TABLE}
    )


@pytest.fixture(scope="module")
def reader(host: DevHostProcess, local_tenant: LocalTenant) -> Iterator[WebBrowser]:
    """The demo admin (who holds Mail.Read.All), signed in to the pages."""
    register_app_host(local_tenant, host)
    browser = WebBrowser(local_tenant, host)
    done = browser.sign_in(*admin(local_tenant), next_path="/mail")
    assert done.status_code == 303, done.text[:300]
    yield browser
    browser.session.close()


def site(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Sec-Fetch-Site": value}


@pytest.mark.parametrize("origin", ["cross-site", "same-site", "CROSS-SITE"])
def test_a_mail_page_opened_from_another_site_reads_nothing_and_offers_to_continue(
    host: DevHostProcess,
    local_tenant: LocalTenant,
    reader: WebBrowser,
    caller: Caller,
    directory: Directory,
    origin: str,
) -> None:
    victim = directory.member_upn
    seq = local_tenant.last_seq()
    for path, params in (
        ("/mail", {"mailbox": victim}),
        ("/mail/message", {"mailbox": victim, "id": "AAMkAG0000000000000001"}),
    ):
        response = reader.get(path, params=params, headers=site(origin))
        page = page_html(response, status=403)
        assert "cross_site_navigation" in page and "Nothing was read" in page
        continue_href = html_lib.escape(f"{path}?{urlencode(params)}")
        assert f'href="{continue_href}"' in page and ">Continue<" in page  # same origin: a relative link
        assert "<table" not in page
        assert audit_records(host, caller, response) == []
    assert local_tenant.requests_since(seq, "graph") == []  # no owner lookup, no read


@pytest.mark.parametrize("origin", ["same-origin", "none", None])
def test_the_apps_own_links_typed_addresses_and_old_browsers_read_as_before(
    host: DevHostProcess, reader: WebBrowser, caller: Caller, directory: Directory, origin: str | None
) -> None:
    response = reader.get("/mail", params={"mailbox": directory.member_upn}, headers=site(origin))
    page = page_html(response)
    assert "<table" in page and "cross_site_navigation" not in page
    (record,) = audit_records(host, caller, response)
    assert record["outcome"] == "allowed" and record["channel"] == "page"


def test_the_form_itself_opens_from_another_site(reader: WebBrowser) -> None:
    """Nothing is read without a mailbox: a link to the bare page from elsewhere just shows the form."""
    assert "cross_site_navigation" not in page_html(reader.get("/mail", headers=site("cross-site")))


def test_the_messages_api_on_the_cookie_refuses_another_sites_navigation(
    host: DevHostProcess, local_tenant: LocalTenant, reader: WebBrowser, caller: Caller, directory: Directory
) -> None:
    path = f"/api/users/{directory.member_upn}/messages"
    seq = local_tenant.last_seq()
    refused = reader.get(path, headers=site("cross-site"))
    assert_error(refused, 403, "cross_site_navigation")
    assert audit_records(host, caller, refused) == []
    assert local_tenant.requests_since(seq, "graph") == []
    assert reader.get(path, headers=site("same-origin")).status_code == 200
    # A bearer caller sent its token on purpose: the header does not concern it.
    bearer = call(host, path, caller.token(), headers=site("cross-site"))
    assert bearer.status_code == 200, bearer.text[:300]
    assert requests.get(host.url(path), headers=site("cross-site"), timeout=30).status_code == 401
