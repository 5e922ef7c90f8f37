"""Start-up, env file, TLS and shutdown of the local tenant."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import uvicorn

from emulator import server as emulator_server
from tests.devhost.fixtures import wait_until
from tests.support.idle_server import check_sleeps_and_stops_at_once, plain_app
from tests.support.ports import free_port
from tests.support.tenant import LocalTenant, start_tenant

REQUIRED_KEYS = {
    "ENTRA_TENANT_ID",
    "ENTRA_CLIENT_ID",
    "ENTRA_AUTHORITY_HOST",
    "KEY_VAULT_URL",
    "ENTRA_CREDENTIAL_NAME",
    "ENTRA_CERTIFICATE_CREDENTIAL_NAME",
    "GRAPH_ENDPOINT",
    "SHAREPOINT_SITE_URL",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "EMULATOR_URL",
    "EMULATOR_CA_BUNDLE",
    "CALLER_CLIENT_ID",
    "CALLER_CLIENT_SECRET",
    "CALLER_NOROLE_CLIENT_ID",
    "CALLER_NOROLE_CLIENT_SECRET",
    "DEMO_ADMIN_USERNAME",
    "DEMO_ADMIN_PASSWORD",
    "DEMO_USER_USERNAME",
    "DEMO_USER_PASSWORD",
}


def test_env_file_has_every_key_and_no_app_secret(tenant: LocalTenant) -> None:
    assert set(tenant.env) >= REQUIRED_KEYS
    assert "ENTRA_CLIENT_SECRET" not in tenant.env
    text = tenant.env_file.read_text()
    assert "8Q~" in tenant.env["CALLER_CLIENT_SECRET"]
    info = tenant.control("GET", "/info")
    assert info["tenantId"] == tenant.env["ENTRA_TENANT_ID"]
    assert (tenant.env_file.stat().st_mode & 0o777) == 0o600
    assert text.startswith("#")


def test_each_service_has_its_own_https_origin(tenant: LocalTenant) -> None:
    origins = {
        tenant.env["ENTRA_AUTHORITY_HOST"],
        tenant.env["GRAPH_ENDPOINT"],
        tenant.env["KEY_VAULT_URL"].rstrip("/"),
        tenant.env["SHAREPOINT_SITE_URL"].split("/sites")[0],
        tenant.env["IDENTITY_ENDPOINT"].split("/msi")[0],
    }
    assert len(origins) == 5
    assert all(o.startswith("https://127.0.0.1:") for o in origins)


def test_combined_bundle_trusts_local_ca_and_system_cas(tenant: LocalTenant) -> None:
    bundle = Path(tenant.ca_bundle).read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 10  # system CAs are kept
    resp = requests.get(f"{tenant.env['EMULATOR_URL']}/_emulator/info", verify=tenant.ca_bundle, timeout=10)
    assert resp.status_code == 200


def test_plain_system_bundle_does_not_trust_the_emulator(tenant: LocalTenant) -> None:
    import pytest

    with pytest.raises(requests.exceptions.SSLError):
        requests.get(
            f"{tenant.env['EMULATOR_URL']}/_emulator/info",
            verify="/etc/ssl/certs/ca-certificates.crt",
            timeout=10,
        )


def test_sigterm_exits_zero_and_state_is_reused(tmp_path: Path) -> None:
    first = start_tenant(tmp_path, users=25)
    ca = (first.state_dir / "tls" / "ca.pem").read_bytes()
    tid = first.env["ENTRA_TENANT_ID"]
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(10) == 0
    second = start_tenant(tmp_path, users=25)
    try:
        assert (second.state_dir / "tls" / "ca.pem").read_bytes() == ca  # generated once per state dir
        assert second.env["ENTRA_TENANT_ID"] == tid  # deterministic from the seed
    finally:
        second.process.send_signal(signal.SIGINT)
        assert second.process.wait(10) == 0


def test_an_idle_keep_alive_client_does_not_hold_the_stop_and_a_busy_one_gets_its_answer(
    tmp_path: Path,
) -> None:
    """A pooled TLS connection nobody reads never answers the tenant's close_notify: uvicorn used to wait
    its whole graceful timeout for it ("timeout graceful shutdown exceeded" in the log) on every stop. That
    connection is dropped now; a request still being answered when the stop comes still gets its answer."""
    tenant = start_tenant(tmp_path, users=5)
    idle, busy = requests.Session(), requests.Session()
    try:
        url = f"{tenant.env['ENTRA_AUTHORITY_HOST']}/common/discovery/instance"
        answer = idle.get(url, verify=tenant.ca_cert, timeout=10)
        assert answer.status_code == 400 and answer.headers.get("Connection") != "close"  # kept alive, idle
        rule = tenant.control("POST", "/faults", {"service": "login", "path": "discovery/instance",
                                                  "status": 0, "latencyMs": 1500}, expect=201)  # fmt: skip

        def in_flight() -> bool:  # the rule matched: the request is in its latency, unanswered
            rules = tenant.control("GET", "/faults")["value"]
            return any(r["id"] == rule["id"] and r["fired"] for r in rules)

        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(busy.get, url, verify=tenant.ca_cert, timeout=30)
            wait_until(in_flight, timeout=10, what="the slow request to arrive")
            assert not slow.done()
            tenant.process.send_signal(signal.SIGTERM)
            assert slow.result().status_code == 400  # answered after its latency, then closed
        assert tenant.process.wait(10) == 0
        log = tenant.log_file.read_text(errors="replace")
        assert "timeout graceful shutdown exceeded" not in log and "Traceback" not in log, log[-2000:]
    finally:
        idle.close()
        busy.close()
        tenant.stop()


def test_port_in_use_fails_with_a_clear_message(tenant: LocalTenant, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.tenant import ROOT

    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "--port", str(tenant.port), "--state-dir", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "cannot listen" in proc.stderr and "--port" in proc.stderr


def test_an_idle_tenant_sleeps_and_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's loop woke ten times a second for as long as a session kept its tenant; the tenant's server
    sleeps until SIGINT/SIGTERM, and the signal wakes it at once."""
    monkeypatch.setattr(emulator_server, "DATE_REFRESH_SECONDS", 60.0)
    port = free_port()
    config = uvicorn.Config(plain_app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")

    def stop(server: uvicorn.Server) -> None:
        server.handle_exit(signal.SIGTERM, None)  # what the SIGTERM handler calls

    server = emulator_server._IdleServer(config)
    check_sleeps_and_stops_at_once(server, f"http://127.0.0.1:{port}/", stop)
