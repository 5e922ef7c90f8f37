"""Reusable test helpers: Azurite on free ports, and devhost as a real process.

Fixtures (register them elsewhere with ``pytest_plugins = ["tests.devhost.fixtures"]``
in the top-level ``tests/conftest.py``):

* ``azurite`` (session): an in-memory Azurite on three free loopback ports;
  ``azurite.connection_string`` is the full ``DefaultEndpointsProtocol=http;...``
  string (well-known dev account and key). Fails (never skips) when ``node_modules``
  lacks Azurite.

Helpers: ``start_devhost(app_dir, ...)`` runs ``python -m devhost`` on a free
port and returns a ``DevHostProcess`` once ``/admin/host/status`` answers. In a pytest session the process is
forked from this worker's zygote (tests/support/spawn.py; ``PYTEST_ZYGOTE=0`` starts plain processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devhost.azurite import Azurite, AzuriteError, azurite_executable
from tests.support import spawn
from tests.support.ports import free_port, free_port_range
from tests.support.spawn import ChildProcess, spawn_module

REPO_ROOT = Path(__file__).resolve().parents[2]
# Variables from the developer's shell that would change what a test host does.
_INHERITED_PREFIXES = ("AzureWebJobs", "AzureFunctionsWebHost", "FIXTURE_", "PYTHON_THREADPOOL")
# Polls (readiness, wait_until) start at 50 ms and back off to 250 ms: each poll of a host is a request that
# costs CPU in the test and in the host, and on two cores that CPU is what the whole suite waits for.
_FIRST_POLL = 0.05
_LAST_POLL = 0.25


@dataclass
class DevHostProcess:
    process: ChildProcess
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait; returns the exit status (kills after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
                raise
        return self.process.returncode


def start_devhost(
    app_dir: Path,
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    startup_timeout: float = 120.0,
) -> DevHostProcess:
    """Start devhost and return once ``/admin/host/status`` answers.

    ``startup_timeout`` only bounds a host that never comes up: a healthy one returns as soon as it answers,
    so the bound is generous (at 30 s, four hosts failed to start on this 2-core machine at a load of 24)."""
    port = free_port()
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(_INHERITED_PREFIXES)
    }
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), environment.get("PYTHONPATH", "")) if p
    )
    environment["PYTHONUNBUFFERED"] = "1"
    # The shell's PYTHONDONTWRITEBYTECODE made every host compile the app's sources again (about 0.2 CPU-s):
    # hosts write their bytecode (__pycache__ is ignored by git) unless the test asks otherwise.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment.update(env or {})
    command = ["--app-dir", str(app_dir), "--port", str(port), *args]
    with log_path.open("ab") as log:
        process = spawn_module(
            "devhost",
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    host = DevHostProcess(process, port, log_path)
    deadline = time.monotonic() + startup_timeout
    interval = _FIRST_POLL
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"devhost exited with {process.returncode}:\n{host.log()}")
        try:
            if requests.get(host.url("/admin/host/status"), timeout=1).status_code == 200:
                return host
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            host.stop(signal.SIGKILL)
            raise RuntimeError(f"devhost did not start within {startup_timeout} s:\n{host.log()}")
        time.sleep(interval)
        interval = min(interval * 1.5, _LAST_POLL)


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition`` (after 50 ms, then at growing intervals up to 250 ms); fail the test after
    ``timeout`` seconds. Conditions are states that last (a file, a count, a run's state), never a moment."""
    deadline = time.monotonic() + timeout
    interval = _FIRST_POLL
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, _LAST_POLL)


def pytest_configure(config: pytest.Config) -> None:
    """Hosts and tenants of this session (of each xdist worker) fork from one zygote per process.

    A suite started in the background by a non-interactive shell (``cmd &``, nohup) inherits SIGINT
    ignored, and so would every process it starts: Python installs its KeyboardInterrupt handler only
    where SIGINT is not ignored at start. The tests of Ctrl+C (devhost, the zygote's children, ``make
    run``) need what an interactive start gives, so the handler is put back before any process starts."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    spawn.enable()


def pytest_unconfigure(config: pytest.Config) -> None:
    spawn.shutdown()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    try:
        azurite_executable()
    except AzuriteError as error:
        # Azurite is installed by `make install` (node_modules): its absence fails the tests that need it,
        # in CI and on a laptop alike, rather than skipping them out of sight.
        pytest.fail(f"{error} (run `make install`)")
    base = free_port_range(3)
    instance = Azurite(
        in_memory=True,
        blob_port=base,
        queue_port=base + 1,
        table_port=base + 2,
        extent_memory_limit_mb=256,
        log_path=tmp_path_factory.mktemp("azurite") / "azurite.log",
    )
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
