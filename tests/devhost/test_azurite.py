"""Timer schedule status in real Azurite: past-due detection across restarts."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from devhost.azurite import Azurite
from tests.devhost.conftest import read_records, start_fixture_host
from tests.devhost.fixtures import wait_until

TIMEOUT = 15


def container(azurite: Azurite) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.get_container_client("azure-webjobs-hosts")
    if not client.exists():
        client.create_container()
    return client


def status_blob(host_id: str, function: str) -> str:
    # The real host's layout (StorageScheduleMonitor): timers/{hostId}/Host.Functions.{name}/status
    return f"timers/{host_id}/Host.Functions.{function}/status"


def read_status(client: ContainerClient, host_id: str, function: str) -> dict[str, str]:
    document = json.loads(client.download_blob(status_blob(host_id, function)).readall())
    assert isinstance(document, dict)
    return document


def test_azurite_launcher_serves_blobs(azurite: Azurite) -> None:
    assert azurite.running
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    name = f"launcher-{uuid.uuid4().hex[:8]}"
    service.create_container(name)
    service.get_blob_client(name, "hello.txt").upload_blob(b"hello")
    assert service.get_blob_client(name, "hello.txt").download_blob().readall() == b"hello"
    assert f"BlobEndpoint=http://127.0.0.1:{azurite.blob_port}/devstoreaccount1;" in azurite.connection_string


def test_past_due_across_restarts(azurite: Azurite, tmp_path: Path) -> None:
    host_id = f"devhost-test-{uuid.uuid4().hex[:8]}"
    blobs = container(azurite)
    # A status the host wrote in 2020: the 2021-01-01 occurrence was never run.
    blobs.upload_blob(
        status_blob(host_id, "yearly"),
        json.dumps(
            {
                "Last": "2020-01-01T00:00:00+00:00",
                "Next": "2021-01-01T00:00:00+00:00",
                "LastUpdated": "2020-01-01T00:00:00+00:00",
            }
        ),
        overwrite=True,
    )
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "AzureFunctionsWebHost__hostid": host_id,
        "WEBSITE_TIME_ZONE": "UTC",
    }

    first, out = start_fixture_host(tmp_path / "first", env=env, args=())
    try:
        wait_until(lambda: len(read_records(out, "yearly")) == 1, what="the past-due run of yearly")
        (past_due_run,) = read_records(out, "yearly")
        assert past_due_run["past_due"] is True
        assert past_due_run["schedule_status"]["Next"] == "2021-01-01T00:00:00+00:00"
        assert "Function 'yearly' is past due on start-up" in first.log()

        wait_until(
            lambda: read_status(blobs, host_id, "yearly")["Last"].startswith(
                str(dt.datetime.now(dt.UTC).year)
            ),
            what="the status blob to record the run",
        )
        after = read_status(blobs, host_id, "yearly")
        last = dt.datetime.fromisoformat(after["Last"])
        assert after["LastUpdated"] == after["Last"]
        assert dt.datetime.fromisoformat(after["Next"]) == dt.datetime(last.year + 1, 1, 1, tzinfo=dt.UTC)

        # A monitored timer without a status gets one at start-up, as in the host (each timer's start-up
        # check runs on its own, so yearly's past-due run may be recorded before this status is written).
        wait_until(
            lambda: blobs.get_blob_client(status_blob(host_id, "async_yearly")).exists(),
            what="async_yearly's first status",
        )
        initial = read_status(blobs, host_id, "async_yearly")
        assert initial["Last"] == "0001-01-01T00:00:00"
        assert dt.datetime.fromisoformat(initial["Next"]) > dt.datetime.now(dt.UTC)
    finally:
        assert first.stop() == 0

    # Restart: the recorded Next is now in the future, so nothing is past due.
    second, out = start_fixture_host(tmp_path / "second", env=env, args=())
    try:
        # Manual runs wait for the timer's start-up checks, so a past-due run
        # (wrong here) would be recorded before this one.
        response = requests.post(second.url("/admin/functions/yearly"), json={}, timeout=TIMEOUT)
        assert response.status_code == 202
        wait_until(lambda: len(read_records(out, "yearly")) == 1, what="the manual run of yearly")
        (manual_run,) = read_records(out, "yearly")
        assert manual_run["past_due"] is False
        assert manual_run["schedule_status"]["Last"] == after["Last"]  # read back from the blob
        assert "past due" not in second.log()
    finally:
        assert second.stop() == 0
