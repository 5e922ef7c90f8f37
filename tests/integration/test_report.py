"""The daily user report through devhost (the real app), the local tenant and Azurite: the timer fired by the
host, the on-demand queue path, the API, idempotency across two host processes, delta changes, an expired
deltaLink, and the mail read back from a mailbox. Each test has its own report container and queue.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import uuid
from typing import Any

import msal
import pytest
import requests

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.checks import assert_error, call, list_all
from tests.integration.fixtures import FreshHosts, read_vault_secrets
from tests.support.apphost import CLIENT_SECRET_NAME, Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

NEVER = "0 0 6 1 1 *"  # 1 January only: the schedule itself never fires during a test


def report_host(
    hosts: FreshHosts,
    tenant: LocalTenant,
    name: str,
    *,
    container: str | None = None,
    dev_clock: bool = False,
    **overrides: str,
) -> DevHostProcess:
    """A fresh host with its own report container and queue (or the given container); ``dev_clock``: on
    devhost's clock (``tests.support.apphost.app_clock``)."""
    tag = uuid.uuid4().hex[:10]
    settings = {
        "REPORT_CONTAINER": container or f"rep{tag}",
        "REPORT_QUEUE": f"runs-{tag}",
        "REPORT_SCHEDULE": NEVER,
        **overrides,
    }
    return hosts.start(tenant, name, overrides=settings, dev_clock=dev_clock)


def post_run(host: DevHostProcess, token: str, **params: str) -> requests.Response:
    return requests.post(
        host.url("/api/reports/users"),
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def wait_state(
    host: DevHostProcess, token: str, date: str, states: set[str], timeout: float = 60
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        response = call(host, f"/api/reports/users/{date}/status", token)
        if response.status_code == 200:
            seen.update(response.json())
        return seen.get("state") in states

    wait_until(reached, timeout=timeout, what=f"report {date} in {states}")
    return seen


def run_on_demand(host: DevHostProcess, token: str, date: str, **params: str) -> dict[str, Any]:
    """POST a run for ``date``, wait for it to complete, return the summary."""
    response = post_run(host, token, date=date, **params)
    assert response.status_code in (200, 202), response.text
    assert response.headers["Location"] == f"/api/reports/users/{date}/status"
    status = wait_state(host, token, date, {"completed", "failed"})
    assert status["state"] == "completed", status
    summary = call(host, f"/api/reports/users/{date}", token)
    assert summary.status_code == 200, summary.text
    return dict(summary.json())


def download(host: DevHostProcess, token: str, date: str, name: str) -> list[dict[str, str]]:
    """Follow the API's 303 to the blob's SAS URL; the CSV as rows (the BOM is checked and dropped)."""
    response = requests.get(
        host.url(f"/api/reports/users/{date}/{name}"),
        headers={"Authorization": f"Bearer {token}"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert "sp=r&" in location and "se=" in location and "sig=" in location  # read-only, expiring, signed
    blob = requests.get(location, timeout=30)
    assert blob.status_code == 200
    assert blob.headers["content-type"].startswith("text/csv")
    assert f"{name.removesuffix('.csv')}-{date}.csv" in blob.headers["content-disposition"]
    text = blob.content.decode("utf-8")
    assert text.startswith("\ufeff")
    tampered = requests.get(location.replace("sp=r&", "sp=rw&"), timeout=30)
    assert tampered.status_code == 403  # the signature covers the permissions
    return list(csv.DictReader(io.StringIO(text[1:])))


def api_users(host: DevHostProcess, token: str) -> list[dict[str, Any]]:
    users, _ = list_all(host, token, {"top": "999", "select": "id,accountEnabled,userType,department"})
    return users


def invoke_timer(host: DevHostProcess) -> None:
    response = requests.post(host.url("/admin/functions/report_timer"), json={"input": ""}, timeout=10)
    assert response.status_code == 202, response.text


def today_utc() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def test_timer_report_matches_the_tenant_and_runs_once_across_two_hosts(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller
) -> None:
    container = f"rep{uuid.uuid4().hex[:10]}"
    first = report_host(fresh_hosts, tenant, "report-a", container=container)
    second = report_host(fresh_hosts, tenant, "report-b", container=container)
    token = caller.token()
    assert_error(call(first, "/api/reports/users/latest", token), 404, "report_not_found")
    seq = tenant.last_seq()
    before = today_utc()
    invoke_timer(first)
    invoke_timer(second)  # a second instance fires at the same moment
    latest: dict[str, Any] = {}

    def completed() -> bool:
        response = call(first, "/api/reports/users/latest", token)
        if response.status_code == 200:
            latest.update(response.json())
        return bool(latest)

    wait_until(completed, timeout=60, what="the timer's report")
    date = latest["reportDate"]
    assert date in {before, today_utc()}
    assert latest["trigger"] == "timer" and latest["forced"] is False
    # Both hosts' timer runs ended; exactly one listed the directory.
    wait_until(lambda: first.log().count("Executed 'Functions.report_timer'") == 1, what="first host's run")
    wait_until(lambda: second.log().count("Executed 'Functions.report_timer'") == 1, what="second host's run")
    graph = tenant.requests_since(seq, "graph")
    assert sum(1 for entry in graph if entry["path"] == "/v1.0/users/delta") == 1
    assert sum(1 for entry in graph if entry["path"] == "/v1.0/users" and entry["status"] == 200) == 1

    users = api_users(first, token)
    totals = latest["totals"]
    assert totals["users"] == len(users) == 250
    assert totals["disabled"] == sum(1 for u in users if u["accountEnabled"] is False)
    assert totals["guests"] == sum(1 for u in users if u["userType"] == "Guest")
    assert totals["enabled"] + totals["disabled"] == totals["members"] + totals["guests"] == 250
    assert latest["changes"]["mode"] == "baseline" and latest["changes"]["since"] is None
    assert latest["signInActivity"]["included"] is False
    assert "Authentication_RequestFromNonPremiumTenantOrB2CTenant" in latest["signInActivity"]["reason"]
    top = {d["name"]: d["users"] for d in latest["departments"]}
    assert sum(top.values()) == 250
    rows = download(second, token, date, "users.csv")
    assert len(rows) == 250 and {r["id"] for r in rows} == {u["id"] for u in users}
    by_id = {u["id"]: u for u in users}
    for row in rows:
        assert row["accountEnabled"] == ("true" if by_id[row["id"]]["accountEnabled"] else "false")
    assert download(first, token, date, "changes.csv") == []
    # Idempotent: the timer again and an on-demand request without force do nothing.
    invoke_timer(second)
    wait_until(lambda: second.log().count("Executed 'Functions.report_timer'") == 2, what="the second run")
    again = post_run(first, token, date=date)
    assert again.status_code == 200 and again.json()["state"] == "completed"
    assert call(first, f"/api/reports/users/{date}", token).json()["runId"] == latest["runId"]


def page_from_storage(connection_string: str, container: str) -> str:
    """The /reports page rendered from a report container (the route itself comes with sign-in)."""
    from azure.storage.blob import BlobServiceClient

    from shared.report.page import build_model, render_page
    from shared.report.service import ReportService
    from shared.report.store import ReportStore

    store = ReportStore(BlobServiceClient.from_connection_string(connection_string), container)
    service = ReportService(store=store, runner=None, queue=lambda: None)  # type: ignore[arg-type]
    return render_page(build_model(service))


def test_on_demand_runs_list_changes_then_resync_after_an_expired_delta_link(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, azurite: Azurite
) -> None:
    container = f"rep{uuid.uuid4().hex[:10]}"
    host = report_host(fresh_hosts, tenant, "report-delta", container=container)
    token = caller.token()
    baseline = run_on_demand(host, token, "2026-01-01")
    assert baseline["trigger"] == "on-demand" and baseline["changes"]["mode"] == "baseline"
    users = api_users(host, token)
    enabled = [u for u in users if u["accountEnabled"] and u["userType"] == "Member"]
    renamed, disabled, removed = enabled[10]["id"], enabled[11]["id"], enabled[12]["id"]
    added = tenant.control("POST", "/users", {"displayName": "Zoë Nouvelle", "department": "Ops"}, expect=201)
    tenant.control("PATCH", f"/users/{renamed}", {"department": "Finance & Legal", "jobTitle": "Lead"})
    tenant.control("PATCH", f"/users/{disabled}", {"accountEnabled": False})
    tenant.control("DELETE", f"/users/{removed}", expect=204)

    summary = run_on_demand(host, token, "2026-01-02")
    changes = summary["changes"]
    assert (changes["mode"], changes["since"]) == ("delta", "2026-01-01")
    assert (changes["added"], changes["changed"], changes["removed"], changes["disabled"]) == (1, 2, 1, 1)
    assert summary["totals"]["users"] == 250  # one added, one removed
    rows = {row["id"]: row for row in download(host, token, "2026-01-02", "changes.csv")}
    assert set(rows) == {added["id"], renamed, disabled, removed}
    assert rows[added["id"]]["change"] == "added" and rows[added["id"]]["displayName"] == "Zoë Nouvelle"
    assert rows[renamed]["change"] == "changed" and rows[renamed]["changedFields"] == "department;jobTitle"
    assert rows[renamed]["userPrincipalName"]  # looked up: a minimal change carries no name
    assert rows[disabled]["changedFields"] == "accountEnabled" and rows[disabled]["accountEnabled"] == "false"
    assert rows[removed]["change"] == "removed" and rows[removed]["removedReason"] == "changed"

    tenant.control("POST", "/graph/delta/expire", expect=204)
    resynced = run_on_demand(host, token, "2026-01-03")
    assert resynced["changes"]["mode"] == "resync" and "syncStateNotFound" in resynced["changes"]["note"]
    assert resynced["totals"]["users"] == 250
    assert download(host, token, "2026-01-03", "changes.csv") == []
    after = tenant.control("POST", "/users", {"displayName": "After Resync"}, expect=201)
    following = run_on_demand(host, token, "2026-01-04")
    assert following["changes"]["mode"] == "delta" and following["changes"]["added"] == 1
    assert [r["id"] for r in download(host, token, "2026-01-04", "changes.csv")] == [after["id"]]

    # The /reports page's data, read from the same container: latest report, its history, its changes.
    page = page_from_storage(azurite.connection_string, container)
    assert 'id="report-date"' in page and "2026-01-04" in page
    assert page.count("<circle") == 0  # the history is the last 30 days: these reports are from January
    assert "After Resync" in page and "<svg" in page

    # A forced re-run of a past report would replace it with today's directory: refused, the report kept
    # (today's report can be re-run: test_report_reruns.py).
    assert_error(post_run(host, token, date="2026-01-01", force="true"), 409, "report_completed")
    assert call(host, "/api/reports/users/2026-01-01", token).json()["runId"] == baseline["runId"]


def test_api_input_errors(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, norole_caller: Caller
) -> None:
    host = report_host(fresh_hosts, tenant, "report-api")
    token = caller.token()
    assert_error(call(host, "/api/reports/users/2026-13-01", token), 400, "invalid_parameter")
    assert_error(call(host, "/api/reports/users/yesterday", token), 400, "invalid_parameter")
    assert_error(call(host, "/api/reports/users/2020-01-01", token), 404, "report_not_found")
    assert_error(call(host, "/api/reports/users/2020-01-01/status", token), 404, "report_not_found")
    assert_error(call(host, "/api/reports/users/2020-01-01/users.csv", token), 404, "report_not_found")
    assert_error(call(host, "/api/reports/users/2020-01-01/secrets.txt", token), 404, "report_not_found")
    assert_error(call(host, "/api/reports/users/latest", token, {"x": "1"}), 400, "invalid_parameter")
    assert_error(post_run(host, token, force="maybe"), 400, "invalid_parameter")
    assert_error(post_run(host, token, date="2999-01-01"), 400, "invalid_parameter")
    assert_error(call(host, "/api/reports/users/latest"), 401, "unauthenticated")
    assert_error(call(host, "/api/reports/users/latest", norole_caller.token()), 403, "forbidden")
    assert_error(post_run(host, norole_caller.token()), 403, "forbidden")


def _mailbox_messages(tenant: LocalTenant, user: str, subject: str) -> list[dict[str, Any]]:
    secret = read_vault_secrets(tenant, (CLIENT_SECRET_NAME,))[CLIENT_SECRET_NAME]
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=secret,
        authority=tenant.authority,
        instance_discovery=False,
    )
    token = app.acquire_token_for_client([f"{tenant.env['GRAPH_ENDPOINT']}/.default"])["access_token"]
    response = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users/{user}/mailFolders/inbox/messages",
        params={"$filter": f"subject eq '{subject}'", "$select": "subject,body,from"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def test_summary_mail_reaches_the_recipient_once(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller
) -> None:
    recipient, sender = tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_ADMIN_USERNAME"]
    host = report_host(
        fresh_hosts,
        tenant,
        "report-mail",
        REPORT_RECIPIENTS=recipient,
        REPORT_SENDER=sender,
        REPORT_TOP_DEPARTMENTS="100",
        PUBLIC_BASE_URL="https://reports.contoso.example",
    )
    tenant.control("POST", "/users", {"displayName": "Probe", "department": "<b>R&D</b> {{7*7}}"}, expect=201)
    token = caller.token()
    day = today_utc()  # a forced re-run replaces today's report only
    summary = run_on_demand(host, token, day)
    subject = f"Daily user report {day}: {summary['totals']['users']} users"
    found: list[dict[str, Any]] = []

    def delivered() -> bool:
        found[:] = _mailbox_messages(tenant, recipient, subject)
        return bool(found)

    wait_until(delivered, timeout=30, what="the summary mail")  # sendMail delivers asynchronously
    body = found[0]["body"]["content"]
    assert found[0]["body"]["contentType"].lower() == "html"
    assert "&lt;b&gt;R&amp;D&lt;/b&gt; {{7*7}}" in body and "<b>R&D</b>" not in body
    assert "<img" not in body.lower() and "<script" not in body.lower() and "<style" not in body.lower()
    assert f'href="https://reports.contoso.example/reports?date={day}"' in body
    # A retried (forced) run does not mail again.
    run_on_demand(host, token, day, force="true")
    time.sleep(1.0)  # longer than the tenant's sendMail delay (300 ms): a second mail would be there
    assert len(_mailbox_messages(tenant, recipient, subject)) == 1
