"""Fixtures for devhost's tests: the fixture app, run by a real devhost process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The `azurite` fixture comes from tests/conftest.py (pytest_plugins), shared with the integration suite.
from tests.devhost.fixtures import DevHostProcess, start_devhost

FIXTURE_APP = Path(__file__).resolve().parent / "fixture_app"
FIXTURE_SETTINGS = FIXTURE_APP / "fixture.settings.json"


def read_records(out_dir: Path, function: str) -> list[dict[str, Any]]:
    """What the fixture app's timer ``function`` received, one dict per invocation."""
    path = out_dir / f"{function}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_fixture_host(
    tmp_path: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[DevHostProcess, Path]:
    out_dir = tmp_path / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    host = start_devhost(
        FIXTURE_APP,
        log_path=tmp_path / "devhost.log",
        env={"DEVHOST_FIXTURE_OUT": str(out_dir), **(env or {})},
        args=("--settings", str(FIXTURE_SETTINGS), *args),
    )
    return host, out_dir


@pytest.fixture(scope="module")
def http_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    """One devhost (timers off) shared by a module's HTTP tests."""
    host, _ = start_fixture_host(
        tmp_path_factory.mktemp("http_host"),
        env={"PYTHON_THREADPOOL_THREAD_COUNT": "8"},
        args=("--no-timers",),
    )
    try:
        yield host
    finally:
        host.stop()
