"""compute_many and measure_many give what the one-site functions give, for many sites."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd
import pytest

from settlements.baselines import (
    PRESETS,
    BaselineResult,
    BaselineSpec,
    InsufficientData,
    ReadingsBatch,
    compute_baseline,
    compute_many,
    measure_many,
    measure_performance,
)
from tests.settlements.baselines.helpers import TZ, constant_days, day, levels_by_day, local

HOLIDAYS = (day("2026-10-12"), day("2026-02-16"))
LOW_USAGE_ANY_DAY = BaselineSpec(
    pool_days=10,
    select_days=5,
    selection="highest",
    day_type="any",
    lookback_days=20,
    min_days=3,
    low_usage_fraction=0.5,
    adjustment="multiplicative",
    adjustment_hours=3,
    adjustment_gap_hours=0,
    adjustment_cap=0.3,
)
SPECS = {**PRESETS, "low_usage_any_day": LOW_USAGE_ANY_DAY}
# (first day of readings, event start, event end). 2026-11-01 falls back; 2026-03-08
# springs forward.
EVENTS = {
    "weekday_after_fall_back": ("2026-09-15", local("2026-11-02 14:00"), local("2026-11-02 18:00")),
    "over_the_repeated_hour": (
        "2026-09-15",
        local("2026-11-01 00:00"),
        pd.Timestamp("2026-11-01 08:00", tz="UTC"),
    ),
    "over_the_spring_gap": ("2026-01-20", local("2026-03-08 00:00"), local("2026-03-08 05:00")),
    "weekday_after_spring_forward": (
        "2026-01-20",
        local("2026-03-09 06:00"),
        local("2026-03-09 09:00"),
    ),
}


def random_site(rng: np.random.Generator, first: str, days: int, minutes: int) -> pd.Series:
    """An office-like load with day-to-day levels, some idle days, gaps and NaN readings."""
    per_day = 24 * 60 // minutes
    index = pd.date_range(local(first), periods=days * per_day, freq=f"{minutes}min")
    hour = np.asarray(index.hour + index.minute / 60)
    shape_kw = 100 + 50 * np.exp(-(((hour - 15) / 4) ** 2))
    day_level = rng.uniform(0.7, 1.3, days + 2) * rng.choice([1, 1, 1, 1, 0.1], days + 2)
    kw = np.round(shape_kw * np.repeat(day_level, per_day)[: index.size])
    readings = pd.Series(kw * minutes / 60, index=index)
    readings = readings[rng.random(index.size) >= rng.choice([0, 0.002, 0.02])]
    if rng.random() < 0.3:
        readings.iloc[rng.integers(0, readings.size, 20)] = np.nan
    return readings


def random_sites(first: str, count: int = 50, seed: int = 11) -> dict[Hashable, pd.Series]:
    rng = np.random.default_rng(seed)
    sites: dict[Hashable, pd.Series] = {
        f"site-{n}": random_site(rng, first, 55, 60 if n % 7 == 0 else 15) for n in range(count)
    }
    sites["short-history"] = random_site(rng, first, 55, 15).iloc[-5 * 96 :]
    return sites


def excluded_by_site(sites: Mapping[Hashable, pd.Series]) -> dict[Hashable, list[datetime.date]]:
    """Every third site has a few excluded days (its own earlier events)."""
    out = {}
    for n, key in enumerate(sites):
        if n % 3 == 0:
            last = sites[key].index[-1].date()
            out[key] = [last - datetime.timedelta(days=d) for d in (3, 4, 9 + n % 5)]
    return out


def one_by_one(
    sites: Mapping[Hashable, pd.Series],
    start: pd.Timestamp,
    end: pd.Timestamp,
    spec: BaselineSpec,
    excluded: Mapping[Hashable, list[datetime.date]],
) -> dict[Hashable, BaselineResult | InsufficientData]:
    out: dict[Hashable, BaselineResult | InsufficientData] = {}
    for key, readings in sites.items():
        try:
            out[key] = compute_baseline(
                readings,
                start,
                end,
                spec,
                tz=TZ,
                excluded_dates=excluded.get(key, ()),
                holidays=HOLIDAYS,
            )
        except InsufficientData as error:
            out[key] = error
    return out


def assert_same(
    got: BaselineResult | InsufficientData, want: BaselineResult | InsufficientData
) -> None:
    if isinstance(want, InsufficientData):
        assert isinstance(got, InsufficientData)
        assert (str(got), got.found, got.required) == (str(want), want.found, want.required)
        return
    assert isinstance(got, BaselineResult)
    assert got.candidate_days == want.candidate_days
    assert got.selected_days == want.selected_days
    assert got.warnings == want.warnings
    assert got.adjustment == pytest.approx(want.adjustment, rel=0, abs=1e-9)
    assert got.interval_minutes == want.interval_minutes
    assert got.spec == want.spec
    for name in ("baseline_kw", "unadjusted_kw"):
        got_series, want_series = getattr(got, name), getattr(want, name)
        assert got_series.index.equals(want_series.index)
        assert got_series.name == want_series.name
        np.testing.assert_allclose(got_series, want_series, rtol=0, atol=1e-9)


@pytest.mark.parametrize("event", sorted(EVENTS))
@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_compute_many_equals_compute_baseline_for_every_site(event: str, spec_name: str) -> None:
    first, start, end = EVENTS[event]
    sites = random_sites(first)
    excluded = excluded_by_site(sites)
    spec = SPECS[spec_name]

    many = compute_many(
        sites, start, end, spec, tz=TZ, excluded_dates_by_site=excluded, holidays=HOLIDAYS
    )

    want = one_by_one(sites, start, end, spec, excluded)
    assert list(many) == list(sites)
    for key in sites:
        assert_same(many[key], want[key])


def test_the_random_sites_cover_short_pools_low_usage_and_insufficient_data() -> None:
    first, start, end = EVENTS["weekday_after_fall_back"]
    sites = random_sites(first)

    results = list(compute_many(sites, start, end, LOW_USAGE_ANY_DAY, tz=TZ).values())
    results += list(compute_many(sites, start, end, PRESETS["caiso_10_of_10"], tz=TZ).values())

    warnings = [w for r in results if isinstance(r, BaselineResult) for w in r.warnings]
    assert any(isinstance(r, InsufficientData) for r in results)
    assert any(w.startswith("low-usage day(s) replaced") for w in warnings)
    assert any(w.startswith("only ") for w in warnings)


def test_it_reports_insufficient_data_per_site_and_computes_the_others() -> None:
    levels = levels_by_day("2026-06-01", "2026-06-17", 10.0)
    full = constant_days(levels)
    two_days = constant_days({day("2026-06-16"): 10.0, day("2026-06-17"): 10.0})
    spec = PRESETS["caiso_10_of_10"]
    start, end = local("2026-06-17 14:00"), local("2026-06-17 18:00")

    results = compute_many({"full": full, "new": two_days}, start, end, spec, tz=TZ)

    assert isinstance(results["full"], BaselineResult)
    assert list(results["full"].baseline_kw) == pytest.approx([10.0] * 4)
    assert isinstance(results["new"], InsufficientData)
    assert (results["new"].found, results["new"].required) == (1, 5)


def test_a_long_frame_in_any_row_order_gives_the_same_results_as_a_mapping() -> None:
    first, start, end = EVENTS["weekday_after_fall_back"]
    sites = random_sites(first, count=12)
    frame = pd.concat(
        [
            pd.DataFrame({"site": key, "interval_start": s.index, "kwh": s.to_numpy()})
            for key, s in sites.items()
        ],
        ignore_index=True,
    )
    shuffled = frame.sample(frac=1.0, random_state=5)
    spec = PRESETS["pjm_high_4_of_5"]

    from_mapping = compute_many(sites, start, end, spec, tz=TZ)
    from_frame = compute_many(shuffled, start, end, spec, tz=TZ)

    assert set(from_frame) == set(from_mapping)
    for key in sites:
        assert_same(from_frame[key], from_mapping[key])


def test_integer_site_keys_in_an_ordered_frame_keep_their_order() -> None:
    levels = levels_by_day("2026-06-01", "2026-06-17", 10.0)
    readings = constant_days(levels)
    frame = pd.concat(
        [
            pd.DataFrame({"site": key, "interval_start": readings.index, "kwh": readings * key})
            for key in (30, 10, 20)
        ],
        ignore_index=True,
    )
    spec = BaselineSpec(pool_days=3, select_days=3, day_type="weekday", lookback_days=10)

    results = compute_many(frame, local("2026-06-17 14:00"), local("2026-06-17 16:00"), spec, tz=TZ)

    assert list(results) == [30, 10, 20]
    assert [results[key].baseline_kw.iloc[0] for key in (30, 10, 20)] == pytest.approx(
        [300.0, 100.0, 200.0]
    )


def test_a_site_with_readings_off_the_event_grid_still_gets_compute_baseline_s_answer() -> None:
    first, start, end = EVENTS["weekday_after_fall_back"]
    sites = random_sites(first, count=4)
    odd = sites["site-2"].copy()
    odd.loc[local("2026-10-30 12:05")] = 1.0  # one reading off the quarter-hour grid
    sites["site-2"] = odd.sort_index()
    spec = PRESETS["nyiso_high_5_of_10"]

    many = compute_many(sites, start, end, spec, tz=TZ, interval_minutes=15)

    for key, readings in sites.items():
        try:
            want = compute_baseline(readings, start, end, spec, tz=TZ, interval_minutes=15)
        except InsufficientData as error:
            want = error
        assert_same(many[key], want)


def test_duplicate_readings_raise_naming_the_site() -> None:
    readings = constant_days(levels_by_day("2026-06-01", "2026-06-17", 10.0))
    spec = BaselineSpec(pool_days=3, select_days=3, day_type="weekday", lookback_days=10)
    sites = {"ok": readings, "doubled": pd.concat([readings, readings.iloc[:1]])}

    with pytest.raises(ValueError, match="duplicate") as caught:
        compute_many(sites, local("2026-06-17 14:00"), local("2026-06-17 16:00"), spec, tz=TZ)

    assert "site 'doubled'" in caught.value.__notes__


def test_excluded_dates_apply_only_to_their_own_site() -> None:
    levels = levels_by_day("2026-06-01", "2026-06-17")  # each day at its day of month
    readings = constant_days(levels)
    spec = BaselineSpec(pool_days=2, select_days=2, day_type="weekday", lookback_days=10)

    results = compute_many(
        {"a": readings, "b": readings},
        local("2026-06-17 14:00"),
        local("2026-06-17 16:00"),
        spec,
        tz=TZ,
        excluded_dates_by_site={"a": [day("2026-06-16")]},
    )

    assert results["a"].selected_days == (day("2026-06-15"), day("2026-06-12"))
    assert results["b"].selected_days == (day("2026-06-16"), day("2026-06-15"))


def test_measure_many_equals_measure_performance_and_passes_insufficient_data_through() -> None:
    first, start, end = EVENTS["weekday_after_fall_back"]
    sites = random_sites(first, count=20)
    batch = ReadingsBatch.from_series(sites)
    spec = PRESETS["caiso_10_of_10"]
    baselines = compute_many(batch, start, end, spec, tz=TZ)

    performances = measure_many(baselines, batch, start, end)

    assert list(performances) == list(baselines)
    assert isinstance(performances["short-history"], InsufficientData)
    assert performances["short-history"] is baselines["short-history"]
    for key, baseline in baselines.items():
        if isinstance(baseline, InsufficientData):
            continue
        want = measure_performance(baseline, sites[key], start, end)
        got = performances[key]
        for field in dataclasses.fields(want):
            got_value, want_value = getattr(got, field.name), getattr(want, field.name)
            if isinstance(want_value, pd.Series):
                assert got_value.index.equals(want_value.index)
                np.testing.assert_allclose(got_value, want_value, rtol=0, atol=1e-9)
            else:
                assert got_value == pytest.approx(want_value, rel=0, abs=1e-9, nan_ok=True)
