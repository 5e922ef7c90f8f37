"""The requests-based transport against a throwaway loopback HTTP server (no other network)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.core.http import InvalidRequestError, RequestsTransport, TransportError
from shared.core.settings_parts import StorageSettings
from shared.storage.clients import DEVELOPMENT_STORAGE, blob_service, queue_service, table_service


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/drop"):  # read the request, then hang up without answering
            self.close_connection = True
            return
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            return
        body = json.dumps(
            {
                "path": self.path,
                "cookie": self.headers.get("Cookie"),
                "auth": self.headers.get("Authorization"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "tracking=1; Path=/")
        self.send_header("Request-Id", "rid-1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.dumps({"form": self.rfile.read(length).decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that timed out on /slow is gone when the handler writes: expected, not news."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_send_returns_any_status_and_case_insensitive_headers(server: str) -> None:
    transport = RequestsTransport()
    response = transport.send(
        "GET", f"{server}/v1.0/users", params={"$top": "1"}, headers={"Authorization": "Bearer t"}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers.get("request-id") == "rid-1"
    assert response.json() == {"path": "/v1.0/users?%24top=1", "cookie": None, "auth": "Bearer t"}


def test_session_is_shared_and_stores_no_cookies(server: str) -> None:
    transport = RequestsTransport()
    transport.send("GET", f"{server}/a", timeout=5)
    second = transport.send("GET", f"{server}/b", timeout=5)
    assert second.json()["cookie"] is None
    assert transport.session() is transport.session()
    assert len(transport.session().cookies) == 0


def test_redirects_are_not_followed(server: str) -> None:
    response = RequestsTransport().send(
        "GET", f"{server}/redirect", headers={"Authorization": "Bearer t"}, timeout=5
    )
    assert response.status_code == 302


def test_connection_errors_and_timeouts_become_transport_errors(server: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as refused:
        RequestsTransport().send("GET", f"http://127.0.0.1:{port}/x?secret=1", timeout=2)
    assert refused.value.timeout is False and "secret" not in str(refused.value)
    with pytest.raises(TransportError) as slow:
        RequestsTransport().send("GET", f"{server}/slow", timeout=0.2)
    assert slow.value.timeout is True


def test_transport_errors_say_whether_the_request_may_have_been_sent(server: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as refused:
        RequestsTransport().send("POST", f"http://127.0.0.1:{port}/x", timeout=2)
    assert refused.value.sent is False  # no connection: a POST may be resent safely
    with pytest.raises(TransportError) as dropped:
        RequestsTransport().send("GET", f"{server}/drop", timeout=2)
    assert dropped.value.sent is True and dropped.value.timeout is False
    with pytest.raises(TransportError) as slow:
        RequestsTransport().send("GET", f"{server}/slow", timeout=0.2)
    assert slow.value.sent is True  # a read timeout: the server has the request


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("https://graph.micro\tsoft.com/v1.0/users", None),  # InvalidURL
        ("graph.microsoft.com/v1.0/users", None),  # MissingSchema
        ("ftp://127.0.0.1/v1.0/users", None),  # InvalidSchema
        ("", None),  # MissingSchema
        ("{server}/v1.0/users", {"X-Test": "a\r\nInjected: 1"}),  # InvalidHeader
        ("{server}/v1.0/users", {"X-Test": "\u20ac"}),  # not latin-1: http.client's UnicodeEncodeError
    ],
)
def test_requests_that_cannot_be_built_are_rejected_not_transport_errors(
    server: str, url: str, headers: dict[str, str] | None
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestsTransport().send("GET", url.format(server=server), headers=headers, timeout=2)
    assert not isinstance(caught.value, TransportError)
    assert "\t" not in str(caught.value) and "\n" not in str(caught.value)  # safe for a log line


def test_msal_http_client_shares_the_session_with_a_default_timeout(server: str) -> None:
    transport = RequestsTransport(default_timeout=5)
    client = transport.msal_http_client()
    assert client.get(f"{server}/discovery").status_code == 200
    assert client.post(f"{server}/token", data={"grant_type": "client_credentials"}).json() == {
        "form": "grant_type=client_credentials"
    }
    client.close()  # must not close the process-wide session
    assert transport.send("GET", f"{server}/after", timeout=5).status_code == 200
    transport.close()


def _slow_storage(server: str, service: str, timeout: float) -> StorageSettings:
    """Storage whose ``service`` endpoint is the loopback server's /slow (answered after 1 s)."""
    endpoint = f"{service.capitalize()}Endpoint={server}/slow/devstoreaccount1"
    account = DEVELOPMENT_STORAGE.split("AccountKey=")[1].split(";")[0]
    return StorageSettings(
        storage_connection=f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={account};{endpoint};",
        storage_account_name=None,
        storage_client_id=None,
        storage_service_uris={},
        managed_identity_client_id=None,
        graph_timeout_seconds=timeout,
        authority_host="https://login.microsoftonline.com",
        authority_is_microsoft_cloud=True,
    )


@pytest.mark.parametrize("service", ["blob", "queue", "table"])
def test_storage_clients_over_the_pooled_session_keep_the_storage_timeout(server: str, service: str) -> None:
    """An Azure SDK client given a transport ignores its own timeout options (azure-core's default is then
    300 s): the storage timeout must be on the transport the client shares."""
    from azure.core.exceptions import ServiceResponseTimeoutError

    http = RequestsTransport(default_timeout=30)  # the storage setting bounds storage, not this default
    storage = _slow_storage(server, service, timeout=0.3)
    if service == "blob":
        call: Any = lambda: blob_service(storage, http).get_service_properties(retry_total=0)  # noqa: E731
    elif service == "queue":
        call = lambda: queue_service(storage, http).get_service_properties(retry_total=0)  # noqa: E731
    else:
        call = lambda: table_service(storage, http).get_service_properties(retry_total=0)  # noqa: E731
    with pytest.raises(ServiceResponseTimeoutError):
        call()
    # Sent through the transport's own session (which read the environment for that origin once).
    origins = http.session()._environment  # type: ignore[attr-defined]  # our session subclass
    assert ("http", server.removeprefix("http://")) in origins


def test_an_azure_transport_is_bounded_by_the_transports_timeout_unless_given_its_own(server: str) -> None:
    from azure.core import PipelineClient
    from azure.core.exceptions import ServiceResponseTimeoutError
    from azure.core.rest import HttpRequest, HttpResponse

    http = RequestsTransport(default_timeout=0.3)

    def slow(timeout: float | None) -> HttpResponse:
        client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            server, transport=http.azure_transport(timeout=timeout)
        )
        return client.send_request(HttpRequest("GET", f"{server}/slow"))

    with pytest.raises(ServiceResponseTimeoutError):
        slow(None)  # the transport's default: 0.3 s
    assert slow(5).status_code == 200


def _ca_pems(count: int) -> list[bytes]:
    """The first ``count`` CA certificates of certifi's bundle (requests' default), one PEM each."""
    import certifi

    marker = b"-----END CERTIFICATE-----"
    blocks = Path(certifi.where()).read_bytes().split(marker)[:count]
    return [block[block.index(b"-----BEGIN") :] + marker + b"\n" for block in blocks]


def test_a_bundle_is_loaded_once_per_process_and_again_once_rewritten(tmp_path: Path) -> None:
    """Every transport of the process (and the Azure SDK transports over them) verifies with the same
    context per bundle; a bundle rewritten in place is loaded again by the next adapter that needs it."""
    first_ca, second_ca = _ca_pems(2)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(first_ca)

    def adapter() -> Any:
        return RequestsTransport().session().get_adapter("https://127.0.0.1/")

    first, second = adapter(), adapter()
    loaded = first.trust_context(str(bundle), None)
    assert second.trust_context(str(bundle), None) is loaded
    assert loaded.verify_mode == ssl.CERT_REQUIRED and loaded.check_hostname is True
    bundle.write_bytes(first_ca + second_ca)  # another CA added: a new size and time
    reloaded = adapter().trust_context(str(bundle), None)
    assert reloaded is not loaded
    assert len(reloaded.get_ca_certs()) == 2 and len(loaded.get_ca_certs()) == 1
    assert first.trust_context(str(bundle), None) is loaded  # an adapter keeps what it started with
