"""Rule 4: averaging at the same wall-clock time, kW from kWh, and DST days."""

from __future__ import annotations

import datetime

import pandas as pd
import pytest

from settlements.baselines import BaselineSpec, compute_baseline
from tests.settlements.baselines.helpers import (
    TZ,
    constant_days,
    day,
    day_index,
    levels_by_day,
    local,
    set_kw,
)

TWO_WEEKEND_DAYS = BaselineSpec(
    pool_days=2, select_days=2, selection="all", day_type="weekend", lookback_days=10
)
# Sunday 2026-03-08 springs forward (02:00 -> 03:00); Sunday 2026-11-01 falls back
# (the 01:00 hour happens twice: 05:00-06:00 UTC in EDT, then 06:00-07:00 UTC in EST).
SPRING_FORWARD = day("2026-03-08")
FALL_BACK = day("2026-11-01")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_dst_days_have_92_and_100_quarter_hours() -> None:
    assert len(day_index(SPRING_FORWARD, 15)) == 92
    assert len(day_index(FALL_BACK, 15)) == 100
    assert len(day_index(day("2026-06-16"), 15)) == 96


def test_it_averages_kw_at_the_same_wall_clock_time_from_kwh_readings() -> None:
    readings = constant_days(levels_by_day("2026-06-01", "2026-06-17", 1.0), minutes=15)
    # 15-minute kWh: 2 kWh in a quarter-hour is 8 kW.
    readings.loc[local("2026-06-16 14:00")] = 2.0
    readings.loc[local("2026-06-16 14:15")] = 3.0
    readings.loc[local("2026-06-15 14:00")] = 1.0
    readings.loc[local("2026-06-15 14:15")] = 1.5
    spec = BaselineSpec(pool_days=2, select_days=2, day_type="weekday", lookback_days=5)

    result = compute_baseline(
        readings, local("2026-06-17 14:00"), local("2026-06-17 14:30"), spec, tz=TZ
    )

    assert result.interval_minutes == 15
    assert list(result.unadjusted_kw) == pytest.approx([(8 + 4) / 2, (12 + 6) / 2])
    assert list(result.baseline_kw) == list(result.unadjusted_kw)
    assert result.adjustment == 0.0


def test_a_spring_forward_baseline_day_leaves_its_missing_hour_to_the_other_days() -> None:
    levels = levels_by_day("2026-03-01", "2026-03-15", 1.0)
    levels[day("2026-03-14")] = 10.0
    levels[SPRING_FORWARD] = 20.0
    readings = constant_days(levels, minutes=15)

    result = compute_baseline(
        readings,
        local("2026-03-15 01:00"),
        local("2026-03-15 04:00"),
        TWO_WEEKEND_DAYS,
        tz=TZ,
    )

    assert result.candidate_days == (day("2026-03-14"), SPRING_FORWARD)
    expected = [15.0] * 4 + [10.0] * 4 + [15.0] * 4  # 02:00-02:59 exists only on the 14th
    assert list(result.baseline_kw) == pytest.approx(expected)


def test_a_fall_back_baseline_day_uses_the_mean_of_its_two_readings() -> None:
    levels = levels_by_day("2026-10-25", "2026-11-08", 1.0)
    levels[day("2026-11-07")] = 10.0
    levels[FALL_BACK] = 20.0
    readings = constant_days(levels, minutes=15)
    for minute in (0, 15, 30, 45):  # the second 01:xx (EST) at 40 kW, the first at 20 kW
        readings.loc[utc(f"2026-11-01 06:{minute:02d}")] = 10.0

    result = compute_baseline(
        readings,
        local("2026-11-08 00:00"),
        local("2026-11-08 03:00"),
        TWO_WEEKEND_DAYS,
        tz=TZ,
    )

    assert result.candidate_days == (day("2026-11-07"), FALL_BACK)
    # 01:xx: mean(10, mean(20, 40)) = 20; other hours mean(10, 20) = 15.
    assert list(result.baseline_kw) == pytest.approx([15.0] * 4 + [20.0] * 4 + [15.0] * 4)


def test_a_fall_back_day_missing_one_of_its_repeated_readings_is_ineligible() -> None:
    levels = levels_by_day("2026-10-25", "2026-11-08", 1.0)
    levels[day("2026-11-07")] = 10.0
    levels[day("2026-10-31")] = 30.0
    readings = constant_days(levels, minutes=15).drop(utc("2026-11-01 06:15"))

    result = compute_baseline(
        readings,
        local("2026-11-08 00:00"),
        local("2026-11-08 03:00"),
        TWO_WEEKEND_DAYS,
        tz=TZ,
    )

    assert result.candidate_days == (day("2026-11-07"), day("2026-10-31"))
    assert list(result.baseline_kw) == pytest.approx([20.0] * 12)


def test_an_event_over_the_fall_back_hour_gets_each_repeated_interval() -> None:
    levels = levels_by_day("2026-10-20", "2026-11-01", 1.0)
    levels[day("2026-10-31")] = 10.0
    levels[day("2026-10-25")] = 20.0
    readings = constant_days(levels, minutes=15)
    set_kw(readings, local("2026-10-31 01:15"), 50.0, minutes=15)

    result = compute_baseline(
        readings, local("2026-11-01 00:00"), utc("2026-11-01 08:00"), TWO_WEEKEND_DAYS, tz=TZ
    )

    # 00:00 EDT to 03:00 EST is four real hours: 16 quarter-hours, 01:xx twice.
    assert len(result.baseline_kw) == 16
    assert result.baseline_kw.index.is_unique
    expected = [15.0] * 16
    expected[5] = expected[9] = (50 + 20) / 2  # both 01:15 intervals
    assert list(result.baseline_kw) == pytest.approx(expected)


def test_an_event_over_the_spring_forward_gap_has_no_skipped_intervals() -> None:
    levels = levels_by_day("2026-02-20", "2026-03-08", 1.0)
    levels[day("2026-03-07")] = 10.0
    levels[day("2026-03-01")] = 20.0
    readings = constant_days(levels, minutes=15)

    result = compute_baseline(
        readings, local("2026-03-08 00:00"), local("2026-03-08 04:00"), TWO_WEEKEND_DAYS, tz=TZ
    )

    wall_hours = {stamp.hour for stamp in result.baseline_kw.index}
    assert len(result.baseline_kw) == 12
    assert wall_hours == {0, 1, 3}
    assert list(result.baseline_kw) == pytest.approx([15.0] * 12)


def test_hourly_readings_give_23_and_25_hour_dst_days() -> None:
    assert len(day_index(SPRING_FORWARD)) == 23
    assert len(day_index(FALL_BACK)) == 25
    assert day_index(FALL_BACK)[0].date() == datetime.date(2026, 11, 1)
