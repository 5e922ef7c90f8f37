"""TLS trust of the app's one HTTP session (shared/core/http.py), against the local tenant over real sockets.

The session loads each CA bundle once into a shared SSLContext instead of once per connection. These
tests pin down that verification is exactly as strict as requests' own: the bundle named by
``REQUESTS_CA_BUNDLE`` is what is trusted, a server outside it is refused, and hostnames are checked.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.core.http import RequestsTransport, TransportError
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_NAME = "tls-trust test CA"


def _metadata_url(tenant: LocalTenant) -> str:
    authority = f"{tenant.env['ENTRA_AUTHORITY_HOST']}/{tenant.env['ENTRA_TENANT_ID']}"
    return f"{authority}/v2.0/.well-known/openid-configuration"


def test_the_bundle_in_requests_ca_bundle_is_what_is_trusted(
    local_tenant: LocalTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _metadata_url(local_tenant)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", local_tenant.ca_bundle)
    trusting = RequestsTransport()
    assert trusting.send("GET", url, timeout=10).status_code == 200
    # A process started with a bundle that lacks the local CA: the tenant's certificate is refused.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    refusing = RequestsTransport()
    with pytest.raises(TransportError) as refused:
        refusing.send("GET", url, timeout=10)
    assert refused.value.sent is False  # the handshake failed: nothing was sent
    # The environment is read once per origin (settings are frozen at start): the first session keeps
    # the bundle it started with, on new connections too.
    assert trusting.send("GET", url, headers={"Connection": "close"}, timeout=10).status_code == 200
    assert trusting.send("GET", url, timeout=10).status_code == 200
    with pytest.raises(TransportError):
        refusing.send("GET", url, timeout=10)


def test_each_bundle_is_loaded_once_for_every_connection(
    local_tenant: LocalTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", local_tenant.ca_bundle)
    transport = RequestsTransport()
    url = _metadata_url(local_tenant)
    for _ in range(5):  # a new connection each time: the server is told to close it
        response = transport.send("GET", url, headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200
    adapter = transport.session().get_adapter(url)
    contexts = adapter._contexts  # type: ignore[attr-defined]
    assert list(contexts) == [(local_tenant.ca_bundle, None)]
    context = contexts[(local_tenant.ca_bundle, None)]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True


def _ca_and_localhost_leaf(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signs for the DNS name ``localhost`` only (no IP address)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
        )

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        build(CA_NAME, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        build("localhost", leaf_key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def test_a_name_the_certificate_does_not_cover_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, leaf, key = _ca_and_localhost_leaf(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(leaf), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
        transport = RequestsTransport()
        port = server.server_address[1]
        assert transport.send("GET", f"https://localhost:{port}/", timeout=5).status_code == 200
        with pytest.raises(TransportError) as refused:  # same CA, same server: 127.0.0.1 is not in it
            transport.send("GET", f"https://127.0.0.1:{port}/", timeout=5)
        assert refused.value.sent is False
    finally:
        server.shutdown()
        server.server_close()


def test_the_vault_client_and_managed_identity_share_the_sessions_trust(
    local_tenant: LocalTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Key Vault client and managed-identity credential, built as the app builds them (over
    ``RequestsTransport.azure_transport``), send through the app's session: its one context per bundle
    verifies them, and a bundle without the local CA still refuses the tenant."""
    from azure.core.exceptions import ServiceRequestError
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.setenv(name, local_tenant.env[name])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", local_tenant.ca_bundle)
    transport = RequestsTransport()
    shared = transport.azure_transport()
    assert shared.session is transport.session()
    identity = ManagedIdentityCredential(transport=transport.azure_transport())
    vault = SecretClient(
        local_tenant.env["KEY_VAULT_URL"], identity, transport=shared, verify_challenge_resource=False
    )
    for _ in range(3):
        assert vault.get_secret(local_tenant.env["SESSION_KEY_NAME"]).value
    adapter = transport.session().get_adapter(local_tenant.env["KEY_VAULT_URL"])
    assert list(adapter._contexts) == [(local_tenant.ca_bundle, None)]  # type: ignore[attr-defined]

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    untrusting = RequestsTransport()  # a process started with a bundle that lacks the local CA
    with pytest.raises(ServiceRequestError):
        SecretClient(
            local_tenant.env["KEY_VAULT_URL"],
            ManagedIdentityCredential(transport=untrusting.azure_transport()),
            transport=untrusting.azure_transport(),
            verify_challenge_resource=False,
            retry_total=0,
        ).get_secret(local_tenant.env["SESSION_KEY_NAME"])
