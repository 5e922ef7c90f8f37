"""What a caller puts in a request never makes the app read Key Vault, and never reaches a log or a page
unchecked: CSRF tokens naming invented key versions, hostile ``error`` values on the sign-in callback.
Through devhost, the local tenant and Azurite; nothing patched."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import FreshHosts
from tests.integration.test_signin_kit import (
    WebBrowser,
    forms_of,
    host_values,
    member,
    query_of,
    web_browser,
)
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

#: Text that must appear in no page and no log line when a caller sends it.
MARKER = "INJECTED-7f3a"


@pytest.fixture(scope="module")
def inputs_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    return module_hosts.start(local_tenant, "signin-inputs")


@pytest.fixture
def web(tenant: LocalTenant, inputs_host: DevHostProcess) -> Iterator[WebBrowser]:
    with web_browser(tenant, inputs_host) as browser:
        yield browser


def session_key_version_reads(tenant: LocalTenant, since: int) -> list[str]:
    """The paths of vault reads of a given session key version (``/secrets/{name}/{version}``)."""
    prefix = f"/secrets/{tenant.env['SESSION_KEY_NAME']}/"
    return [e["path"] for e in tenant.requests_since(since, "vault") if e["path"].startswith(prefix)]


def test_csrf_tokens_naming_invented_key_versions_cost_the_vault_nothing(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    web.sign_in(*member(tenant))
    fields = next(f for f in forms_of(web.get("/auth/logout").text).forms if f["action"] == "/auth/logout")
    good = fields["fields"]["csrf"]
    since = tenant.last_seq()
    for _ in range(20):
        forged = f"{secrets.token_hex(16)}.{good.partition('.')[2]}"
        refused = web.post("/auth/logout", {"csrf": forged}, headers={"Origin": web.host.base_url})
        assert refused.status_code == 403, refused.text[:300]
    assert session_key_version_reads(tenant, since) == []
    assert web.get("/api/me").status_code == 200  # still signed in
    done = web.post("/auth/logout", {"csrf": good}, headers={"Origin": web.host.base_url})
    assert done.status_code == 303


@pytest.mark.parametrize(
    "error",
    [
        f"server_error {MARKER}",
        f"server_error\n{MARKER}",
        f"<b>{MARKER}</b>",
        "x" * 65,
        "",
    ],
    ids=["space", "newline", "markup", "too-long", "empty"],
)
def test_the_callback_shows_and_logs_no_unchecked_error_text(
    web: WebBrowser, tenant: LocalTenant, inputs_host: DevHostProcess, error: str
) -> None:
    start = web.get("/auth/login", params={"next": "/"})
    state = query_of(start.headers["Location"])["state"]
    logged = inputs_host.log_path.read_text(errors="replace")
    answer = web.get(
        "/auth/callback",
        params={"error": error, "error_description": f"AADSTS50105: {MARKER}\r\nforged line", "state": state},
    )
    assert answer.status_code == 400, answer.text[:500]
    assert "<code>sign_in_failed</code>" in answer.text
    assert MARKER not in answer.text and "x" * 65 not in answer.text and "forged line" not in answer.text
    written = inputs_host.log_path.read_text(errors="replace")[len(logged) :]
    assert MARKER not in written and "forged line" not in written and "x" * 65 not in written


def test_a_well_formed_entra_error_is_named_and_its_description_is_not_echoed(
    web: WebBrowser, tenant: LocalTenant, inputs_host: DevHostProcess
) -> None:
    start = web.get("/auth/login", params={"next": "/"})
    state = query_of(start.headers["Location"])["state"]
    logged = inputs_host.log_path.read_text(errors="replace")
    answer = web.get(
        "/auth/callback",
        params={"error": "server_error", "error_description": f"AADSTS50105: {MARKER}", "state": state},
    )
    assert answer.status_code == 400 and "<code>sign_in_failed</code>" in answer.text
    assert "server_error" in answer.text and MARKER not in answer.text
    written = inputs_host.log_path.read_text(errors="replace")[len(logged) :]
    assert "server_error" in written and "AADSTS50105" in written and MARKER not in written


def test_the_admin_consent_callback_shows_no_unchecked_error_text(
    web: WebBrowser, tenant: LocalTenant
) -> None:
    web.sign_in(tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"])
    form = next(
        f for f in forms_of(web.get("/auth/admin-consent").text).forms if f["action"] == "/auth/admin-consent"
    )
    go = web.post("/auth/admin-consent", form["fields"], headers={"Origin": web.host.base_url})
    state = query_of(go.headers["Location"])["state"]
    answer = web.get("/auth/admin-consent/callback", params={"error": f"<i>{MARKER}</i>", "state": state})
    assert answer.status_code == 400 and "<code>sign_in_failed</code>" in answer.text
    assert MARKER not in answer.text


def flow_rows(host: DevHostProcess) -> int:
    from azure.data.tables import TableServiceClient

    values = host_values(host)
    service = TableServiceClient.from_connection_string(values["AzureWebJobsStorage"])
    table = service.create_table_if_not_exists(values.get("AUTH_FLOW_TABLE") or "authflows")
    return sum(1 for _ in table.list_entities(select=["RowKey"]))


def test_anonymous_requests_that_start_a_sign_in_store_nothing(
    web: WebBrowser, inputs_host: DevHostProcess
) -> None:
    before = flow_rows(inputs_host)
    flood = requests.Session()
    for index in range(200):
        path = "/auth/login?next=/" if index % 2 == 0 else "/me"
        answer = flood.get(inputs_host.url(path), allow_redirects=False, timeout=30)
        assert answer.status_code == 302 and "gf_flow=" in answer.headers["Set-Cookie"]
        flood.cookies.clear()
    assert flow_rows(inputs_host) == before  # the flow rides in the browser's cookie
