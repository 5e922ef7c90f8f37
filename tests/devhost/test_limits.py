"""functionTimeout on HTTP and timer invocations, and Azure's 230 s HTTP limit as a warning."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import requests
from starlette.types import Message

from devhost.discovery import discover, import_app_module
from devhost.host import build_state
from devhost.schedule_status import MemoryStatusStore
from devhost.server import build_app
from devhost.settings import load_host_config
from tests.devhost.conftest import FIXTURE_APP, FIXTURE_SETTINGS, read_records
from tests.devhost.fixtures import DevHostProcess, start_devhost, wait_until

TIMEOUT = 30  # longer than the fixture's 20 s hangs: without functionTimeout they would answer 200


def fixture_app_with(tmp_path: Path, host_json: dict[str, object]) -> Path:
    """A copy of the fixture app with its own host.json."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    shutil.copy(FIXTURE_APP / "function_app.py", app_dir / "function_app.py")
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0", **host_json}))
    return app_dir


@pytest.fixture(scope="module")
def timeout_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevHostProcess, Path]]:
    tmp_path = tmp_path_factory.mktemp("timeout_host")
    out = tmp_path / "out"
    out.mkdir()
    host = start_devhost(
        fixture_app_with(tmp_path, {"functionTimeout": "00:00:01"}),
        log_path=tmp_path / "devhost.log",
        env={"DEVHOST_FIXTURE_OUT": str(out)},
        args=("--settings", str(FIXTURE_SETTINGS), "--no-timers"),
    )
    try:
        yield host, out
    finally:
        host.stop()


def test_a_sync_http_function_past_function_timeout_gets_500(
    timeout_host: tuple[DevHostProcess, Path],
) -> None:
    host, _ = timeout_host
    started = time.monotonic()
    response = requests.get(host.url("/api/slow"), timeout=TIMEOUT)
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert time.monotonic() - started < 15  # generous: the function itself blocks for 20 s
    log = host.log()
    assert "Timeout value of 00:00:01 exceeded by function 'Functions.slow' (Id: '" in log
    assert "A function timeout has occurred" in log
    assert requests.get(host.url("/api/health"), timeout=TIMEOUT).status_code == 200


def test_an_async_http_function_past_function_timeout_is_cancelled(
    timeout_host: tuple[DevHostProcess, Path],
) -> None:
    host, out = timeout_host
    response = requests.get(host.url("/api/hang/async"), timeout=TIMEOUT)
    assert response.status_code == 500
    assert (out / "hang_async.cancelled").exists()
    assert "exceeded by function 'Functions.hang_async'" in host.log()


def test_a_timer_past_function_timeout_fails_and_its_schedule_goes_on(
    timeout_host: tuple[DevHostProcess, Path],
) -> None:
    host, out = timeout_host
    for _ in range(2):  # the second run proves the timed-out run released the timer
        response = requests.post(host.url("/admin/functions/hanging_timer"), json={}, timeout=TIMEOUT)
        assert response.status_code == 202
    wait_until(
        lambda: host.log().count("Executed 'Functions.hanging_timer' (Failed") == 2,
        timeout=15,
        what="two timed-out runs of hanging_timer",
    )
    assert len(read_records(out, "hanging_timer")) == 2
    assert host.log().count("Timeout value of 00:00:01 exceeded by function 'Functions.hanging_timer'") == 2


SLOW_APP = """
import asyncio
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

@app.route(route="slow", methods=["GET"])
async def slow(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.5)
    return func.HttpResponse("late but fine")

@app.route(route="quick", methods=["GET"])
async def quick(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("quick")
"""


def call_in_process(
    tmp_path: Path, path: str, http_response_limit: float, linger: float = 0.0
) -> tuple[int, bytes]:
    """GET ``path`` from devhost's ASGI app in this process, with a shortened 230 s limit;
    the event loop then runs ``linger`` seconds more, so a pending warning would fire."""
    (tmp_path / "devhost_slow_app.py").write_text(SLOW_APP)
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    state = build_state(
        discover(import_app_module(tmp_path, "devhost_slow_app.py")),
        host_config=load_host_config(tmp_path),
        environ={},
        app_dir=tmp_path,
        host_id="test",
        store=MemoryStatusStore(),
        tz=dt.UTC,
        thread_count=2,
        body_limit=1024,
        schedule_timers=False,
        graceful_timeout=1,
    )
    state.http_response_limit = http_response_limit
    app = build_app(state)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("127.0.0.1", 7071),
        "client": ("127.0.0.1", 50000),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:7071")],
    }

    async def call() -> None:
        await app(scope, receive, send)
        await anyio.sleep(linger)

    anyio.run(call)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_an_http_function_slower_than_azures_limit_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="devhost"):
        assert call_in_process(tmp_path, "/api/slow", http_response_limit=0.1) == (200, b"late but fine")
    (record,) = [r for r in caplog.records if "has not answered after" in r.getMessage()]
    assert "Functions.slow" in record.getMessage()
    assert "within 230 s" in record.getMessage()


def test_a_quick_http_function_gets_no_limit_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="devhost"):
        # The loop runs past the limit: a warning left pending would fire.
        assert call_in_process(tmp_path, "/api/quick", http_response_limit=0.1, linger=0.3) == (200, b"quick")
    assert not [r for r in caplog.records if "has not answered after" in r.getMessage()]
