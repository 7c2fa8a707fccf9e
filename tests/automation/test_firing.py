"""Firing instants of cron and recurrence triggers: time zones, DST changes, start and end, NCrontab rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mlyard.automation.firing import FiringTimes
from mlyard.core.errors import InvalidSpecError
from mlyard.specs import load_spec, load_spec_dict
from mlyard.specs.timezones import WINDOWS_TO_IANA, iana_name

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def cron(expression: str, zone: str = "UTC", **extra: str) -> FiringTimes:
    trigger = load_spec_dict({"name": "s", "trigger": {"type": "cron", "expression": expression, "time_zone": zone,
                                                       **extra}, "create_job": "azureml:j"}, "schedule").to_dict()
    return FiringTimes(trigger["trigger"], CREATED)


def recurrence(frequency: str, interval: int = 1, zone: str = "UTC", pattern: dict | None = None,
               **extra: str) -> FiringTimes:
    trigger: dict = {"type": "recurrence", "frequency": frequency, "interval": interval, "time_zone": zone, **extra}
    if pattern is not None:
        trigger["schedule"] = pattern
    spec = load_spec_dict({"name": "s", "trigger": trigger, "create_job": "azureml:j"}, "schedule").to_dict()
    return FiringTimes(spec["trigger"], CREATED)


# -- cron -----------------------------------------------------------------------------------------


def test_cron_hourly_in_utc() -> None:
    assert cron("0 * * * *").upcoming(utc(2026, 5, 1, 10, 30), 3) == [utc(2026, 5, 1, 11), utc(2026, 5, 1, 12),
                                                                     utc(2026, 5, 1, 13)]


def test_cron_daily_keeps_wall_clock_across_spring_dst_in_pacific_time() -> None:
    times = cron("0 3 * * *", "Pacific Standard Time")  # DST starts 2026-03-08 02:00 local
    got = times.upcoming(utc(2026, 3, 6), 4)
    assert [t.astimezone(ZoneInfo("America/Los_Angeles")).hour for t in got] == [3, 3, 3, 3]
    assert got == [utc(2026, 3, 6, 11), utc(2026, 3, 7, 11), utc(2026, 3, 8, 10), utc(2026, 3, 9, 10)]


def test_cron_time_skipped_by_spring_change_fires_once_after_the_jump() -> None:
    got = cron("30 2 * * *", "Pacific Standard Time").upcoming(utc(2026, 3, 7, 12), 2)
    assert got == [utc(2026, 3, 8, 10, 30), utc(2026, 3, 9, 9, 30)]  # 03:30 PDT on the change day


def test_cron_time_repeated_by_autumn_change_fires_once() -> None:
    got = cron("30 1 * * *", "W. Europe Standard Time").upcoming(utc(2026, 10, 24, 12), 3)
    # 2026-10-25: 01:30 CEST (+2) only; the wall clock never shows 01:30 twice there (change is at 03:00)
    assert got == [utc(2026, 10, 24, 23, 30), utc(2026, 10, 26, 0, 30), utc(2026, 10, 27, 0, 30)]
    twice = cron("30 1 * * *", "Pacific Standard Time").upcoming(utc(2026, 10, 31, 12), 3)
    assert twice == [utc(2026, 11, 1, 8, 30), utc(2026, 11, 2, 9, 30), utc(2026, 11, 3, 9, 30)]


def test_cron_weekdays_are_0_to_6_with_sunday_0_and_names() -> None:
    sunday = cron("0 9 * * 0").next_after(utc(2026, 5, 4))  # a Monday
    assert sunday == utc(2026, 5, 10, 9) and sunday.weekday() == 6
    assert cron("0 9 * * mon-fri").upcoming(utc(2026, 5, 8, 10), 2) == [utc(2026, 5, 11, 9), utc(2026, 5, 12, 9)]


def test_ncrontab_treats_day_of_month_and_month_as_any_with_a_warning(tmp_path: Path) -> None:
    assert cron("0 9 15 6 *").upcoming(utc(2026, 1, 1), 2) == [utc(2026, 1, 1, 9), utc(2026, 1, 2, 9)]
    file = tmp_path / "s.yml"
    file.write_text("name: s\ntrigger: {type: cron, expression: '0 9 15 6 *'}\ncreate_job: azureml:j\n")
    warnings = load_spec(file, "schedule").warnings
    assert any("day-of-month '15' and month '6'" in w and "treated as '*'" in w for w in warnings)


def test_cron_start_and_end_bound_the_instants() -> None:
    times = cron("0 * * * *", start_time="2026-05-01T10:30:00", end_time="2026-05-01T13:00:00")
    assert times.upcoming(utc(2026, 4, 1), 10) == [utc(2026, 5, 1, 11), utc(2026, 5, 1, 12), utc(2026, 5, 1, 13)]
    assert times.latest_at_or_before(utc(2026, 6, 1)) == utc(2026, 5, 1, 13)
    assert times.latest_at_or_before(utc(2026, 5, 1, 10)) is None


def test_start_time_without_offset_is_in_the_trigger_zone_and_with_offset_is_absolute() -> None:
    local = cron("0 * * * *", "Tokyo Standard Time", start_time="2026-05-01T10:00:00")
    assert local.start == utc(2026, 5, 1, 1)
    absolute = cron("0 * * * *", "Tokyo Standard Time", start_time="2026-05-01T10:00:00+00:00")
    assert absolute.start == utc(2026, 5, 1, 10)


@pytest.mark.parametrize(("expression", "field", "says"), [
    ("0 0 3 * * *", "trigger.expression", "has 6 fields"),
    ("0 3 * *", "trigger.expression", "has 4 fields"),
    ("61 * * * *", "trigger.expression", "minute field '61'"),
    ("0 3 * * 7", "trigger.expression", "0-6 with 0 = Sunday"),
])
def test_bad_cron_expressions_name_the_field(expression: str, field: str, says: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        cron(expression)
    assert err.value.field == field and says in err.value.message


# -- recurrence -----------------------------------------------------------------------------------


def test_recurrence_without_pattern_is_start_plus_k_intervals() -> None:
    times = recurrence("minute", 15, start_time="2026-05-01T10:07:00")
    assert times.next_after(utc(2026, 5, 1), inclusive=True) == utc(2026, 5, 1, 10, 7)
    assert times.upcoming(utc(2026, 5, 1, 10, 7), 3) == [utc(2026, 5, 1, 10, 22), utc(2026, 5, 1, 10, 37),
                                                         utc(2026, 5, 1, 10, 52)]
    assert times.latest_at_or_before(utc(2026, 5, 1, 11)) == utc(2026, 5, 1, 10, 52)


def test_hour_recurrence_counts_elapsed_time_across_dst() -> None:
    got = recurrence("hour", 2, "W. Europe Standard Time", start_time="2026-03-28T23:00:00").upcoming(
        utc(2026, 3, 28, 21), 4)
    assert got == [utc(2026, 3, 28, 22), utc(2026, 3, 29, 0), utc(2026, 3, 29, 2), utc(2026, 3, 29, 4)]


def test_daily_pattern_keeps_wall_clock_across_dst_in_west_europe() -> None:
    times = recurrence("day", 1, "W. Europe Standard Time", {"hours": [4, 16], "minutes": [0, 30]},
                       start_time="2026-03-27T00:00:00")
    got = times.upcoming(utc(2026, 3, 28, 12), 5)
    # 2026-03-29: clocks go from +1 to +2 at 02:00 UTC
    assert got == [utc(2026, 3, 28, 15), utc(2026, 3, 28, 15, 30), utc(2026, 3, 29, 2), utc(2026, 3, 29, 2, 30),
                   utc(2026, 3, 29, 14)]


def test_weekly_pattern_on_week_days_with_interval() -> None:
    times = recurrence("week", 2, pattern={"hours": 6, "minutes": 0, "week_days": ["monday", "friday"]},
                       start_time="2026-05-04T00:00:00")  # a Monday
    assert times.upcoming(utc(2026, 5, 1), 5) == [utc(2026, 5, 4, 6), utc(2026, 5, 8, 6), utc(2026, 5, 18, 6),
                                                  utc(2026, 5, 22, 6), utc(2026, 6, 1, 6)]


def test_daily_pattern_filtered_by_week_days() -> None:
    times = recurrence("day", 1, pattern={"hours": 9, "minutes": 0, "week_days": ["saturday"]},
                       start_time="2026-05-04T00:00:00")
    assert times.upcoming(utc(2026, 5, 4), 2) == [utc(2026, 5, 9, 9), utc(2026, 5, 16, 9)]


def test_monthly_on_month_days_and_clamped_start_day() -> None:
    days = recurrence("month", 1, pattern={"hours": 1, "minutes": 0, "month_days": [1, 15]},
                      start_time="2026-01-10T00:00:00")
    assert days.upcoming(utc(2026, 1, 10), 3) == [utc(2026, 1, 15, 1), utc(2026, 2, 1, 1), utc(2026, 2, 15, 1)]
    clamped = recurrence("month", 1, start_time="2026-01-31T09:00:00")
    assert clamped.upcoming(utc(2026, 1, 31, 9), 2) == [utc(2026, 2, 28, 9), utc(2026, 3, 31, 9)]


def test_start_in_the_past_gives_the_next_occurrence_and_end_stops_it() -> None:
    times = recurrence("day", 1, pattern={"hours": 3, "minutes": 0}, start_time="2020-01-01T00:00:00",
                       end_time="2026-05-03T00:00:00")
    assert times.upcoming(utc(2026, 5, 1, 12), 5) == [utc(2026, 5, 2, 3)]


def test_pattern_needs_hours_and_minutes() -> None:
    with pytest.raises(InvalidSpecError) as err:
        recurrence("day", 1, pattern={"hours": [4]})
    assert "trigger.schedule.minutes" in err.value.message


# -- time zones -----------------------------------------------------------------------------------


def test_every_windows_zone_maps_to_a_zone_this_machine_knows() -> None:
    for windows, iana in WINDOWS_TO_IANA.items():
        assert ZoneInfo(iana).key == iana, windows
    assert iana_name("pacific standard time") == "America/Los_Angeles"
    assert iana_name("Europe/Berlin") == "Europe/Berlin"


@pytest.mark.parametrize("key", ["time_zone", "timezone"])
def test_unknown_time_zone_is_an_error_naming_the_field(key: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        load_spec_dict({"name": "s", "trigger": {"type": "cron", "expression": "0 * * * *", key: "Mars Time"},
                        "create_job": "azureml:j"}, "schedule")
    assert err.value.field == f"trigger.{key}" and "'Mars Time' is not a time zone" in err.value.message


def test_both_spellings_of_the_pattern_key() -> None:
    a = recurrence("day", 1, pattern={"hours": 3, "minutes": 0})
    spec = load_spec_dict({"name": "s", "create_job": "azureml:j", "trigger": {
        "type": "recurrence", "frequency": "day", "timezone": "UTC", "pattern": {"hours": 3, "minutes": 0}}},
        "schedule").to_dict()
    b = FiringTimes(spec["trigger"], CREATED)
    assert a.upcoming(utc(2026, 5, 1), 3) == b.upcoming(utc(2026, 5, 1), 3)


def test_intervals_and_starts_past_the_range_of_dates_give_no_instant() -> None:
    assert recurrence("month", 10**9).next_after(utc(2026, 5, 1)) is None
    assert cron("0 * * * *", start_time="9999-12-31T23:30:00").next_after(utc(2026, 5, 1)) is None
    with pytest.raises(ValueError, match="too large"):
        recurrence("minute", 10**15)
