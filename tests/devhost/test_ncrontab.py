"""NCRONTAB / TimeSpan schedules parsed with the Functions host's (NCrontab's) rules."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from devhost.discovery import FunctionSpec, TimerSpec
from devhost.ncrontab import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    monitor_enabled,
    parse_schedule,
    resolve_app_settings,
)
from devhost.timers import plan_timers

UTC = dt.UTC
MONDAY = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)  # 2024-01-01 is a Monday


def occurrences(expression: str, start: dt.datetime = MONDAY, count: int = 4) -> list[dt.datetime]:
    schedule = parse_schedule(expression)
    found, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment)
    return found


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_first_field_is_seconds() -> None:
    assert occurrences("*/15 * * * * *", count=5) == [
        at(2024, 1, 1, 0, 0, 15),
        at(2024, 1, 1, 0, 0, 30),
        at(2024, 1, 1, 0, 0, 45),
        at(2024, 1, 1, 0, 1, 0),
        at(2024, 1, 1, 0, 1, 15),
    ]
    assert occurrences("30 * * * * *", count=2) == [at(2024, 1, 1, 0, 0, 30), at(2024, 1, 1, 0, 1, 30)]


def test_fields_in_ncrontab_order() -> None:
    # {second} {minute} {hour} {day} {month} {day-of-week}
    assert occurrences("5 4 3 2 1 *", count=2) == [at(2024, 1, 2, 3, 4, 5), at(2025, 1, 2, 3, 4, 5)]
    assert occurrences("0 0 0 1 1 *", count=1) == [at(2025, 1, 1)]


def test_next_is_strictly_after_the_start() -> None:
    assert parse_schedule("0 0 * * * *").next_after(at(2024, 1, 1, 5, 0, 0)) == at(2024, 1, 1, 6)
    assert parse_schedule("* * * * * *").next_after(at(2024, 1, 1, 5, 0, 0)) == at(2024, 1, 1, 5, 0, 1)


def test_day_of_week_sunday_is_zero() -> None:
    assert occurrences("0 30 9 * * 0", count=2) == [at(2024, 1, 7, 9, 30), at(2024, 1, 14, 9, 30)]
    assert occurrences("0 0 12 * * 6", count=1) == [at(2024, 1, 6, 12)]  # Saturday


def test_day_of_week_seven_is_rejected_like_ncrontab() -> None:
    with pytest.raises(ScheduleError, match="day-of-week"):
        parse_schedule("0 0 12 * * 7")


@pytest.mark.parametrize("sunday", ["Sun", "sun", "SUNDAY", "Sunday", "su"])
def test_day_names_and_prefixes(sunday: str) -> None:
    assert occurrences(f"0 0 12 * * {sunday}", count=1) == [at(2024, 1, 7, 12)]


def test_weekday_name_range() -> None:
    days = [moment.weekday() for moment in occurrences("0 0 8 * * Mon-Fri", count=6)]
    assert days == [0, 1, 2, 3, 4, 0]  # Python: Monday is 0


def test_month_names() -> None:
    assert occurrences("0 0 0 1 Mar *", count=2) == [at(2024, 3, 1), at(2025, 3, 1)]
    assert occurrences("0 0 0 1 july *", count=1) == [at(2024, 7, 1)]


def test_ranges_and_steps() -> None:
    hours = [m.hour for m in occurrences("0 0 9-17/4 * * *", count=4)]
    assert hours == [9, 13, 17, 9]
    # 'n/step' runs from n to the field's maximum.
    assert [m.hour for m in occurrences("0 0 5/10 * * *", count=3)] == [5, 15, 5]
    minutes = [m.minute for m in occurrences("0 10,20,45 * * * *", count=4)]
    assert minutes == [10, 20, 45, 10]


def test_reversed_range_is_swapped_like_ncrontab() -> None:
    schedule = parse_schedule("0 0 0 * * 5-1")
    assert isinstance(schedule, CronSchedule)
    assert schedule.days_of_week == (1, 2, 3, 4, 5)


def test_day_and_day_of_week_must_both_match() -> None:
    # NCrontab requires both (Friday the 13th); Vixie cron would fire on either.
    assert occurrences("0 0 12 13 * Fri", count=2) == [at(2024, 9, 13, 12), at(2024, 12, 13, 12)]


def test_five_fields_mean_second_zero() -> None:
    assert occurrences("30 9 * * *", count=1) == [at(2024, 1, 1, 9, 30, 0)]


@pytest.mark.parametrize(
    "expression",
    [
        "60 * * * * *",
        "* 60 * * * *",
        "* * 24 * * *",
        "0 0 0 0 * *",
        "0 0 0 32 * *",
        "0 0 0 * 13 *",
        "*/0 * * * * *",
        "L * * * * *",
        "0 0 0 ? * *",
        "0 0 0 * * 1#2",
        "0 0 0 * * Funday",
        "0 0 0 1-* * *",
        "* * * * * * *",
        "* * * *",
        "every day",
        "",
    ],
)
def test_invalid_schedules(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expression)


def test_timespan_schedules() -> None:
    schedule = parse_schedule("00:00:30")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at(2024, 1, 1, 0, 0, 10)) == at(2024, 1, 1, 0, 0, 40)
    assert parse_schedule("1.02:03:04").next_after(MONDAY) == at(2024, 1, 2, 2, 3, 4)
    assert parse_schedule("00:05").next_after(MONDAY) == at(2024, 1, 1, 0, 5)
    for invalid in ("24:00:00", "00:00:00", "00:61:00"):
        with pytest.raises(ScheduleError):
            parse_schedule(invalid)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("* * * * * *").next_after(dt.datetime(2024, 1, 1))


def test_schedules_follow_the_given_time_zone() -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    moment = parse_schedule("0 0 6 * * *").next_after(dt.datetime(2024, 6, 1, 12, tzinfo=amsterdam))
    assert moment == dt.datetime(2024, 6, 2, 6, tzinfo=amsterdam)
    assert moment.astimezone(UTC).hour == 4


def test_app_setting_references_are_resolved() -> None:
    environ = {"REPORT_SCHEDULE": "0 0 6 * * *", "SECOND": "30"}
    assert resolve_app_settings("%REPORT_SCHEDULE%", environ) == "0 0 6 * * *"
    assert resolve_app_settings("%SECOND% * * * * *", environ) == "30 * * * * *"
    assert resolve_app_settings("0 0 6 * * *", environ) == "0 0 6 * * *"
    with pytest.raises(ScheduleError, match="'%MISSING%' does not resolve"):
        resolve_app_settings("%MISSING%", environ)


@pytest.mark.parametrize(
    ("expression", "use_monitor", "expected"),
    [
        ("0 0 6 * * *", None, True),
        ("0 * * * * *", None, True),  # once a minute: still monitored
        ("* * * * * *", None, False),  # more than once a minute: off by default
        ("*/10 * * * * *", True, False),  # ...even when asked for, as in the host
        ("* 30 * * * *", None, True),
        ("0 0 6 * * *", False, False),
        ("00:00:30", None, False),
        ("00:05:00", None, True),
    ],
)
def test_monitor_default_follows_the_host(expression: str, use_monitor: bool | None, expected: bool) -> None:
    assert monitor_enabled(parse_schedule(expression), use_monitor) is expected


def test_a_schedule_that_never_occurs_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="never occurs"):
        parse_schedule("0 0 0 30 2 *").next_after(MONDAY)


def timer_spec(name: str, schedule: str) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        trigger_type="timerTrigger",
        trigger_arg="timer",
        user_function=lambda timer: None,
        is_async=False,
        wants_context=False,
        timer=TimerSpec(schedule=schedule, run_on_startup=False, use_monitor=None),
    )


def test_plan_timers_resolves_settings_and_reports_bad_schedules() -> None:
    specs = [
        timer_spec("good", "%GOOD%"),
        timer_spec("frequent", "*/5 * * * * *"),
        timer_spec("unset", "%UNSET%"),
        timer_spec("invalid", "0 0 25 * * *"),
        timer_spec("never", "0 0 0 30 2 *"),
    ]
    timers, errors = plan_timers(specs, {"GOOD": "0 0 6 * * *"})
    assert [(t.spec.name, t.schedule.expression, t.monitor) for t in timers] == [
        ("good", "0 0 6 * * *", True),
        ("frequent", "*/5 * * * * *", False),
    ]
    assert set(errors) == {"unset", "invalid", "never"}
    assert "'%UNSET%' does not resolve to a value" in errors["unset"]
