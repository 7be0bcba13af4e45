"""Rule 5: the adjustment window, additive and multiplicative, caps and up_only."""

from __future__ import annotations

import pandas as pd
import pytest

from settlements.baselines import BaselineSpec, compute_baseline
from tests.settlements.baselines.helpers import TZ, constant_days, day, local, set_kw

START, END = local("2026-06-17 14:00"), local("2026-06-17 16:00")


def readings(window_actual_kw: tuple[float, float], baseline_window_kw: float = 5.0) -> pd.Series:
    """Two baseline days (16th: 10 kW, 15th: 20 kW) and an event day (17th).

    The adjustment window (2 hours ending 1 hour before 14:00) is 11:00-13:00. On the
    baseline days it holds ``baseline_window_kw`` and that + 10 kW, so its unadjusted
    mean is ``baseline_window_kw`` + 5 (10 kW by default) while the event hours' is 15 kW.
    On the event day it holds ``window_actual_kw``; 10:00 and 13:00 (the gap) are loud
    so that using them would show.
    """
    levels = {date: 1.0 for date in pd.date_range("2026-06-10", "2026-06-14").date}
    levels.update({day("2026-06-16"): 10.0, day("2026-06-15"): 20.0, day("2026-06-17"): 99.0})
    series = constant_days(levels)
    for hour in (11, 12):
        set_kw(series, local(f"2026-06-16 {hour}:00"), baseline_window_kw)
        set_kw(series, local(f"2026-06-15 {hour}:00"), baseline_window_kw + 10)
    set_kw(series, local("2026-06-17 11:00"), window_actual_kw[0])
    set_kw(series, local("2026-06-17 12:00"), window_actual_kw[1])
    set_kw(series, local("2026-06-17 10:00"), 1000.0)
    set_kw(series, local("2026-06-17 13:00"), 1000.0)
    return series


def spec(adjustment: str, **changes: object) -> BaselineSpec:
    values: dict[str, object] = {
        "pool_days": 2,
        "select_days": 2,
        "day_type": "weekday",
        "lookback_days": 5,
        "adjustment": adjustment,
        "adjustment_hours": 2,
        "adjustment_gap_hours": 1,
    }
    values.update(changes)
    return BaselineSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("window_actual_kw", "changes", "delta_kw"),
    [
        ((12.0, 12.0), {}, 12 - 10),
        ((14.0, 18.0), {}, 16 - 10),
        ((14.0, 18.0), {"adjustment_cap": 0.2}, 0.2 * 10),
        ((4.0, 4.0), {}, 4 - 10),
        ((4.0, 4.0), {"adjustment_cap": 0.2}, -0.2 * 10),
        ((4.0, 4.0), {"adjustment_direction": "up_only"}, 0.0),
        ((14.0, 18.0), {"adjustment_direction": "up_only"}, 16 - 10),
    ],
)
def test_additive_adjustment_adds_the_window_difference_within_its_cap(
    window_actual_kw: tuple[float, float], changes: dict[str, object], delta_kw: float
) -> None:
    result = compute_baseline(
        readings(window_actual_kw), START, END, spec("additive", **changes), tz=TZ
    )

    assert list(result.unadjusted_kw) == pytest.approx([15.0, 15.0])
    assert result.adjustment == pytest.approx(delta_kw)
    assert list(result.baseline_kw) == pytest.approx([15.0 + delta_kw] * 2)
    assert result.warnings == ()


@pytest.mark.parametrize(
    ("window_actual_kw", "changes", "factor"),
    [
        ((12.0, 12.0), {}, 24 / 20),
        ((14.0, 18.0), {}, 32 / 20),
        ((14.0, 18.0), {"adjustment_cap": 0.2}, 1.2),
        ((4.0, 4.0), {}, 8 / 20),
        ((4.0, 4.0), {"adjustment_cap": 0.2}, 0.8),
        ((4.0, 4.0), {"adjustment_direction": "up_only"}, 1.0),
        ((14.0, 18.0), {"adjustment_direction": "up_only", "adjustment_cap": 0.2}, 1.2),
    ],
)
def test_multiplicative_adjustment_scales_by_the_window_ratio_within_its_cap(
    window_actual_kw: tuple[float, float], changes: dict[str, object], factor: float
) -> None:
    result = compute_baseline(
        readings(window_actual_kw), START, END, spec("multiplicative", **changes), tz=TZ
    )

    assert result.adjustment == pytest.approx(factor)
    assert list(result.baseline_kw) == pytest.approx([15.0 * factor] * 2)
    assert list(result.unadjusted_kw) == pytest.approx([15.0, 15.0])


def test_multiplicative_adjustment_is_neutral_with_a_warning_when_the_baseline_window_is_zero() -> (
    None
):
    # Baseline window: 16th at -5 kW, 15th at +5 kW, so it sums to zero.
    series = readings((12.0, 12.0), baseline_window_kw=-5.0)

    result = compute_baseline(series, START, END, spec("multiplicative"), tz=TZ)

    assert result.adjustment == 1.0
    assert list(result.baseline_kw) == pytest.approx([15.0, 15.0])
    assert len(result.warnings) == 1
    assert "zero" in result.warnings[0]


def test_it_adjusts_over_the_intervals_present_and_warns_about_a_missing_one() -> None:
    series = readings((14.0, 0.0)).drop(local("2026-06-17 12:00"))

    result = compute_baseline(series, START, END, spec("additive"), tz=TZ)

    assert result.adjustment == pytest.approx(14 - 10)
    assert len(result.warnings) == 1
    assert "1 of 2 adjustment-window" in result.warnings[0]


def test_it_leaves_the_baseline_unadjusted_with_a_warning_without_event_day_readings() -> None:
    series = readings((14.0, 18.0)).drop([local("2026-06-17 11:00"), local("2026-06-17 12:00")])

    result = compute_baseline(series, START, END, spec("multiplicative"), tz=TZ)

    assert result.adjustment == 1.0
    assert list(result.baseline_kw) == pytest.approx([15.0, 15.0])
    assert "adjustment not applied" in result.warnings[0]


def test_an_adjustment_window_before_midnight_reads_each_day_s_previous_evening() -> None:
    # Event 01:00-02:00 on the 17th; window 22:00-24:00 the evening before. For the
    # selected days (16th at 10 kW, 15th at 20 kW) that is the 15th (20 kW) and the 14th
    # (30 kW) evenings: unadjusted window mean 25 kW. The event's own window (evening of
    # the 16th) reads 31 kW, so delta = 31 - 25 = 6 kW on an unadjusted 15 kW.
    levels = {date: 1.0 for date in pd.date_range("2026-06-10", "2026-06-13").date}
    levels.update({day("2026-06-14"): 30.0, day("2026-06-15"): 20.0, day("2026-06-16"): 10.0})
    levels[day("2026-06-17")] = 99.0
    series = constant_days(levels)
    set_kw(series, local("2026-06-16 22:00"), 31.0)
    set_kw(series, local("2026-06-16 23:00"), 31.0)

    result = compute_baseline(
        series, local("2026-06-17 01:00"), local("2026-06-17 02:00"), spec("additive"), tz=TZ
    )

    assert result.selected_days == (day("2026-06-16"), day("2026-06-15"))
    assert result.adjustment == pytest.approx(6.0)
    assert list(result.baseline_kw) == pytest.approx([21.0])
