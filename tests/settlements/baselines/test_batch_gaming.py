"""gaming_flags_many gives what gaming_flags gives, site by site, for many sites."""

from __future__ import annotations

import datetime
from collections.abc import Hashable

import numpy as np
import pandas as pd
import pytest

from settlements.baselines import (
    INFLATED_BASELINE_DAY,
    PRE_EVENT_LOAD_DROP,
    BaselineResult,
    BaselineSpec,
    ReadingsBatch,
    compute_many,
    gaming_flags,
    gaming_flags_many,
)
from tests.settlements.baselines.helpers import TZ, constant_days, day, local
from tests.settlements.baselines.test_batch import (
    EVENTS,
    HOLIDAYS,
    SPECS,
    excluded_by_site,
    random_sites,
)


def with_gaming(sites: dict[Hashable, pd.Series], event_start: pd.Timestamp) -> None:
    """Every fourth site runs five times its load on the last weekday before the event (an
    inflated baseline day when that day is selected); every fifth halves its load through
    the six hours before the event (a pre-event drop)."""
    busy = event_start.tz_convert(TZ).date() - datetime.timedelta(days=1)
    while busy.weekday() >= 5:
        busy -= datetime.timedelta(days=1)
    for n, key in enumerate(list(sites)):
        readings = sites[key].copy()
        local_index = readings.index.tz_convert(TZ)
        if n % 4 == 1:
            readings[local_index.date == busy] *= 5
        if n % 5 == 2:
            before = (readings.index < event_start) & (
                readings.index >= event_start - pd.Timedelta(hours=6)
            )
            readings[before] *= 0.5
        sites[key] = readings


def one_by_one(sites, baselines, start, end, excluded, holidays=HOLIDAYS):
    return {
        key: gaming_flags(
            sites[key],
            result,
            tz=TZ,
            event_start=start,
            event_end=end,
            excluded_dates=excluded.get(key, ()),
            holidays=holidays,
        )
        for key, result in baselines.items()
        if isinstance(result, BaselineResult)
    }


@pytest.mark.parametrize("event", sorted(EVENTS))
@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_it_equals_gaming_flags_for_every_site(event: str, spec_name: str) -> None:
    first, start, end = EVENTS[event]
    sites = random_sites(first)
    with_gaming(sites, start)
    excluded = excluded_by_site(sites)
    spec = SPECS[spec_name]
    batch = ReadingsBatch.from_series(sites)
    baselines = compute_many(
        batch, start, end, spec, tz=TZ, excluded_dates_by_site=excluded, holidays=HOLIDAYS
    )

    many = gaming_flags_many(
        baselines,
        batch,
        tz=TZ,
        event_start=start,
        event_end=end,
        excluded_dates_by_site=excluded,
        holidays=HOLIDAYS,
    )

    want = one_by_one(sites, baselines, start, end, excluded)
    assert list(many) == list(want)  # the sites with a baseline, in the same order
    assert many == want  # the same flags, messages and figures, in the same order


def test_it_finds_both_kinds_of_flag_in_the_mixed_sites() -> None:
    # Guards the comparison above against passing with nothing flagged.
    first, start, end = EVENTS["weekday_after_fall_back"]
    sites = random_sites(first)
    with_gaming(sites, start)
    spec = SPECS["caiso_10_of_10"]
    baselines = compute_many(sites, start, end, spec, tz=TZ, holidays=HOLIDAYS)
    many = gaming_flags_many(
        baselines, sites, tz=TZ, event_start=start, event_end=end, holidays=HOLIDAYS
    )
    codes = [flag.code for flags in many.values() for flag in flags]
    assert INFLATED_BASELINE_DAY in codes and PRE_EVENT_LOAD_DROP in codes
    assert many == one_by_one(sites, baselines, start, end, {})


def test_a_site_whose_reference_days_have_no_spread_uses_the_mean_deviation() -> None:
    # 11 weekdays at 40 kW and the 16th at 80: MAD is 0, so gaming_flags' second formula
    # applies: z = (80 - 40) / (1.253314 x mean |day - 40|) = 40 / (1.253314 x 40 / 12).
    levels = {date: 5.0 for date in pd.date_range("2026-06-01", "2026-06-17").date}
    for date in levels:
        if date.weekday() < 5:
            levels[date] = 40.0
    levels[day("2026-06-16")] = 80.0
    readings = constant_days(levels)
    spec = BaselineSpec(
        pool_days=5, select_days=4, selection="highest", day_type="weekday", lookback_days=16
    )
    start, end = local("2026-06-17 14:00"), local("2026-06-17 18:00")
    baselines = compute_many({"steady": readings}, start, end, spec, tz=TZ)

    many = gaming_flags_many(
        baselines, {"steady": readings}, tz=TZ, event_start=start, event_end=end
    )

    [flag] = many["steady"]
    assert flag.code == INFLATED_BASELINE_DAY
    assert flag.detail["reference_mad_kw"] == 0.0
    assert flag.detail["robust_z"] == pytest.approx(40 / (1.253314 * 40 / 12))


def test_insufficient_data_sites_are_left_out_and_thresholds_are_checked() -> None:
    readings = constant_days({day("2026-06-16"): 40.0, day("2026-06-17"): 40.0})
    start, end = local("2026-06-17 14:00"), local("2026-06-17 18:00")
    spec = SPECS["caiso_10_of_10"]
    baselines = compute_many({"new": readings}, start, end, spec, tz=TZ)
    assert not isinstance(baselines["new"], BaselineResult)
    assert gaming_flags_many(baselines, {"new": readings}, tz=TZ, event_start=start,
                             event_end=end) == {}  # fmt: skip
    with pytest.raises(ValueError, match="pre_event_drop_fraction"):
        gaming_flags_many(
            baselines, {"new": readings}, tz=TZ, event_start=start, event_end=end,
            pre_event_drop_fraction=1.5,
        )  # fmt: skip


def test_row_medians_match_numpy() -> None:
    from settlements.baselines.batch import _row_medians

    rng = np.random.default_rng(5)
    values = rng.normal(40, 3, size=(200, 12))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[0] = np.nan
    median, count = _row_medians(values)
    for row in range(1, values.shape[0]):
        present = values[row][~np.isnan(values[row])]
        assert count[row] == present.size
        assert median[row] == np.median(present)  # exactly, not approximately
    assert count[0] == 0 and np.isnan(median[0])


def test_only_a_site_off_the_grid_goes_through_gaming_flags(monkeypatch) -> None:
    import settlements.baselines.batch as batch_module

    first, start, end = EVENTS["weekday_after_spring_forward"]
    sites = random_sites(first, count=12)
    with_gaming(sites, start)
    shifted = sites["site-1"].copy()
    at = shifted.index.get_loc(start - pd.Timedelta(days=3))  # in the lookback
    moved = shifted.index[at] + pd.Timedelta(minutes=7)  # off the 15-minute grid
    sites["off-grid"] = shifted.rename(index={shifted.index[at]: moved})
    spec = SPECS["pjm_high_4_of_5"]
    baselines = compute_many(sites, start, end, spec, tz=TZ, interval_minutes=15)
    calls: list[pd.Series] = []

    def counting(readings, *args, **kwargs):
        calls.append(readings)
        return gaming_flags(readings, *args, **kwargs)

    monkeypatch.setattr(batch_module, "gaming_flags", counting)
    many = gaming_flags_many(baselines, sites, tz=TZ, event_start=start, event_end=end)

    assert len(calls) == 1 and moved in calls[0].index
    monkeypatch.undo()
    assert many == one_by_one(sites, baselines, start, end, {}, holidays=())
