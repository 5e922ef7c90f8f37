"""devhost's clock for the served app (devhost/clock.py): ``/admin/devhost/clock`` and ``--preload``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devhost.clock import DevClock
from tests.devhost.conftest import FIXTURE_APP, FIXTURE_SETTINGS, start_fixture_host
from tests.devhost.fixtures import REPO_ROOT, DevHostProcess


def test_advance_moves_monotonic_forward_and_never_back() -> None:
    clock = DevClock()
    before = clock.monotonic()
    assert clock.advance(90) == 90
    assert clock.monotonic() - before >= 90
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            clock.advance(bad)
    assert clock.offset == 90


def test_a_frozen_clock_moves_only_when_advanced_and_thaws_without_a_jump() -> None:
    clock = DevClock()
    clock.freeze(True)
    frozen = clock.monotonic()
    time.sleep(0.05)
    assert clock.monotonic() == frozen
    clock.advance(10)
    assert clock.monotonic() == frozen + 10
    time.sleep(0.05)
    clock.freeze(False)
    thawed = clock.monotonic()
    assert frozen + 10 <= thawed < frozen + 10.05  # from where it stood: the 50 ms frozen are not counted
    time.sleep(0.02)
    assert clock.monotonic() > thawed


def test_skipped_sleeps_advance_the_clock_at_once() -> None:
    clock = DevClock()
    clock.skip_sleeps(True)
    started = time.monotonic()
    clock.sleep(120)
    assert time.monotonic() - started < 60  # not slept: 120 s would be
    assert clock.offset == 120
    clock.skip_sleeps(False)
    clock.sleep(0.01)
    assert clock.offset == 120


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        [],
        {"advanceSeconds": -1},
        {"advanceSeconds": "5"},
        {"advanceSeconds": True},
        {"skipSleeps": "yes"},
        {"advanceSeconds": 1, "other": 2},
    ],
)
def test_apply_refuses_anything_but_the_documented_body(body: object) -> None:
    clock = DevClock()
    with pytest.raises(ValueError):
        clock.apply(body)
    assert clock.describe() == {"offsetSeconds": 0.0, "frozen": False, "skipSleeps": False}


def test_the_admin_api_reads_and_moves_the_hosts_clock(http_host: DevHostProcess) -> None:
    url = http_host.url("/admin/devhost/clock")
    start = requests.get(url, timeout=10).json()
    moved = requests.post(url, json={"advanceSeconds": 30, "skipSleeps": True}, timeout=10)
    assert moved.status_code == 200
    assert moved.json() == {"offsetSeconds": start["offsetSeconds"] + 30, "frozen": False, "skipSleeps": True}
    assert requests.post(url, json={"frozen": True}, timeout=10).json()["frozen"] is True
    assert requests.post(url, json={"frozen": False}, timeout=10).json()["frozen"] is False
    refused = requests.post(url, json={"advanceSeconds": -5}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_clock"
    garbled = requests.post(url, data=b"{not json", timeout=10)
    assert garbled.status_code == 400 and garbled.json()["error"]["code"] == "invalid_clock"
    assert requests.post(url, json={"skipSleeps": False}, timeout=10).json()["skipSleeps"] is False
    assert requests.get(url, timeout=10).json()["offsetSeconds"] <= start["offsetSeconds"] + 30


def test_preload_runs_before_the_app_and_a_failing_one_stops_the_host(tmp_path: Path) -> None:
    host, _ = start_fixture_host(tmp_path / "ok", args=("--no-timers", "--preload", "devhost.clock"))
    try:
        assert requests.get(host.url("/admin/host/status"), timeout=10).status_code == 200
    finally:
        host.stop()
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "--app-dir",
            str(FIXTURE_APP),
            "--settings",
            str(FIXTURE_SETTINGS),
            "--port",
            "1",
            "--preload",
            "no_such_module_for_devhost",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 3, failed.stderr
    assert "Preloading no_such_module_for_devhost failed" in failed.stderr
