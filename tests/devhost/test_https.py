"""devhost's HTTPS listener (dev only: Graph calls https webhooks, and the local tenant is as strict): the
same functions on a second port, with the given certificate; a half-configured listener stops devhost."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.devhost.conftest import FIXTURE_APP, start_fixture_host
from tests.devhost.fixtures import REPO_ROOT, wait_until
from tests.support.ports import free_port


def certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_https_listener_serves_the_same_functions_with_the_certificate(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    port = free_port()
    host, out = start_fixture_host(
        tmp_path,
        args=("--no-timers", "--https-port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)),
    )
    # Two pooled clients, as the local tenant's webhook client: one idle across the stop, one whose request
    # is in progress when the stop comes.
    idle, busy = requests.Session(), requests.Session()
    try:
        plain = requests.get(host.url("/api/health"), timeout=10)
        secure = idle.get(f"https://localhost:{port}/api/health", verify=str(cert), timeout=10)
        assert secure.status_code == plain.status_code == 200 and secure.text == plain.text
        assert f"HTTPS: https://localhost:{port}" in host.log()
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(busy.get, f"https://localhost:{port}/api/slow", verify=str(cert), timeout=30)
            wait_until(lambda: (out / "slow.started").exists(), what="the slow request to start")
            host.process.send_signal(signal.SIGTERM)
            # The HTTPS listener begins its stop once the main one has stopped: the request is still running.
            wait_until(lambda: host.log().count("Shutting down") == 2, what="both listeners to stop")
            (out / "slow.release").touch()
            assert (slow.result().status_code, slow.result().text) == (200, "slow finished")
        assert host.process.wait(30) == 0  # the HTTPS listener stops with the main one
    finally:
        idle.close()
        busy.close()
        host.stop()
    # Neither TLS connection answers the listener's close_notify: each is dropped, not waited for.
    assert "timeout graceful shutdown exceeded" not in host.log(), host.log()[-2000:]


def test_a_listener_without_its_key_stops_devhost_at_start(tmp_path: Path) -> None:
    cert, _ = certificate(tmp_path)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "--app-dir",
            str(FIXTURE_APP),
            "--https-port",
            "1443",
            "--tls-cert",
            str(cert),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2 and "--https-port needs --tls-cert and --tls-key" in completed.stderr
