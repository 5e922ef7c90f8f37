"""Schedule status JSON and the host's past-due rule (ScheduleMonitor.CheckPastDueAsync)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from devhost.ncrontab import parse_schedule
from devhost.schedule_status import (
    MemoryStatusStore,
    ScheduleStatus,
    check_past_due,
    timer_lookup_name,
)

UTC = dt.UTC
YEARLY = parse_schedule("0 0 0 1 1 *")
NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def at(year: int, month: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=UTC)


def test_json_shape_matches_the_host() -> None:
    status = ScheduleStatus(next=at(2025), last=at(2024), last_updated=at(2024))
    assert json.loads(status.to_json()) == {
        "Last": "2024-01-01T00:00:00+00:00",
        "Next": "2025-01-01T00:00:00+00:00",
        "LastUpdated": "2024-01-01T00:00:00+00:00",
    }
    never = ScheduleStatus(next=at(2025))
    assert never.as_dict()["Last"] == "0001-01-01T00:00:00"


def test_reads_what_the_dotnet_host_writes() -> None:
    text = (
        '{"Last":"2019-03-28T16:05:00.0068261-07:00","Next":"2019-03-28T16:10:00-07:00",'
        '"LastUpdated":"0001-01-01T00:00:00"}'
    )
    status = ScheduleStatus.from_json(text, UTC)
    assert status.last == dt.datetime(2019, 3, 28, 23, 5, 0, 6826, tzinfo=UTC)
    assert status.next == dt.datetime(2019, 3, 28, 23, 10, tzinfo=UTC)
    assert status.last_updated is None
    naive = ScheduleStatus.from_json('{"Next": "2025-01-01T00:00:00"}', UTC)
    assert naive.next == at(2025)


def test_round_trip() -> None:
    status = ScheduleStatus(next=at(2025), last=NOW, last_updated=NOW)
    assert ScheduleStatus.from_json(status.to_json(), UTC) == status


def check(recorded: ScheduleStatus | None) -> tuple[dt.timedelta, ScheduleStatus, MemoryStatusStore]:
    store = MemoryStatusStore()
    late, status = asyncio.run(check_past_due(store, "Host.Functions.t", NOW, YEARLY, recorded))
    return late, status, store


def test_first_start_records_the_next_occurrence() -> None:
    late, status, store = check(None)
    assert late == dt.timedelta(0)
    assert status == ScheduleStatus(next=at(2025), last_updated=NOW)
    assert asyncio.run(store.get("Host.Functions.t")) == status


def test_a_recorded_next_in_the_past_is_past_due() -> None:
    recorded = ScheduleStatus(next=at(2024), last=at(2023), last_updated=at(2023))
    late, status, store = check(recorded)
    assert late == NOW - at(2024)
    assert status == recorded
    assert asyncio.run(store.get("Host.Functions.t")) is None  # nothing rewritten


def test_a_recorded_next_in_the_future_is_not_past_due() -> None:
    recorded = ScheduleStatus(next=at(2025), last=at(2024), last_updated=at(2024))
    late, status, _ = check(recorded)
    assert (late, status) == (dt.timedelta(0), recorded)


def test_a_changed_schedule_is_not_past_due() -> None:
    # Next does not follow from Last under the current (yearly) schedule: the
    # schedule changed, so the host recomputes Next instead of running late.
    recorded = ScheduleStatus(next=at(2024, 3, 1), last=at(2024, 2, 1), last_updated=at(2024, 2, 1))
    late, status, store = check(recorded)
    assert late == dt.timedelta(0)
    assert status == ScheduleStatus(next=at(2025), last=None, last_updated=at(2024, 2, 1))
    assert asyncio.run(store.get("Host.Functions.t")) == status


def test_a_changed_schedule_whose_next_has_passed_starts_from_now() -> None:
    recorded = ScheduleStatus(next=at(2022, 7, 1), last=at(2022, 6, 1), last_updated=at(2022, 6, 1))
    late, status, store = check(recorded)
    assert late == dt.timedelta(0)
    assert status == ScheduleStatus(next=at(2025), last=None, last_updated=NOW)
    assert asyncio.run(store.get("Host.Functions.t")) == status


def test_never_run_timer_uses_last_updated() -> None:
    recorded = ScheduleStatus(next=at(2024), last=None, last_updated=at(2023, 6))
    late, _, _ = check(recorded)
    assert late == NOW - at(2024)


def test_lookup_name_is_the_hosts() -> None:
    assert timer_lookup_name("nightly") == "Host.Functions.nightly"
