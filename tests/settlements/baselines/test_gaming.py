"""gaming_flags: inflated baseline days and a pre-event load drop."""

from __future__ import annotations

import pandas as pd
import pytest

from settlements.baselines import (
    INFLATED_BASELINE_DAY,
    PRE_EVENT_LOAD_DROP,
    BaselineSpec,
    GamingFlag,
    compute_baseline,
    gaming_flags,
)
from tests.settlements.baselines.helpers import TZ, constant_days, day, local, set_kw

START, END = local("2026-06-17 14:00"), local("2026-06-17 18:00")
# Weekdays in the 16 days before Wednesday the 17th: 1-5, 8-12, 15, 16 (12 days).
HIGH_4_OF_5 = BaselineSpec(
    pool_days=5, select_days=4, selection="highest", day_type="weekday", lookback_days=16
)
USUAL = {1: 38, 2: 39, 3: 40, 4: 41, 5: 42, 8: 38, 9: 39, 10: 40, 11: 41, 12: 42, 15: 40}


def weekdays(june_16_kw: float, usual: dict[int, float] | None = None) -> pd.Series:
    """Weekdays at their usual level (weekends 5 kW), the 16th at ``june_16_kw``."""
    levels = {date: 5.0 for date in pd.date_range("2026-06-01", "2026-06-17").date}
    levels.update({day(f"2026-06-{n:02d}"): float(kw) for n, kw in (usual or USUAL).items()})
    levels[day("2026-06-16")] = june_16_kw
    levels[day("2026-06-17")] = 40.0
    return constant_days(levels)


def flags_for(readings: pd.Series, spec: BaselineSpec, **options: object) -> list[GamingFlag]:
    result = compute_baseline(readings, START, END, spec, tz=TZ)
    return gaming_flags(readings, result, tz=TZ, event_start=START, event_end=END, **options)


def test_it_flags_a_selected_day_far_above_the_site_s_usual_load() -> None:
    flags = flags_for(weekdays(80.0), HIGH_4_OF_5)

    # 12 like days: median 40 kW, MAD 1 kW; z = 0.6745 x (80 - 40) / 1 = 26.98.
    assert [flag.code for flag in flags] == [INFLATED_BASELINE_DAY]
    flag = flags[0]
    assert flag.detail["date"] == "2026-06-16"
    assert flag.detail["event_window_mean_kw"] == pytest.approx(80.0)
    assert flag.detail["reference_median_kw"] == pytest.approx(40.0)
    assert flag.detail["reference_mad_kw"] == pytest.approx(1.0)
    assert flag.detail["reference_days"] == 12
    assert flag.detail["robust_z"] == pytest.approx(0.6745 * 40)
    assert "2026-06-16" in flag.message
    assert "80.0 kW" in flag.message and "usual 40.0 kW" in flag.message
    assert "14:00-18:00" in flag.message
    assert "reduction credited" in flag.message


def test_it_does_not_flag_a_day_within_the_site_s_usual_spread() -> None:
    # With the 16th at 43 kW: median 40, MAD 1, z = 0.6745 x 3 = 2.02 < 3.5.
    assert flags_for(weekdays(43.0), HIGH_4_OF_5) == []


def test_a_steady_site_is_not_flagged_for_a_small_excess() -> None:
    steady = {n: 100.0 for n in USUAL}

    # MAD is 0, so z uses the mean absolute deviation (4 / 12 kW): about 9.6, above 3.5,
    # but 104 kW is within 10% of the 100 kW median.
    assert flags_for(weekdays(104.0, steady), HIGH_4_OF_5) == []
    assert [flag.code for flag in flags_for(weekdays(120.0, steady), HIGH_4_OF_5)] == [
        INFLATED_BASELINE_DAY
    ]


def test_it_skips_the_check_without_enough_reference_days() -> None:
    assert flags_for(weekdays(80.0), HIGH_4_OF_5, min_reference_days=13) == []


def test_a_stricter_threshold_is_a_parameter() -> None:
    assert flags_for(weekdays(43.0), HIGH_4_OF_5, robust_z_threshold=2.0, min_excess_fraction=0)


ADDITIVE = BaselineSpec(
    pool_days=2,
    select_days=2,
    day_type="weekday",
    lookback_days=5,
    adjustment="additive",
    adjustment_hours=2,
    adjustment_gap_hours=1,
)


def with_window_load(window_kw: float) -> pd.Series:
    """Baseline days at 50 kW; the event day at 50 kW except ``window_kw`` at 11:00-13:00."""
    levels = {date: 50.0 for date in pd.date_range("2026-06-10", "2026-06-17").date}
    readings = constant_days(levels)
    set_kw(readings, local("2026-06-17 11:00"), window_kw)
    set_kw(readings, local("2026-06-17 12:00"), window_kw)
    return readings


def test_it_flags_event_day_load_far_below_the_baseline_in_the_adjustment_window() -> None:
    flags = flags_for(with_window_load(10.0), ADDITIVE)

    assert [flag.code for flag in flags] == [PRE_EVENT_LOAD_DROP]
    flag = flags[0]
    assert flag.detail["actual_mean_kw"] == pytest.approx(10.0)
    assert flag.detail["unadjusted_baseline_mean_kw"] == pytest.approx(50.0)
    assert flag.detail["ratio"] == pytest.approx(0.2)
    assert flag.detail["adjustment"] == pytest.approx(-40.0)
    assert flag.detail["window"] == "11:00-13:00"
    assert "80% below" in flag.message
    assert "additive -40.0 kW" in flag.message
    assert "lowers the baseline" in flag.message


def test_it_does_not_flag_a_window_load_within_the_threshold() -> None:
    # 40 kW is 20% below 50 kW; the flag needs more than 30%.
    assert flags_for(with_window_load(40.0), ADDITIVE) == []
    assert flags_for(with_window_load(40.0), ADDITIVE, pre_event_drop_fraction=0.1)


def test_a_method_without_adjustment_is_never_flagged_for_a_pre_event_drop() -> None:
    no_adjustment = BaselineSpec(pool_days=2, select_days=2, day_type="weekday", lookback_days=5)

    assert flags_for(with_window_load(0.0), no_adjustment) == []


def test_it_refuses_a_baseline_computed_for_another_event() -> None:
    readings = with_window_load(10.0)
    result = compute_baseline(readings, START, END, ADDITIVE, tz=TZ)

    with pytest.raises(ValueError, match="different event window"):
        gaming_flags(
            readings, result, tz=TZ, event_start=START, event_end=local("2026-06-17 17:00")
        )
