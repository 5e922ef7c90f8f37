"""Graceful shutdown on SIGTERM / SIGINT: in-flight requests finish, exit status 0."""

from __future__ import annotations

import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import requests
import uvicorn

from devhost import quiet_server
from tests.devhost.conftest import start_fixture_host
from tests.devhost.fixtures import wait_until
from tests.support.idle_server import check_sleeps_and_stops_at_once, plain_app
from tests.support.ports import free_port


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    host, out = start_fixture_host(tmp_path, args=("--no-timers",))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, host.url("/api/slow"), timeout=30)
        wait_until(lambda: (out / "slow.started").exists(), what="the slow request to start")

        host.process.send_signal(signal.SIGTERM)
        wait_until(partial(refuses_connections, host.port), what="the server to stop accepting")
        assert host.process.poll() is None  # still waiting for the request

        (out / "slow.release").touch()
        response = in_flight.result(timeout=30)
    assert (response.status_code, response.text) == (200, "slow finished")
    # The first SIGTERM's exit, waited for: stop() would send a second one to a host still draining (on a
    # loaded machine), and that one ends it with -15.
    assert host.process.wait(30) == 0
    assert "Finished server process" in host.log()


def test_sigint_exits_zero(tmp_path: Path) -> None:
    host, _ = start_fixture_host(tmp_path)
    assert requests.get(host.url("/api/health"), timeout=15).status_code == 200
    assert host.stop(signal.SIGINT) == 0


def test_stuck_request_is_abandoned_after_the_graceful_timeout(tmp_path: Path) -> None:
    host, out = start_fixture_host(tmp_path, args=("--no-timers", "--graceful-timeout", "1"))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, host.url("/api/slow"), timeout=30)
        wait_until(lambda: (out / "slow.started").exists(), what="the slow request to start")
        # Never released: the host gives up on it after 1 s and still exits 0.
        assert host.stop(timeout=15) == 0
        assert in_flight.result(timeout=30).status_code == 500  # uvicorn answers a cancelled request
    assert "timeout graceful shutdown exceeded" in host.log()
    assert "Exiting with 1 sync invocation(s) still running" in host.log()


def test_an_idle_server_sleeps_and_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's loop woke ten times a second in every idle host; devhost's sleeps until it is stopped, and
    a stop from another thread (how the HTTPS listener is stopped) wakes it at once."""
    monkeypatch.setattr(quiet_server, "_DATE_REFRESH_SECONDS", 60.0)
    port = free_port()
    config = uvicorn.Config(plain_app, host="127.0.0.1", port=port, lifespan="off", log_config=None)

    def stop(server: uvicorn.Server) -> None:
        server.should_exit = True

    check_sleeps_and_stops_at_once(quiet_server.QuietServer(config), f"http://127.0.0.1:{port}/", stop)
