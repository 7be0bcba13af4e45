"""Rule 1 (candidate days), day types and rule 6 (too few days)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from settlements.baselines import BaselineSpec, InsufficientData, compute_baseline
from tests.settlements.baselines.helpers import TZ, constant_days, day, levels_by_day, local

# June 2026: Mon 1 .. Fri 5, Sat 6, Sun 7, Mon 8 .. Fri 12, Sat 13, Sun 14, Mon 15,
# Tue 16, Wed 17, Thu 18, Fri 19, Sat 20, Sun 21. Each day's load is its day of month in kW.
THREE_WEEKDAYS = BaselineSpec(
    pool_days=3, select_days=3, selection="all", day_type="weekday", lookback_days=10
)
WEDNESDAY_START, WEDNESDAY_END = local("2026-06-17 14:00"), local("2026-06-17 18:00")


def june(kw: float | None = None) -> pd.Series:
    return constant_days(levels_by_day("2026-06-01", "2026-06-21", kw))


def test_it_walks_back_from_the_day_before_the_event_keeping_like_days() -> None:
    result = compute_baseline(june(), WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS, tz=TZ)

    assert result.candidate_days == (day("2026-06-16"), day("2026-06-15"), day("2026-06-12"))
    assert result.selected_days == result.candidate_days
    assert list(result.baseline_kw) == pytest.approx([(16 + 15 + 12) / 3] * 4)
    assert list(result.baseline_kw.index) == list(
        pd.date_range(WEDNESDAY_START, WEDNESDAY_END, freq="60min", inclusive="left")
    )
    assert result.warnings == ()


def test_it_skips_a_day_missing_an_interval_of_the_event_window() -> None:
    readings = june().drop(local("2026-06-16 15:00"))

    result = compute_baseline(readings, WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS, tz=TZ)

    assert result.candidate_days == (day("2026-06-15"), day("2026-06-12"), day("2026-06-11"))
    assert list(result.baseline_kw) == pytest.approx([(15 + 12 + 11) / 3] * 4)


def test_it_skips_a_day_with_a_nan_reading_in_the_event_window() -> None:
    readings = june()
    readings.loc[local("2026-06-15 17:00")] = float("nan")

    result = compute_baseline(readings, WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS, tz=TZ)

    assert result.candidate_days == (day("2026-06-16"), day("2026-06-12"), day("2026-06-11"))


def test_a_day_missing_only_intervals_the_method_does_not_use_stays_eligible() -> None:
    readings = june().drop([local("2026-06-16 03:00"), local("2026-06-16 18:00")])

    result = compute_baseline(readings, WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS, tz=TZ)

    assert result.candidate_days[0] == day("2026-06-16")


def test_a_day_missing_an_adjustment_window_interval_is_ineligible() -> None:
    spec = dataclasses.replace(
        THREE_WEEKDAYS, adjustment="additive", adjustment_hours=3, adjustment_gap_hours=1
    )
    # The window is 10:00-13:00, so 11:00 is used and 13:00 (the gap) is not.
    readings = june().drop([local("2026-06-16 11:00"), local("2026-06-15 13:00")])

    result = compute_baseline(readings, WEDNESDAY_START, WEDNESDAY_END, spec, tz=TZ)

    assert result.candidate_days == (day("2026-06-15"), day("2026-06-12"), day("2026-06-11"))


def test_it_never_uses_excluded_dates_or_holidays_for_a_weekday_event() -> None:
    result = compute_baseline(
        june(),
        WEDNESDAY_START,
        WEDNESDAY_END,
        THREE_WEEKDAYS,
        tz=TZ,
        excluded_dates=[day("2026-06-16")],
        holidays=[day("2026-06-15")],
    )

    assert result.candidate_days == (day("2026-06-12"), day("2026-06-11"), day("2026-06-10"))
    assert list(result.baseline_kw) == pytest.approx([11.0] * 4)


def test_same_day_type_uses_weekend_days_and_holidays_for_a_weekend_event() -> None:
    spec = dataclasses.replace(THREE_WEEKDAYS, day_type="same")

    result = compute_baseline(
        june(),
        local("2026-06-21 14:00"),
        local("2026-06-21 18:00"),
        spec,
        tz=TZ,
        holidays=[day("2026-06-19")],
    )

    assert result.candidate_days == (day("2026-06-20"), day("2026-06-19"), day("2026-06-14"))
    assert list(result.baseline_kw) == pytest.approx([(20 + 19 + 14) / 3] * 4)


def test_same_day_type_treats_a_holiday_event_like_a_weekend_event() -> None:
    spec = dataclasses.replace(THREE_WEEKDAYS, day_type="same", lookback_days=12)

    result = compute_baseline(
        june(),
        local("2026-06-19 14:00"),
        local("2026-06-19 18:00"),
        spec,
        tz=TZ,
        holidays=[day("2026-06-19")],
    )

    assert result.candidate_days == (day("2026-06-14"), day("2026-06-13"), day("2026-06-07"))


def test_same_day_type_uses_weekday_non_holidays_for_a_weekday_event() -> None:
    spec = dataclasses.replace(THREE_WEEKDAYS, day_type="same")

    result = compute_baseline(
        june(), WEDNESDAY_START, WEDNESDAY_END, spec, tz=TZ, holidays=[day("2026-06-15")]
    )

    assert result.candidate_days == (day("2026-06-16"), day("2026-06-12"), day("2026-06-11"))


@pytest.mark.parametrize(
    ("day_type", "expected"),
    [
        ("weekday", ("2026-06-16", "2026-06-15", "2026-06-12")),
        ("weekend", ("2026-06-14", "2026-06-13", "2026-06-07")),
        ("any", ("2026-06-16", "2026-06-15", "2026-06-14")),
    ],
)
def test_it_keeps_only_days_of_the_requested_type(day_type: str, expected: tuple[str]) -> None:
    spec = dataclasses.replace(THREE_WEEKDAYS, day_type=day_type)

    result = compute_baseline(june(), WEDNESDAY_START, WEDNESDAY_END, spec, tz=TZ)

    assert result.candidate_days == tuple(day(text) for text in expected)


def test_it_looks_back_no_further_than_lookback_days_and_warns_about_a_short_pool() -> None:
    # Four days back from Wednesday the 17th: 16, 15 (weekdays), 14, 13 (weekend).
    spec = dataclasses.replace(THREE_WEEKDAYS, lookback_days=4, min_days=2)

    result = compute_baseline(june(), WEDNESDAY_START, WEDNESDAY_END, spec, tz=TZ)

    assert result.candidate_days == (day("2026-06-16"), day("2026-06-15"))
    assert list(result.baseline_kw) == pytest.approx([15.5] * 4)
    assert len(result.warnings) == 1
    assert "only 2 eligible day(s) found of the 3 wanted" in result.warnings[0]


def test_it_raises_insufficient_data_saying_how_many_days_it_found() -> None:
    spec = dataclasses.replace(THREE_WEEKDAYS, lookback_days=4, min_days=3)

    with pytest.raises(InsufficientData, match="found 2 eligible baseline day") as caught:
        compute_baseline(june(), WEDNESDAY_START, WEDNESDAY_END, spec, tz=TZ)

    assert (caught.value.found, caught.value.required) == (2, 3)
    assert "at least 3" in str(caught.value)


def test_it_raises_insufficient_data_without_any_history() -> None:
    readings = constant_days({day("2026-06-17"): 5.0})

    with pytest.raises(InsufficientData, match="found 0"):
        compute_baseline(readings, WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS, tz=TZ)


def test_it_accepts_unsorted_readings_in_another_zone() -> None:
    readings = june().tz_convert("UTC").sample(frac=1.0, random_state=3)

    result = compute_baseline(readings, WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS, tz=TZ)

    assert list(result.baseline_kw) == pytest.approx([(16 + 15 + 12) / 3] * 4)


def test_it_rejects_naive_or_off_grid_event_times_and_duplicate_readings() -> None:
    readings = june()
    with pytest.raises(ValueError, match="tz-aware"):
        compute_baseline(readings, pd.Timestamp("2026-06-17 14:00"), WEDNESDAY_END, THREE_WEEKDAYS)
    with pytest.raises(ValueError, match="grid"):
        compute_baseline(readings, local("2026-06-17 14:30"), WEDNESDAY_END, THREE_WEEKDAYS)
    with pytest.raises(ValueError, match="after event_start"):
        compute_baseline(readings, WEDNESDAY_END, WEDNESDAY_START, THREE_WEEKDAYS)
    with pytest.raises(ValueError, match="duplicate"):
        compute_baseline(
            pd.concat([readings, readings.iloc[:1]]),
            WEDNESDAY_START,
            WEDNESDAY_END,
            THREE_WEEKDAYS,
        )
    with pytest.raises(TypeError, match="tz-aware"):
        compute_baseline(readings.tz_localize(None), WEDNESDAY_START, WEDNESDAY_END, THREE_WEEKDAYS)
