"""Timer triggers fired by a real devhost process (schedule status in memory)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from devhost.timers import timezone_warning
from tests.devhost.conftest import read_records, start_fixture_host
from tests.devhost.fixtures import DevHostProcess, wait_until

TIMEOUT = 15


@pytest.fixture(scope="module")
def timer_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevHostProcess, Path]]:
    host, out_dir = start_fixture_host(
        tmp_path_factory.mktemp("timer_host"),
        env={
            # The environment wins over the settings file (whose schedule is yearly).
            "FIXTURE_TIMER_SCHEDULE": "*/2 * * * * *",
            "FIXTURE_GREETING": "from-environment",
        },
    )
    try:
        yield host, out_dir
    finally:
        host.stop()


def test_every_second_schedule_fires_repeatedly(timer_host: tuple[DevHostProcess, Path]) -> None:
    _, out = timer_host
    wait_until(lambda: len(read_records(out, "every_second")) >= 3, what="3 runs of every_second")
    records = read_records(out, "every_second")
    assert all(r["past_due"] is False for r in records)
    # More than once a minute: the schedule monitor is off, so no status is passed.
    assert all(r["schedule_status"] == {} for r in records)
    times = [r["at"] for r in records]
    assert times == sorted(times)


def test_timespan_schedule_fires_repeatedly(timer_host: tuple[DevHostProcess, Path]) -> None:
    _, out = timer_host
    wait_until(lambda: len(read_records(out, "timespan_timer")) >= 2, what="2 runs of timespan_timer")


def test_schedule_from_an_app_setting_with_env_precedence(timer_host: tuple[DevHostProcess, Path]) -> None:
    host, out = timer_host
    wait_until(lambda: len(read_records(out, "from_setting")) >= 1, what="from_setting to run")
    assert "from_setting: timerTrigger '*/2 * * * * *'" in host.log()
    assert "Skipping 'FIXTURE_TIMER_SCHEDULE'" in host.log()
    greeting = requests.get(host.url("/api/settings"), timeout=TIMEOUT).json()["greeting"]
    assert greeting == "from-environment"


def test_run_on_startup_runs_once_at_start(timer_host: tuple[DevHostProcess, Path]) -> None:
    _, out = timer_host
    wait_until(lambda: len(read_records(out, "on_startup")) >= 1, what="on_startup to run")
    (record,) = read_records(out, "on_startup")
    assert record["past_due"] is False
    status = record["schedule_status"]  # yearly: monitored, so the status is passed
    assert dt.datetime.fromisoformat(status["Next"]).month == 1
    assert status["Last"] == "0001-01-01T00:00:00"


def ran_once(out: Path, name: str) -> bool:
    return len(read_records(out, name)) == 1


def test_admin_api_runs_a_timer_now(timer_host: tuple[DevHostProcess, Path]) -> None:
    host, out = timer_host
    for name in ("yearly", "async_yearly"):
        response = requests.post(host.url(f"/admin/functions/{name}"), json={"input": ""}, timeout=TIMEOUT)
        assert response.status_code == 202
        wait_until(partial(ran_once, out, name), what=f"{name} to run")
        assert read_records(out, name)[0]["past_due"] is False


def test_a_failing_timer_is_logged_and_does_not_stop_anything(
    timer_host: tuple[DevHostProcess, Path],
) -> None:
    host, out = timer_host
    for _ in range(2):  # the second run proves the timer's lock was released
        response = requests.post(host.url("/admin/functions/failing_timer"), json={}, timeout=TIMEOUT)
        assert response.status_code == 202
    wait_until(lambda: len(read_records(out, "failing_timer")) == 2, what="failing_timer to run twice")
    wait_until(
        lambda: host.log().count("Executed 'Functions.failing_timer' (Failed") == 2, what="failure log"
    )
    assert "RuntimeError: fixture timer failure" in host.log()
    runs = len(read_records(out, "every_second"))
    wait_until(lambda: len(read_records(out, "every_second")) > runs, what="every_second to keep running")
    assert requests.get(host.url("/api/health"), timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize(
    ("environ", "zone", "warns"),
    [
        ({}, "Europe/Paris", True),
        ({}, "America/New_York", True),
        ({}, "Europe/London", True),  # UTC+0 in winter only
        ({}, "UTC", False),
        ({}, "Etc/UTC", False),
        ({}, "Africa/Abidjan", False),  # UTC+0 all year: fires when UTC does
        ({"WEBSITE_TIME_ZONE": "Europe/Paris"}, "Europe/Paris", False),  # chosen on purpose
    ],
)
def test_timezone_warning(environ: dict[str, str], zone: str, warns: bool) -> None:
    warning = timezone_warning(environ, ZoneInfo(zone), year=2025)
    assert (warning is not None) == warns
    if warning is not None:
        assert zone in warning
        assert "UTC in Azure" in warning
        assert "WEBSITE_TIME_ZONE" in warning


ZONE_WARNING = "Timer schedules run in Europe/Paris, this machine's time zone"


def test_a_local_time_zone_other_than_utc_is_warned_about_at_start(tmp_path: Path) -> None:
    host, _ = start_fixture_host(tmp_path / "paris", env={"TZ": "Europe/Paris"}, args=("--no-timers",))
    try:
        assert ZONE_WARNING in host.log()
    finally:
        assert host.stop() == 0
    chosen, _ = start_fixture_host(
        tmp_path / "chosen",
        env={"TZ": "Europe/Paris", "WEBSITE_TIME_ZONE": "Europe/Paris"},
        args=("--no-timers",),
    )
    try:
        assert "Timer schedules run in" not in chosen.log()
    finally:
        assert chosen.stop() == 0


def test_invalid_schedule_puts_only_that_function_in_error(tmp_path: Path) -> None:
    host, _ = start_fixture_host(
        tmp_path, env={"FIXTURE_TIMER_SCHEDULE": "every morning"}, args=("--no-timers",)
    )
    try:
        status = requests.get(host.url("/admin/host/status"), timeout=TIMEOUT).json()
        assert any(error.startswith("from_setting: ") for error in status["errors"])
        response = requests.post(host.url("/admin/functions/from_setting"), json={}, timeout=TIMEOUT)
        assert (response.status_code, response.json()["error"]["code"]) == (409, "FunctionInError")
        assert requests.get(host.url("/api/health"), timeout=TIMEOUT).status_code == 200
    finally:
        assert host.stop() == 0
