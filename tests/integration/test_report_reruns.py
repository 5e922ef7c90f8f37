"""Forced re-runs and storage failures mid-run (issue 17, finding 8), through devhost, the local tenant and
Azurite, with the blob endpoint behind a small fault-injecting proxy on loopback.

* A forced re-run of a past date whose report completed is refused (409 ``report_completed``): the
  directory can only be read as it is today, so it would replace that day's report with today's.
* A forced re-run of today writes under its own run prefix and switches the report at the summary: when
  the summary write fails, or a CSV's block list cannot be committed, the run ends ``failed`` and the
  report (summary, CSVs) is the one before, unmixed. The next run completes and switches.
"""

from __future__ import annotations

import datetime as dt
import http.client
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from devhost.azurite import Azurite, connection_string
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import FreshHosts
from tests.integration.test_report import download, post_run, report_host, run_on_demand, wait_state
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

Rule = Callable[[str, str], bool]  # (method, path?query) -> fail this request
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultyBlobs:
    """A reverse proxy to Azurite's blob endpoint that answers 403 to the requests a rule matches (403:
    the SDK does not retry it, so the failure reaches the app at once)."""

    def __init__(self, azurite: Azurite) -> None:
        self.azurite = azurite
        self.rule: Rule | None = None
        self.failed: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                rule = proxy.rule
                if rule is not None and rule(self.command, self.path):
                    proxy.failed.append(f"{self.command} {self.path}")
                    payload = (
                        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code>'
                        b"<Message>This request is not authorized to perform this operation.</Message>"
                        b"</Error>"
                    )
                    self.send_response(403, "This request is not authorized to perform this operation.")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("x-ms-error-code", "AuthorizationFailure")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(azurite.host, azurite.blob_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status, answer.reason)
                    for name, value in answer.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - the names the base calls

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def connection_string(self) -> str:
        port = self._server.server_address[1]
        return connection_string(
            self.azurite.host, int(port), self.azurite.queue_port, self.azurite.table_port
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def faulty(azurite: Azurite) -> Iterator[FaultyBlobs]:
    proxy = FaultyBlobs(azurite)
    yield proxy
    proxy.close()


def summary_put(method: str, target: str) -> bool:
    return method == "PUT" and urlsplit(target).path.endswith("/summary.json")


def block_list_put(method: str, target: str) -> bool:
    return method == "PUT" and "comp=blocklist" in urlsplit(target).query


def dates() -> tuple[str, str]:
    today = dt.datetime.now(dt.UTC).date()
    return (today - dt.timedelta(days=1)).isoformat(), today.isoformat()


def test_a_forced_rerun_of_a_completed_past_report_is_refused(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller
) -> None:
    host = report_host(fresh_hosts, tenant, "report-past-rerun")
    token = caller.token()
    past, _ = dates()
    before = run_on_demand(host, token, past)
    tenant.control("POST", "/users", {"displayName": f"Later {uuid.uuid4().hex[:6]}"}, expect=201)
    refused = post_run(host, token, date=past, force="true")
    error = assert_error(refused, 409, "report_completed")
    assert past in error["message"] and "today" in error["message"]
    assert call(host, f"/api/reports/users/{past}", token).json() == before  # kept as it was
    assert call(host, f"/api/reports/users/{past}/status", token).json()["runId"] == before["runId"]


def test_a_failed_forced_rerun_of_today_leaves_the_report_whole(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, faulty: FaultyBlobs
) -> None:
    host = report_host(fresh_hosts, tenant, "report-reruns", AzureWebJobsStorage=faulty.connection_string)
    token = caller.token()
    _, now = dates()
    first = run_on_demand(host, token, now)
    first_users = download(host, token, now, "users.csv")
    added = tenant.control("POST", "/users", {"displayName": f"Rerun {uuid.uuid4().hex[:6]}"}, expect=201)
    for rule in (summary_put, block_list_put):
        faulty.rule, faulty.failed = rule, []
        assert post_run(host, token, date=now, force="true").status_code == 202
        status = wait_state(host, token, now, {"failed", "completed"})
        assert (status["state"], status.get("errorCode")) == ("failed", "storage_unavailable"), status
        assert faulty.failed, "the fault never fired"
        faulty.rule = None
        # The report is the one before, whole: its summary and its own files.
        assert call(host, f"/api/reports/users/{now}", token).json()["runId"] == first["runId"]
        assert download(host, token, now, "users.csv") == first_users

    rerun = run_on_demand(host, token, now, force="true")
    assert rerun["runId"] != first["runId"] and rerun["blobPrefix"] == f"users/{now}/runs/{rerun['runId']}/"
    assert first["blobPrefix"] == f"users/{now}/runs/{first['runId']}/"
    ids = {row["id"] for row in download(host, token, now, "users.csv")}
    assert added["id"] in ids and len(ids) == len(first_users) + 1
