"""``make run`` end to end: scripts/run_local.py starts Azurite, a local tenant and devhost; a token from
scripts/token.py lists users; Ctrl+C stops everything and frees every port."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient
from dotenv import dotenv_values

from tests.devhost.fixtures import wait_until
from tests.integration.fixtures import Evidence
from tests.support.apphost import REPO_ROOT, port_is_free
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration


def _ports() -> tuple[int, int, int]:
    """(app, first tenant port, first Azurite port), non-overlapping and free (the app's HTTPS listener
    takes the port after the app's)."""
    for _ in range(20):
        app, tenant, azurite = free_port_range(2), free_port_range(5), free_port_range(3)
        used = [app, app + 1, *range(tenant, tenant + 5), *range(azurite, azurite + 3)]
        if len(set(used)) == len(used):
            return app, tenant, azurite
    raise RuntimeError("no disjoint free ports")


@pytest.fixture
def run_local(
    tmp_path: Path, evidence: Evidence
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, object]]]:
    app, tenant, azurite = _ports()
    output = tmp_path / "run_local.log"
    evidence.logs.append(output)
    command = [
        sys.executable, "-m", "scripts.run_local",
        "--port", str(app), "--tenant-port", str(tenant), "--azurite-port", str(azurite),
        "--local-dir", str(tmp_path / "local"), "--settings", str(tmp_path / "local.settings.json"),
        "--host", "devhost",
    ]  # fmt: skip
    with output.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    info: dict[str, object] = {
        "app": app,
        "tenant": tenant,
        "azurite": azurite,
        "dir": tmp_path,
        "log": output,
    }
    try:
        yield process, info
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_run_local_serves_the_app_and_stops_cleanly_on_sigint(
    run_local: tuple[subprocess.Popen[bytes], dict[str, object]], evidence: Evidence
) -> None:
    process, info = run_local
    tmp = Path(str(info["dir"]))
    base = f"http://127.0.0.1:{info['app']}"

    def healthy() -> bool:
        assert process.poll() is None, Path(str(info["log"])).read_text(errors="replace")
        try:
            return requests.get(f"{base}/api/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, timeout=90, what="make run to serve /api/health")

    settings = json.loads((tmp / "local.settings.json").read_text())
    tenant_env = {k: v for k, v in dotenv_values(tmp / "local" / "tenant.env").items() if v is not None}
    for key in (
        "ENTRA_TENANT_ID",
        "ENTRA_CLIENT_ID",
        "ENTRA_AUTHORITY_HOST",
        "KEY_VAULT_URL",
        "GRAPH_ENDPOINT",
    ):
        assert settings["Values"][key] == tenant_env[key]
    assert settings["Values"]["ENTRA_CREDENTIAL"] == "keyvault"
    assert f"BlobEndpoint=http://127.0.0.1:{info['azurite']}/" in settings["Values"]["AzureWebJobsStorage"]
    assert tenant_env["ENTRA_AUTHORITY_HOST"] == f"https://127.0.0.1:{info['tenant']}"
    for key in ("CALLER_CLIENT_SECRET", "CALLER_NOROLE_CLIENT_SECRET"):
        evidence.secrets[f"run_local {key}"] = tenant_env[key]

    printed = subprocess.run(
        [sys.executable, "-m", "scripts.token", "--env-file", str(tmp / "local" / "tenant.env")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    evidence.tokens.append(token)
    listed = requests.get(
        f"{base}/api/users", params={"top": "999"}, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert listed.status_code == 200, listed.text
    expected = requests.get(
        f"{tenant_env['EMULATOR_URL']}/_emulator/info", verify=tenant_env["EMULATOR_CA_BUNDLE"], timeout=30
    ).json()["users"]
    assert len(listed.json()["value"]) == expected == 25
    # Mail is readable out of the box, through the local tenant's "Mail Readers" scope (issue 17).
    assert settings["Values"]["MAILBOX_SCOPE"] == tenant_env["MAIL_READERS_GROUP_ID"] != ""
    bearer = {"Authorization": f"Bearer {token}"}
    member_mail = requests.get(
        f"{base}/api/users/{tenant_env['DEMO_USER_USERNAME']}/messages", headers=bearer, timeout=60
    )
    assert member_mail.status_code == 200 and member_mail.json()["value"], member_mail.text
    outside = requests.get(
        f"{base}/api/users/{tenant_env['DEMO_ADMIN_USERNAME']}/messages", headers=bearer, timeout=60
    )
    assert (outside.status_code, outside.json()["error"]["code"]) == (403, "mailbox_out_of_scope")
    # Mail events out of the box (issue 19): the tenant posts to the app's HTTPS listener, and a message
    # added to the demo member's mailbox becomes a message on the Azurite queue mail-events.
    assert settings["Values"]["MAIL_INGESTION_MODE"] == "webhook"
    assert settings["Values"]["NOTIFICATION_BASE_URL"] == f"https://localhost:{int(str(info['app'])) + 1}"
    control = f"{tenant_env['EMULATOR_URL']}/_emulator"
    ca = tenant_env["EMULATOR_CA_BUNDLE"]

    def subscribed() -> bool:
        # The first round of the subscriptions timer is over: every in-scope mailbox has its subscription
        # and its delta baseline. Mail that arrived before that is the mailbox's past, not an event; a
        # message added after the first subscription but before the demo member's was a race, not a test.
        if "Subscriptions timer (webhook):" not in Path(str(info["log"])).read_text(errors="replace"):
            return False
        listed = requests.get(f"{control}/graph/subscriptions", verify=ca, timeout=30).json()["value"]
        return any("/messages" in str(s["resource"]) for s in listed)

    wait_until(subscribed, timeout=90, what="the timer's first round at start")
    # Rich notifications out of the box: the certificate make run stored in the local vault.
    assert settings["Values"]["NOTIFICATION_CERTIFICATE_NAME"] == "graph-notify-cert"
    listed = requests.get(f"{control}/graph/subscriptions", verify=ca, timeout=30).json()["value"]
    assert all(s["includeResourceData"] for s in listed if "/messages" in str(s["resource"]))
    added = requests.post(
        f"{control}/users/{tenant_env['DEMO_USER_USERNAME']}/messages",
        json={"subject": "make run event", "body": "hi"},
        verify=ca,
        timeout=30,
    )
    assert added.status_code == 201, added.text
    events = QueueClient.from_connection_string(settings["Values"]["AzureWebJobsStorage"], "mail-events")

    def published() -> bool:
        try:
            return any(
                json.loads(base64.b64decode(m.content))["messageId"] == added.json()["id"]
                for m in events.peek_messages(max_messages=32)
            )
        except ResourceNotFoundError:
            return False

    wait_until(published, timeout=90, what="the mail event")

    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    assert "run: stopped" in Path(str(info["log"])).read_text(errors="replace")
    app, tenant, azurite = int(str(info["app"])), int(str(info["tenant"])), int(str(info["azurite"]))
    ports = [app, app + 1, *range(tenant, tenant + 5), *range(azurite, azurite + 3)]
    assert [port for port in ports if not port_is_free(port)] == []


def test_run_local_follows_entra_tenancy_multi_in_local_settings(
    run_local: tuple[subprocess.Popen[bytes], dict[str, object]],
) -> None:
    """``make run`` once (it writes local.settings.json), then with ``ENTRA_TENANCY=multi`` set there: the
    local tenant's registration is multi-tenant, the onboarding redirect URI is registered and the app
    serves ``/onboard``."""
    process, info = run_local
    tmp = Path(str(info["dir"]))
    base = f"http://127.0.0.1:{info['app']}"

    def serving() -> bool:
        assert process.poll() is None, Path(str(info["log"])).read_text(errors="replace")
        try:
            return requests.get(f"{base}/api/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(serving, timeout=90, what="make run to serve /api/health")
    assert requests.get(f"{base}/onboard", timeout=10).status_code == 404  # single-tenant by default
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0

    path = tmp / "local.settings.json"
    settings = json.loads(path.read_text())
    assert settings["Values"]["ENTRA_TENANCY"] == "single"
    settings["Values"]["ENTRA_TENANCY"] = "multi"
    path.write_text(json.dumps(settings))
    command = [
        sys.executable, "-m", "scripts.run_local",
        "--port", str(info["app"]), "--tenant-port", str(info["tenant"]),
        "--azurite-port", str(info["azurite"]), "--local-dir", str(tmp / "local"),
        "--settings", str(path), "--host", "devhost",
    ]  # fmt: skip
    with (tmp / "run_local_multi.log").open("wb") as log:
        again = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: _answers(f"{base}/api/health"), timeout=90, what="make run (multi) to serve")
        assert requests.get(f"{base}/onboard", timeout=10).status_code == 200
        env = {k: v for k, v in dotenv_values(tmp / "local" / "tenant.env").items() if v is not None}
        app = requests.get(
            f"{env['EMULATOR_URL']}/_emulator/apps/{env['ENTRA_CLIENT_ID']}",
            verify=env["EMULATOR_CA_BUNDLE"],
            timeout=30,
        ).json()
        assert app["signInAudience"] == "AzureADMultipleOrgs"
        assert f"http://localhost:{info['app']}/onboard/callback" in app["redirectUris"]
        assert "onboard the customer" in (tmp / "run_local_multi.log").read_text(errors="replace")
    finally:
        again.send_signal(signal.SIGINT)
        assert again.wait(60) == 0


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
