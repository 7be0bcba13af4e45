"""baseline_accuracy, compare_presets and recommend: back-testing on non-event days."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
import pytest

from settlements.baselines import (
    ACCURACY_FLAG_THRESHOLD,
    PRESETS,
    AccuracyResult,
    BaselineSpec,
    baseline_accuracy,
    compare_presets,
    recommend,
)
from tests.settlements.baselines.helpers import TZ, constant_days, day, levels_by_day, local

# June 2026: Mon 1 .. Fri 5, Mon 8 .. Fri 12, Mon 15 .. Fri 19.
AFTERNOON = (datetime.time(14), datetime.time(18))
THREE_WEEKDAYS = BaselineSpec(
    pool_days=3, select_days=3, selection="all", day_type="weekday", lookback_days=7, min_days=3
)
YESTERDAY = BaselineSpec(pool_days=1, select_days=1, day_type="weekday", lookback_days=7)
HIGHER_OF_TWO = BaselineSpec(
    pool_days=2, select_days=1, selection="highest", day_type="weekday", lookback_days=7
)


def june(levels_kw: dict[str, float] | None = None, kw: float = 10.0) -> pd.Series:
    """Hourly readings for June 1-19 at ``kw``, with the listed days at their own level."""
    levels = levels_by_day("2026-06-01", "2026-06-19", kw)
    levels.update({day(text): level for text, level in (levels_kw or {}).items()})
    return constant_days(levels)


def step_up() -> pd.Series:
    """10 kW until Friday the 12th, 20 kW from Monday the 15th."""
    return june({f"2026-06-{n}": 20.0 for n in range(13, 20)})


def accuracy(readings: pd.Series, spec: BaselineSpec, **options: object) -> AccuracyResult:
    return baseline_accuracy(readings, spec, tz=TZ, event_window=AFTERNOON, **options)


def test_a_site_with_the_same_load_every_weekday_has_zero_error() -> None:
    index = constant_days(levels_by_day("2026-04-01", "2026-06-19")).index
    weekday = index.day_of_week < 5  # a daily shape, identical on every weekday
    readings = pd.Series(np.where(weekday, 50.0 + 5 * index.hour, 20.0), index=index)

    result = accuracy(readings, PRESETS["caiso_10_of_10"], test_days=20)

    assert result.days_tested == 20
    assert result.days_skipped == 0
    assert result.relative_rmse == 0.0
    assert result.relative_bias == 0.0
    assert result.mean_actual_kw == pytest.approx(50 + 5 * (14 + 15 + 16 + 17) / 4)
    assert all(tested.adjustment == pytest.approx(1.0) for tested in result.days)
    assert result.warnings == ()


def test_a_step_change_gives_the_bias_and_rmse_computed_by_hand() -> None:
    result = accuracy(step_up(), THREE_WEEKDAYS, test_days=5)

    # Test days 15-19 (actual 20 kW). Baselines: 15th (12, 11, 10) 10 kW; 16th (15, 12, 11)
    # 40/3; 17th (16, 15, 12) 50/3; 18th and 19th 20 kW. Errors -10, -20/3, -10/3, 0, 0.
    assert [tested.date for tested in result.days] == [
        day("2026-06-19"),
        day("2026-06-18"),
        day("2026-06-17"),
        day("2026-06-16"),
        day("2026-06-15"),
    ]
    assert [tested.bias_kw for tested in result.days] == pytest.approx(
        [0, 0, -10 / 3, -20 / 3, -10]
    )
    assert result.bias_kw == pytest.approx(-4.0)
    assert result.mean_actual_kw == pytest.approx(20.0)
    assert result.relative_bias == pytest.approx(-0.2)
    assert result.rmse_kw == pytest.approx(math.sqrt((100 + 400 / 9 + 100 / 9) / 5))
    assert result.relative_rmse == pytest.approx(math.sqrt(1400 / 45) / 20)
    assert all(tested.intervals == 4 for tested in result.days)


def test_each_simulated_day_uses_only_days_before_it() -> None:
    # Were later days visible, the 15th's baseline would include 20 kW days.
    result = accuracy(step_up(), THREE_WEEKDAYS, test_days=5)

    assert result.days[-1].mean_baseline_kw == pytest.approx(10.0)


def test_it_counts_days_skipped_for_too_little_history() -> None:
    result = accuracy(june(), THREE_WEEKDAYS, test_days=20)

    # 15 weekdays in the readings; the 1st, 2nd and 3rd have fewer than 3 days before them.
    assert result.days_tested == 12
    assert result.skipped_days == (day("2026-06-03"), day("2026-06-02"), day("2026-06-01"))
    assert result.days_skipped == 3
    assert any("only 15 eligible test day(s)" in warning for warning in result.warnings)
    assert any("3 test day(s) skipped" in warning for warning in result.warnings)


def test_excluded_event_days_are_neither_tested_nor_used_as_baseline_days() -> None:
    readings = june({"2026-06-17": 100.0})

    excluded = accuracy(readings, THREE_WEEKDAYS, test_days=5, excluded_dates=[day("2026-06-17")])
    included = accuracy(readings, THREE_WEEKDAYS, test_days=5)

    assert day("2026-06-17") not in [tested.date for tested in excluded.days]
    assert [tested.date for tested in excluded.days][-1] == day("2026-06-12")
    assert excluded.relative_rmse == 0.0
    assert included.relative_rmse > 0.5


def test_a_day_missing_an_event_window_reading_is_not_tested() -> None:
    readings = june().drop(local("2026-06-19 15:00"))

    result = accuracy(readings, THREE_WEEKDAYS, test_days=2)

    assert [tested.date for tested in result.days] == [day("2026-06-18"), day("2026-06-17")]


def test_without_any_testable_day_the_accuracy_is_unknown() -> None:
    short = accuracy(june().loc[: local("2026-06-03 23:00")], THREE_WEEKDAYS, test_days=3)

    assert short.days_tested == 0
    assert short.days_skipped == 3
    assert math.isnan(short.relative_rmse)
    assert math.isnan(short.relative_bias)
    assert any("accuracy unknown" in warning for warning in short.warnings)


def test_it_rejects_a_window_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        baseline_accuracy(
            june(), THREE_WEEKDAYS, tz=TZ, event_window=(datetime.time(18), datetime.time(14))
        )


def test_compare_presets_puts_the_lowest_relative_rmse_first() -> None:
    ranked = compare_presets(
        step_up(),
        {"three_weekdays": THREE_WEEKDAYS, "yesterday": YESTERDAY},
        tz=TZ,
        event_window=AFTERNOON,
        test_days=5,
    )

    # Yesterday misses only the 15th, by 10 kW: RMSE sqrt(100 / 5) on a 20 kW load.
    assert [name for name, _ in ranked] == ["yesterday", "three_weekdays"]
    assert ranked[0][1].relative_rmse == pytest.approx(math.sqrt(20) / 20)
    assert ranked[1][1].relative_rmse == pytest.approx(math.sqrt(1400 / 45) / 20)


def test_compare_presets_breaks_an_rmse_tie_by_the_smaller_bias() -> None:
    # Weekday loads 11: 10, 12: 10, 15: 20, 16: 10, 17: 20, 18: 10, 19: 10 kW.
    # Yesterday's errors on 15-19: -10, +10, -10, +10, 0 (bias 0). The higher of the
    # two previous days: -10, +10, 0, +10, +10 (bias +4). Both square to 400 kW^2.
    readings = june({"2026-06-15": 20.0, "2026-06-17": 20.0})

    ranked = compare_presets(
        readings,
        {"higher_of_two": HIGHER_OF_TWO, "yesterday": YESTERDAY},
        tz=TZ,
        event_window=AFTERNOON,
        test_days=5,
    )

    assert ranked[0][1].rmse_kw == pytest.approx(ranked[1][1].rmse_kw)
    assert [name for name, _ in ranked] == ["yesterday", "higher_of_two"]
    assert [result.bias_kw for _, result in ranked] == pytest.approx([0.0, 4.0])


def test_recommend_flags_a_site_whose_best_method_misses_by_more_than_20_percent() -> None:
    ranked = compare_presets(
        step_up(),
        {"three_weekdays": THREE_WEEKDAYS, "yesterday": YESTERDAY},
        tz=TZ,
        event_window=AFTERNOON,
        test_days=5,
    )

    recommendation = recommend(ranked)

    assert ACCURACY_FLAG_THRESHOLD == 0.20
    assert recommendation.name == "yesterday"
    assert recommendation.relative_rmse == pytest.approx(0.2236, abs=1e-4)
    assert recommendation.flagged is True
    assert "above the 20% limit" in recommendation.reason


def test_recommend_does_not_flag_an_accurate_site() -> None:
    ranked = compare_presets(
        june(),
        {"three_weekdays": THREE_WEEKDAYS, "yesterday": YESTERDAY},
        tz=TZ,
        event_window=AFTERNOON,
        test_days=5,
    )

    recommendation = recommend(ranked)

    assert recommendation.name == "three_weekdays"  # a tie at 0: the given order stands
    assert recommendation.flagged is False


def test_recommend_flags_a_site_no_method_could_be_tested_on() -> None:
    ranked = compare_presets(
        june().loc[: local("2026-06-02 23:00")],
        {"three_weekdays": THREE_WEEKDAYS},
        tz=TZ,
        event_window=AFTERNOON,
    )

    recommendation = recommend(ranked)

    assert recommendation.name is None
    assert recommendation.flagged is True
