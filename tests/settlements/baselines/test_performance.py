"""measure_performance: baseline minus actual, in kW and kWh."""

from __future__ import annotations

import pandas as pd
import pytest

from settlements.baselines import BaselineSpec, compute_baseline, measure_performance
from tests.settlements.baselines.helpers import TZ, constant_days, day, local

START, END = local("2026-06-17 14:00"), local("2026-06-17 15:00")
SPEC = BaselineSpec(pool_days=2, select_days=2, day_type="weekday", lookback_days=5)


def readings_with_event(event_kw: list[float | None]) -> pd.Series:
    """Baseline days at 100 and 80 kW (baseline 90 kW) and the event hour's kW levels."""
    series = constant_days(
        {day("2026-06-15"): 80.0, day("2026-06-16"): 100.0, day("2026-06-17"): 90.0},
        minutes=15,
    )
    starts = pd.date_range(START, END, freq="15min", inclusive="left")
    for stamp, kw in zip(starts, event_kw, strict=True):
        if kw is None:
            series = series.drop(stamp)
        else:
            series.loc[stamp] = kw * 0.25
    return series


def test_it_measures_reduction_per_interval_in_kw_and_in_total_kwh() -> None:
    readings = readings_with_event([50, 60, 100, None])
    baseline = compute_baseline(readings, START, END, SPEC, tz=TZ)

    result = measure_performance(baseline, readings, START, END)

    assert list(result.baseline_kw) == pytest.approx([90.0] * 4)
    assert list(result.actual_kw.iloc[:3]) == pytest.approx([50, 60, 100])
    # Negative (load above the baseline) is kept as is; a missing interval is NaN.
    assert list(result.reduction_kw.iloc[:3]) == pytest.approx([40, 30, -10])
    assert pd.isna(result.reduction_kw.iloc[3])
    assert result.reduction_kwh == pytest.approx((40 + 30 - 10) * 15 / 60)
    assert result.average_reduction_kw == pytest.approx((40 + 30 - 10) / 3)
    assert result.max_reduction_kw == pytest.approx(40.0)
    assert result.missing_intervals == 1
    assert result.reduction_kw.index.equals(baseline.baseline_kw.index)


def test_it_refuses_a_baseline_computed_for_another_event_window() -> None:
    readings = readings_with_event([50, 60, 100, 90])
    baseline = compute_baseline(readings, START, END, SPEC, tz=TZ)

    with pytest.raises(ValueError, match="different event window"):
        measure_performance(baseline, readings, START, local("2026-06-17 14:45"))
