"""Every preset computes on a realistic 60-day 15-minute series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from settlements.baselines import PRESETS, compute_baseline, nerc_holidays
from tests.settlements.baselines.helpers import TZ, local

EXPECTED = {
    # name: (pool days, selected days, weekday event?, adjustment kind)
    "caiso_10_of_10": (10, 10, True, "multiplicative"),
    "caiso_weekend_4_of_4": (4, 4, False, "multiplicative"),
    "pjm_high_4_of_5": (5, 4, True, "additive"),
    "pjm_weekend_high_2_of_3": (3, 2, False, "additive"),
    "nyiso_high_5_of_10": (10, 5, True, "multiplicative"),
    "nyiso_weekend_high_2_of_3": (3, 2, False, "multiplicative"),
    "ercot_middle_8_of_10": (10, 8, True, "additive"),
}


def sixty_days() -> pd.Series:
    """60 days of 15-minute kWh: a daytime office-like shape with day-to-day noise."""
    index = pd.date_range("2026-05-01", periods=60 * 96, freq="15min", tz=TZ)
    rng = np.random.default_rng(7)
    hour = index.hour + index.minute / 60
    shape_kw = 200 + 150 * np.exp(-(((hour - 15) / 4) ** 2))
    weekend = np.asarray(index.day_of_week >= 5)
    day_level = np.repeat(rng.uniform(0.8, 1.2, 60), 96)
    kw = shape_kw * np.where(weekend, 0.6, 1.0) * day_level + rng.normal(0, 5, index.size)
    return pd.Series(kw * 0.25, index=index)


def test_the_presets_are_the_documented_ones() -> None:
    assert set(PRESETS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_preset_selects_its_documented_number_of_days(name: str) -> None:
    pool_days, select_days, weekday_event, adjustment = EXPECTED[name]
    spec = PRESETS[name]
    event_day = "2026-06-29" if weekday_event else "2026-06-28"  # Monday / Sunday

    result = compute_baseline(
        sixty_days(), local(f"{event_day} 14:00"), local(f"{event_day} 18:00"), spec, tz=TZ
    )

    assert (spec.pool_days, spec.select_days, spec.adjustment) == (
        pool_days,
        select_days,
        adjustment,
    )
    assert len(result.candidate_days) == pool_days
    assert len(result.selected_days) == select_days
    assert set(result.selected_days) <= set(result.candidate_days)
    assert all((d.weekday() < 5) == weekday_event for d in result.candidate_days)
    assert len(result.baseline_kw) == 16
    assert np.isfinite(result.baseline_kw).all()
    assert result.warnings == ()
    if spec.adjustment_cap is not None and spec.adjustment == "multiplicative":
        assert 1 - spec.adjustment_cap <= result.adjustment <= 1 + spec.adjustment_cap


def test_nerc_holidays_follow_the_off_peak_rule() -> None:
    # NERC "Additional Off-Peak Days": New Year's, Memorial Day (last Monday of May),
    # Independence Day, Labor Day (first Monday of September), Thanksgiving (fourth
    # Thursday of November), Christmas; a fixed date on a Sunday moves to the Monday, one on
    # a Saturday stays on the Saturday.
    assert nerc_holidays(2026, 2026) == (
        dt.date(2026, 1, 1),
        dt.date(2026, 5, 25),
        dt.date(2026, 7, 4),  # a Saturday: stays
        dt.date(2026, 9, 7),
        dt.date(2026, 11, 26),
        dt.date(2026, 12, 25),
    )
    assert nerc_holidays(2022, 2023) == (
        dt.date(2022, 1, 1),  # a Saturday: stays
        dt.date(2022, 5, 30),
        dt.date(2022, 7, 4),
        dt.date(2022, 9, 5),
        dt.date(2022, 11, 24),
        dt.date(2022, 12, 26),  # Christmas on a Sunday: the Monday
        dt.date(2023, 1, 2),  # New Year's Day on a Sunday: the Monday
        dt.date(2023, 5, 29),
        dt.date(2023, 7, 4),
        dt.date(2023, 9, 4),
        dt.date(2023, 11, 23),
        dt.date(2023, 12, 25),
    )
    with pytest.raises(ValueError, match="last_year"):
        nerc_holidays(2024, 2023)
