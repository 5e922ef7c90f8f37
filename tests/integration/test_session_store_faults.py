"""Table Storage answering 5xx (with Retry-After), or never answering: the real azure-data-tables client over
real loopback sockets against a misbehaving endpoint (Azurite cannot be told to fail this way). Every
store operation must be a 503 ``storage_unavailable`` with ``Retry-After``, within the client's timeouts.

Stopping Azurite outright (connection refused) and recovering afterwards is tested in
tests/integration/test_session_store.py.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devhost.azurite import connection_string
from shared.app.services import Runtime
from shared.core.errors import StorageUnavailable
from shared.signin.sessions import SessionClaims
from tests.integration.test_session_store import app_env
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

CLAIMS = SessionClaims(oid="00000000-0000-0000-0000-0000000000f1", tid="t")
BUSY = json.dumps(
    {"odata.error": {"code": "ServerBusy", "message": {"lang": "en-US", "value": "The server is busy."}}}
).encode()


class _Busy(http.server.BaseHTTPRequestHandler):
    """Answers every request 503 ServerBusy with Retry-After: 1, as a throttled or failing account does."""

    requests = 0

    def _answer(self) -> None:
        type(self).requests += 1
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503)
        self.send_header("content-type", "application/json;odata=minimalmetadata")
        self.send_header("retry-after", "1")
        self.send_header("content-length", str(len(BUSY)))
        self.end_headers()
        self.wfile.write(BUSY)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Silent(http.server.BaseHTTPRequestHandler):
    """Reads the request and never answers (until the test ends): a hung front end."""

    release = threading.Event()

    def _hang(self) -> None:
        self.release.wait(30)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _hang  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        if handler is _Silent:
            _Silent.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def busy_port() -> Iterator[int]:
    yield from serve(_Busy)


@pytest.fixture
def silent_port() -> Iterator[int]:
    _Silent.release.clear()
    yield from serve(_Silent)


def operations(runtime: Runtime) -> list[Callable[[], object]]:
    sessions, flows = runtime.sessions(), runtime.auth_flows()
    return [
        lambda: sessions.load("A" * 43),
        lambda: flows.purge_expired(),
    ]


def test_storage_5xx_is_503_with_retry_after(local_tenant: LocalTenant, busy_port: int) -> None:
    storage = connection_string("127.0.0.1", busy_port, busy_port, busy_port)
    runtime = Runtime(env=app_env(local_tenant, storage))
    with _identity(local_tenant):
        for action in operations(runtime):
            before = _Busy.requests
            with pytest.raises(StorageUnavailable) as caught:
                action()
            error = caught.value
            assert (error.status, error.code) == (503, "storage_unavailable")
            assert error.response_headers()["Retry-After"] == "1"  # the service's own hint
            assert "busy" not in error.public_message.lower()  # storage details stay in the log
            assert 1 <= _Busy.requests - before <= 3  # the SDK's two retries at most


def test_storage_that_never_answers_is_503_within_the_timeouts(
    local_tenant: LocalTenant, silent_port: int
) -> None:
    storage = connection_string("127.0.0.1", silent_port, silent_port, silent_port)
    runtime = Runtime(env=app_env(local_tenant, storage, GRAPH_TIMEOUT_SECONDS="1"))
    with _identity(local_tenant):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as caught:
            runtime.sessions().load("A" * 43)
        assert caught.value.retry_after and caught.value.status == 503
        assert time.monotonic() - started < 15  # 1 s read timeout, two retries: never a hung worker


def _identity(tenant: LocalTenant) -> Any:
    from tests.integration.fixtures import environment

    return environment({key: tenant.env[key] for key in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")})
