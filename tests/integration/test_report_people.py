"""The daily report for signed-in people, through devhost, the local tenant's sign-in pages and Azurite: the
reports API with a session cookie (``Reports.Read`` from the ID token; a bearer token wins over the cookie),
the ``/reports`` page (empty state, the latest report with its chart and changes, the 403 page for a person
without the role, a sign-in for nobody), the "run now" form (origin, CSRF token and role checked; the run
queued as the API queues it, its status shown, a forced re-run audited with the person), and storage down.

One host per module produces two reports once (a baseline, then a delta with one added user whose name is
markup); the demo admin (every app role) and the demo member (none) sign in through the tenant's pages. A
person holding ``Reports.Read`` only is a session stored with the app's own SessionStore (the tenant has no
API to assign an app role to the member).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import FreshHosts
from tests.integration.test_report import NEVER, run_on_demand, wait_state
from tests.integration.test_signin_kit import (
    SESSION_COOKIE,
    WebBrowser,
    backdated_session,
    forms_of,
    member,
    register_app_host,
)
from tests.support.apphost import Caller
from tests.support.ports import free_port
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

HOSTILE_NAME = "<img src=x onerror=alert(1)> Zoë"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def admin(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"]


def report_settings() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {"REPORT_CONTAINER": f"rep{tag}", "REPORT_QUEUE": f"runs-{tag}", "REPORT_SCHEDULE": NEVER}


@dataclasses.dataclass
class Site:
    host: DevHostProcess
    admin: WebBrowser
    member: WebBrowser
    reader: str  # a session cookie value: Reports.Read only
    empty_page: requests.Response  # /reports before the first report
    yesterday: str
    today: str


@pytest.fixture(scope="module")
def site(module_hosts: FreshHosts, local_tenant: LocalTenant, caller: Caller) -> Iterator[Site]:
    host = module_hosts.start(local_tenant, "report-people", overrides=report_settings())
    register_app_host(local_tenant, host)
    try:
        people = WebBrowser(local_tenant, host), WebBrowser(local_tenant, host)
        for browser, who in zip(people, (admin(local_tenant), member(local_tenant)), strict=True):
            done = browser.sign_in(*who, next_path="/reports")
            assert done.status_code == 303 and done.headers["Location"] == "/reports", done.text[:300]
        empty = people[0].get("/reports")
        from shared.signin.sessions import SessionClaims

        claims = SessionClaims(
            oid=str(uuid.uuid4()),
            tid=local_tenant.env["ENTRA_TENANT_ID"],
            name="Report Reader",
            preferred_username="reader@contoso.example",
            roles=("Reports.Read",),
        )
        reader = backdated_session(local_tenant, host, age=dt.timedelta(minutes=1), claims=claims)
        today = dt.datetime.now(dt.UTC).date()
        yesterday = (today - dt.timedelta(days=1)).isoformat()
        token = caller.token()
        run_on_demand(host, token, yesterday)
        local_tenant.control("POST", "/users", {"displayName": HOSTILE_NAME, "department": "Ops"}, expect=201)
        run_on_demand(host, token, today.isoformat())
        yield Site(host, *people, reader, empty, yesterday, today.isoformat())
    finally:
        local_tenant.reset()  # the added user and the registered URIs


def page_html(response: requests.Response, status: int = 200) -> str:
    """An HTML page of the framework: status, strict CSP, one <main>, no script or inline style."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    html = response.text
    assert html.count("<main") == 1 and "<script" not in html and "style=" not in html
    return html


def csrf_of(html: str) -> str:
    return next(f["fields"]["csrf"] for f in forms_of(html).forms if "csrf" in f["fields"])


def test_the_page_before_the_first_report_is_an_empty_state(site: Site) -> None:
    html = page_html(site.empty_page)
    assert 'id="no-report"' in html and "<svg" not in html and 'id="run-form"' in html


def test_a_person_with_reports_read_uses_the_api_with_the_cookie(site: Site) -> None:
    latest = site.admin.get("/api/reports/users/latest")
    assert latest.status_code == 200, latest.text
    assert latest.json()["reportDate"] == site.today and latest.json()["changes"]["added"] == 1
    assert site.admin.get(f"/api/reports/users/{site.yesterday}").json()["changes"]["mode"] == "baseline"
    assert site.admin.get(f"/api/reports/users/{site.today}/status").json()["state"] == "completed"
    link = site.admin.get(f"/api/reports/users/{site.today}/changes.csv")
    assert link.status_code == 303 and "sig=" in link.headers["Location"]
    csv_text = requests.get(link.headers["Location"], timeout=30).content.decode("utf-8")
    assert HOSTILE_NAME in csv_text and csv_text.startswith("\ufeffchange,")
    reader = requests.get(
        site.host.url(f"/api/reports/users/{site.today}/users.csv"),
        cookies={SESSION_COOKIE: site.reader},
        allow_redirects=False,
        timeout=30,
    )
    assert reader.status_code == 303, reader.text


def test_the_api_refuses_people_without_the_role_or_a_session(site: Site) -> None:
    for path in ("/api/reports/users/latest", f"/api/reports/users/{site.today}/users.csv"):
        assert_error(site.member.get(path), 403, "forbidden")
        assert_error(call(site.host, path), 401, "unauthenticated")
        expired = requests.get(site.host.url(path), cookies={SESSION_COOKIE: "x" * 43}, timeout=30)
        assert_error(expired, 401, "session_expired")
    # A signed-in person cannot queue runs through the JSON API (no CSRF check there): services only.
    posted = site.admin.session.post(site.host.url("/api/reports/users"), timeout=30)
    assert_error(posted, 401, "unauthenticated")


def test_a_bearer_token_wins_over_the_cookie(site: Site, caller: Caller, norole_caller: Caller) -> None:
    path = "/api/reports/users/latest"
    bearer = {"Authorization": f"Bearer {norole_caller.token()}"}
    assert_error(site.admin.get(path, headers=bearer), 403, "forbidden")  # the admin's cookie is ignored
    assert_error(
        site.admin.get(path, headers={"Authorization": "Bearer not-a-token"}), 401, "unauthenticated"
    )
    good = site.member.get(path, headers={"Authorization": f"Bearer {caller.token()}"})
    assert good.status_code == 200 and good.json()["reportDate"] == site.today


def test_the_page_shows_the_report_chart_changes_and_links(site: Site) -> None:
    html = page_html(site.admin.get("/reports"))
    assert 'id="report-date"' in html and site.today in html
    assert html.count("<circle") == 2  # two reports in the last 30 days
    assert "&lt;img src=x onerror=alert(1)&gt; Zoë" in html and "<img" not in html
    assert f'href="/api/reports/users/{site.today}/changes.csv"' in html
    assert '<a href="/reports" aria-current="page">Reports</a>' in html
    assert 'href="/mail"' in html and 'href="/audit"' in html  # the admin holds those roles too
    assert f'<a href="/reports?date={site.yesterday}">{site.yesterday}</a>' in html  # the other report
    # The daily mail links to /reports?date=D: that date's report, its changes (a baseline has none).
    earlier = page_html(site.admin.get("/reports", params={"date": site.yesterday}))
    assert f"<strong>{site.yesterday}</strong>" in earlier and 'id="changes"' not in earlier
    assert f'href="/api/reports/users/{site.yesterday}/users.csv"' in earlier
    assert_error_page(site.admin.get("/reports", params={"date": "2020-01-01"}), 404, "report_not_found")
    reader = requests.get(site.host.url("/reports"), cookies={SESSION_COOKIE: site.reader}, timeout=30)
    reader_html = page_html(reader)
    assert 'id="report-date"' in reader_html and 'id="run-form"' not in reader_html  # no Reports.Run
    assert 'href="/mail"' not in reader_html and 'href="/audit"' not in reader_html


def test_the_page_refuses_a_person_without_the_role_and_signs_in_nobody(site: Site) -> None:
    html = page_html(site.member.get("/reports"), status=403)
    assert "<code>forbidden</code>" in html and "Reports.Read" in html and 'id="report-date"' not in html
    assert ">Reports</a>" not in html  # no nav link either
    # The refusal still shows who is signed in, with the sign-out form (not a "Sign in" button).
    assert "Signed in as" in html and 'action="/auth/logout"' in html and "/auth/login?next=" not in html
    anonymous = requests.get(site.host.url("/reports"), allow_redirects=False, timeout=30)
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["Location"].startswith(site.admin.tenant.env["ENTRA_AUTHORITY_HOST"])
    assert_error_page(site.admin.get("/reports", params={"run": "yesterday"}), 400, "invalid_parameter")
    assert_error_page(site.admin.get("/reports", params={"x": "1"}), 400, "invalid_parameter")


def assert_error_page(response: requests.Response, status: int, code: str) -> None:
    html = page_html(response, status=status)
    assert f"<code>{code}</code>" in html, html[:800]


def test_the_run_form_checks_origin_token_and_role(site: Site) -> None:
    origin = {"Origin": site.host.base_url}
    token = csrf_of(page_html(site.admin.get("/reports")))
    run_id = site.admin.get(f"/api/reports/users/{site.yesterday}/status").json()["runId"]
    form = {"csrf": token, "date": site.yesterday, "force": "true"}
    assert_error_page(site.admin.post("/reports/run", form), 403, "cross_origin_request")
    evil = {"Origin": "http://evil.example"}
    assert_error_page(site.admin.post("/reports/run", form, headers=evil), 403, "cross_origin_request")
    wrong = {**form, "csrf": "A" * 43}
    assert_error_page(site.admin.post("/reports/run", wrong, headers=origin), 403, "csrf_token_invalid")
    future = {**form, "date": "2999-01-01"}
    assert_error_page(site.admin.post("/reports/run", future, headers=origin), 400, "invalid_parameter")
    reader_page = requests.get(site.host.url("/reports"), cookies={SESSION_COOKIE: site.reader}, timeout=30)
    reader_form = {"csrf": csrf_of(reader_page.text), "date": site.yesterday}
    refused = requests.post(
        site.host.url("/reports/run"),
        data=reader_form,
        headers=origin,
        cookies={SESSION_COOKIE: site.reader},
        allow_redirects=False,
        timeout=30,
    )
    assert_error_page(refused, 403, "forbidden")
    # Someone else's token (the reader's) does not pass for the admin's session.
    stolen = {**form, "csrf": reader_form["csrf"]}
    assert_error_page(site.admin.post("/reports/run", stolen, headers=origin), 403, "csrf_token_invalid")
    bad_force = {**form, "force": "yes"}
    assert_error_page(site.admin.post("/reports/run", bad_force, headers=origin), 400, "invalid_parameter")
    # None of the refused (forced) posts queued anything: the date's run is the same completed one.
    status = site.admin.get(f"/api/reports/users/{site.yesterday}/status").json()
    assert (status["state"], status["runId"]) == ("completed", run_id)


def test_run_now_queues_the_run_shows_its_status_and_audits_a_forced_one(site: Site, caller: Caller) -> None:
    origin = {"Origin": site.host.base_url}
    token = csrf_of(page_html(site.admin.get("/reports")))
    before = site.admin.get(f"/api/reports/users/{site.yesterday}").json()["runId"]
    # Already complete, not forced: nothing queued; the page shows the completed run.
    again = site.admin.post("/reports/run", {"csrf": token, "date": site.yesterday}, headers=origin)
    assert again.status_code == 303 and again.headers["Location"] == f"/reports?run={site.yesterday}"
    shown = page_html(site.admin.get(again.headers["Location"]))
    assert '<strong id="run-state">completed</strong>' in shown
    # A past report is never replaced (it would get today's directory): the 409 page, nothing queued.
    past = {"csrf": token, "date": site.yesterday, "force": "true"}
    assert_error_page(site.admin.post("/reports/run", past, headers=origin), 409, "report_completed")
    assert site.admin.get(f"/api/reports/users/{site.yesterday}").json()["runId"] == before
    today = site.admin.get(f"/api/reports/users/{site.today}").json()["runId"]
    forced = {"csrf": token, "date": site.today, "force": "true"}
    answer = site.admin.post("/reports/run", forced, headers=origin)
    assert answer.status_code == 303
    status_page = page_html(site.admin.get(answer.headers["Location"]))
    assert "(forced re-run)" in status_page
    assert any(f'id="run-state">{s}<' in status_page for s in ("queued", "running", "completed"))
    done = wait_state(site.host, caller.token(), site.today, {"completed", "failed"})
    assert done["state"] == "completed" and done["forced"] is True and done["runId"] != today
    oid = site.admin.get("/api/me").json()["id"]
    wait_until(
        lambda: f"AUDIT forced re-run of report {site.today} by person {oid}" in site.host.log(),
        what="the audit line",
    )
    assert f"requested from the page by person {oid} (forced True)" in site.host.log()


def storage_host(
    fresh_hosts: FreshHosts, tenant: LocalTenant, azurite: Any, dead_service: str
) -> tuple[DevHostProcess, dict[str, str]]:
    """A host whose ``dead_service`` endpoint (Blob or Queue) is a closed port, the other services live;
    and the cookie of a person holding Reports.Read and Reports.Run (stored with the app's SessionStore)."""
    live = dict(part.split("=", 1) for part in azurite.connection_string.split(";") if "=" in part)
    account = live["AccountName"]
    live[f"{dead_service}Endpoint"] = f"http://127.0.0.1:{free_port()}/{account}"
    storage = (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={live['AccountKey']};"
        f"BlobEndpoint={live['BlobEndpoint']};QueueEndpoint={live['QueueEndpoint']};"
        f"TableEndpoint={live['TableEndpoint']};"
    )
    host = fresh_hosts.start(
        tenant,
        f"report-people-no{dead_service.lower()}",
        overrides={**report_settings(), "AzureWebJobsStorage": storage},
    )
    from shared.signin.sessions import SessionClaims

    claims = SessionClaims(
        oid=str(uuid.uuid4()), tid=tenant.env["ENTRA_TENANT_ID"], roles=("Reports.Read", "Reports.Run")
    )
    session = backdated_session(tenant, host, age=dt.timedelta(minutes=1), claims=claims)
    return host, {SESSION_COOKIE: session}


def kill(host: DevHostProcess) -> None:
    # A graceful stop even with a dead storage endpoint: devhost's timer monitor and queue listener give up
    # on it within the SIGTERM grace period (stop() raises if the host needed killing).
    host.stop()


def test_blob_storage_down_is_the_friendly_503_page_for_concurrent_readers(
    fresh_hosts: FreshHosts, local_tenant: LocalTenant, azurite: Any
) -> None:
    """Blob storage unreachable (sessions still readable): the page, for four people at once, and the API
    answer 503 ``storage_unavailable`` with Retry-After, never a trace."""
    host, cookie = storage_host(fresh_hosts, local_tenant, azurite, "Blob")
    try:
        # The API's reader joins the four page readers: each answer waits out the storage SDK's own retries
        # (about 8 s of real back-off), once for all five rather than once more after the pages.
        with ThreadPoolExecutor(5) as pool:
            api_answer = pool.submit(
                requests.get, host.url("/api/reports/users/latest"), cookies=cookie, timeout=60
            )
            pages = list(
                pool.map(lambda _: requests.get(host.url("/reports"), cookies=cookie, timeout=60), range(4))
            )
            api = api_answer.result()
        for page in pages:
            assert_error_page(page, 503, "storage_unavailable")
            assert page.headers["Retry-After"] and AZURITE_KEY not in page.text
        assert_error(api, 503, "storage_unavailable")
        assert "Traceback" not in host.log()
    finally:
        kill(host)


def test_queue_down_makes_run_now_a_503_page_and_the_page_still_reads(
    fresh_hosts: FreshHosts, local_tenant: LocalTenant, azurite: Any
) -> None:
    host, cookie = storage_host(fresh_hosts, local_tenant, azurite, "Queue")
    try:
        page = requests.get(host.url("/reports"), cookies=cookie, timeout=60)
        html = page_html(page)
        assert 'id="no-report"' in html and 'id="run-form"' in html
        posted = requests.post(
            host.url("/reports/run"),
            data={"csrf": csrf_of(html), "date": dt.datetime.now(dt.UTC).date().isoformat()},
            headers={"Origin": host.base_url},
            cookies=cookie,
            allow_redirects=False,
            timeout=60,
        )
        assert_error_page(posted, 503, "storage_unavailable")
        assert posted.headers["Retry-After"] and "Traceback" not in host.log()
        # Nothing was queued, so no "queued" status may stand in for the run that never comes.
        today = dt.datetime.now(dt.UTC).date().isoformat()
        status = requests.get(host.url(f"/api/reports/users/{today}/status"), cookies=cookie, timeout=60)
        assert_error(status, 404, "report_not_found")
    finally:
        kill(host)
