"""Graceful shutdown on SIGTERM / SIGINT: in-flight requests finish, exit status 0."""

from __future__ import annotations

import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests

from tests.devhost.conftest import start_fixture_host
from tests.devhost.fixtures import wait_until


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
