"""The day-matching engine: "X of Y like days plus an adjustment".

How a call runs, with no Python loop over intervals or days:

1. The readings near the event are pivoted once into a table of local day x wall-clock
   slot of mean kW (``np.bincount`` over integer cell numbers). A repeated fall-back label
   holds the mean of its two readings; a label skipped by spring-forward holds nothing
   and is known not to exist (it is not "missing").
2. Every day in the lookback is tested at once for day type, exclusion and completeness
   over the cells the method uses, and ranked by its mean kW over the event window.
3. The selected days' rows are averaged at the event's (and adjustment window's)
   wall-clock slots, and the adjustment is applied.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable

import numpy as np
import pandas as pd

from settlements.baselines._intervals import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    expected_cells,
    interval_starts,
    nan_mean,
    prepare_readings,
    utc_index,
    values_at,
    wall_ns,
    window_starts,
)
from settlements.baselines.errors import InsufficientData
from settlements.baselines.spec import BaselineSpec

_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0.


@dataclasses.dataclass(frozen=True, eq=False)
class BaselineResult:
    """A computed baseline and how it was reached.

    - ``baseline_kw``: adjusted baseline, mean kW per interval, indexed by the event's
      interval starts (tz-aware, in the event_start's zone; a fall-back hour inside the
      event appears twice, a spring-forward gap not at all).
    - ``unadjusted_kw``: the same index, before the adjustment.
    - ``adjustment``: the multiplicative factor (1.0 when neutral) or the additive kW
      (0.0 when neutral); 0.0 when the method has no adjustment.
    - ``candidate_days``: the pool of eligible local dates, most recent first.
    - ``selected_days``: the local dates averaged, most recent first.
    - ``warnings``: human-readable notes for the settlement reviewer.
    - ``spec`` and ``interval_minutes``: the method and the interval length used.
    """

    baseline_kw: pd.Series
    unadjusted_kw: pd.Series
    adjustment: float
    candidate_days: tuple[datetime.date, ...]
    selected_days: tuple[datetime.date, ...]
    warnings: tuple[str, ...]
    spec: BaselineSpec
    interval_minutes: int


def compute_baseline(
    readings: pd.Series,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
    spec: BaselineSpec,
    tz: str = "America/New_York",
    excluded_dates: Iterable[datetime.date] = (),
    holidays: Iterable[datetime.date] = (),
    *,
    interval_minutes: int | None = None,
) -> BaselineResult:
    """Compute a day-matching baseline for one meter and one event.

    ``readings`` is energy: kWh per interval, a Series on a tz-aware DatetimeIndex of
    interval starts (15 or 60 minutes; inferred as the smallest step unless
    ``interval_minutes`` is given). Gaps and NaN are allowed. Power is derived as
    kW = kWh x 60 / interval minutes. ``event_start`` and ``event_end`` (exclusive) are
    tz-aware and on the readings' grid. ``tz`` is the IANA zone whose local dates and
    wall-clock hours define days and "the same time of day"; ``excluded_dates`` and
    ``holidays`` are local dates.

    Rules, in order:

    1. Candidates: walk back from the local day before the event day, at most
       ``lookback_days`` calendar days; keep days of the spec's ``day_type`` that are not
       excluded and have a reading for every interval the method uses (event window and
       adjustment window, at their wall-clock times). The pool is the first ``pool_days``.
    2. Low usage: when ``low_usage_fraction`` is set, seed = mean over the initial pool of
       each day's mean kW over the event window; pool days below fraction x seed are
       dropped and replaced by earlier eligible days at or above that threshold (the
       threshold is computed once).
    3. Days are ranked by their mean kW over the event window's wall-clock slots, never by
       daily totals. ``highest`` keeps the X largest (ties: the more recent),
       ``middle`` drops (Y - X) / 2 highest and (Y - X) / 2 lowest (with n < Y days,
       (n - X) // 2 highest and the rest lowest), ``most_recent`` the first X, ``all``
       every pool day.
    4. Unadjusted baseline per event interval = mean over the selected days of kW at the
       same local wall-clock time. DST: a local day has 92, 96 or 100 quarter-hours; a
       repeated fall-back label on a baseline day is the mean of its two readings (both
       must be present for the day to be eligible); a label missing on a spring-forward
       baseline day is absent and the other days' mean is used.
    5. Adjustment window: the ``adjustment_hours`` ending ``adjustment_gap_hours`` before
       the event start, on the event day and at the same wall-clock times on the selected
       days. Additive: delta = mean(actual) - mean(unadjusted) over the window, |delta|
       limited to cap x mean(unadjusted) when a cap is set. Multiplicative:
       f = sum(actual) / sum(unadjusted), clipped to [1 - cap, 1 + cap]; f = 1 with a
       warning when sum(unadjusted) is 0. ``up_only``: delta = max(delta, 0),
       f = max(f, 1). Event-day intervals missing in the window are left out (with a
       warning); with none left the adjustment is neutral.
    6. Fewer eligible days than ``min_days`` raises :class:`InsufficientData` saying how
       many were found; fewer than ``pool_days`` computes with the days found and warns.

    Raises ``TypeError``/``ValueError`` for malformed input.
    """
    if not isinstance(spec, BaselineSpec):
        raise TypeError("spec must be a BaselineSpec (see PRESETS and spec_from_preset)")
    utc, kwh, minutes = prepare_readings(readings, interval_minutes)
    step = minutes * NS_PER_MINUTE
    slots = NS_PER_DAY // step
    anchor = int(utc[0]) if utc.size else pd.Timestamp(event_start).value
    event_utc = interval_starts(event_start, event_end, anchor, step)
    window_utc = _adjustment_window(spec, int(event_utc[0]), anchor, step)
    n_event = event_utc.size

    used_wall = wall_ns(np.concatenate([event_utc, window_utc]), tz)
    event_day = int(used_wall[0] // NS_PER_DAY)
    used_rel = used_wall // NS_PER_DAY - event_day
    used_slot = (used_wall % NS_PER_DAY) // step

    lookback = spec.lookback_days
    min_rel, max_rel = int(min(used_rel.min(), 0)), int(used_rel.max())
    first_day = event_day - lookback + min_rel
    n_days = lookback + max_rel - min_rel
    table, cell_ok = _day_slot_table(utc, kwh, minutes, tz, first_day, n_days, anchor)

    # Candidate days, most recent first: event day - 1, - 2, ... - lookback.
    cand_day = event_day - np.arange(1, lookback + 1, dtype=np.int64)
    cand_row = cand_day - first_day
    used_cells = np.unique(used_rel * slots + used_slot)
    complete = cell_ok[_cells(cand_row, used_cells, slots)].all(axis=1)
    event_cells = np.unique(used_rel[:n_event] * slots + used_slot[:n_event])
    day_mean_kw = nan_mean(table[_cells(cand_row, event_cells, slots)], axis=1)

    eligible = (
        _day_type_mask(spec, cand_day, event_day, _day_numbers(holidays))
        & ~np.isin(cand_day, _day_numbers(excluded_dates))
        & complete
    )
    eligible_at = np.flatnonzero(eligible)
    warnings: list[str] = []
    pool = _pool(spec, eligible_at, day_mean_kw, cand_day, warnings)
    if pool.size < spec.min_days:
        raise InsufficientData(
            f"found {pool.size} eligible baseline day(s) within {lookback} days before "
            f"{_date(event_day)}; the method needs at least {spec.min_days}",
            found=int(pool.size),
            required=spec.min_days,
        )
    if pool.size < spec.pool_days:
        warnings.append(
            f"only {pool.size} eligible day(s) found of the {spec.pool_days} wanted within "
            f"{lookback} days; the baseline uses the days found"
        )
    selected = _select(spec, pool, day_mean_kw)

    sel_row = cand_row[selected]
    unadjusted = nan_mean(
        table[(sel_row[:, None] + used_rel[None, :]) * slots + used_slot[None, :]], axis=0
    )
    event_unadjusted = unadjusted[:n_event]
    if np.isnan(event_unadjusted).any():
        warnings.append(
            f"{int(np.isnan(event_unadjusted).sum())} event interval(s) have no baseline value"
        )
    window_actual = values_at(utc, kwh, window_utc) * (60.0 / minutes)
    adjustment, baseline = _adjust(
        spec, event_unadjusted, unadjusted[n_event:], window_actual, warnings
    )

    index = utc_index(event_utc, pd.Timestamp(event_start).tz)
    return BaselineResult(
        baseline_kw=pd.Series(baseline, index=index, name="baseline_kw"),
        unadjusted_kw=pd.Series(event_unadjusted, index=index, name="unadjusted_kw"),
        adjustment=adjustment,
        candidate_days=tuple(_date(day) for day in cand_day[pool]),
        selected_days=tuple(_date(day) for day in cand_day[selected]),
        warnings=tuple(warnings),
        spec=spec,
        interval_minutes=minutes,
    )


def _adjustment_window(spec: BaselineSpec, event_start: int, anchor: int, step: int) -> np.ndarray:
    """UTC ns of the adjustment window's interval starts (empty without an adjustment)."""
    if not spec.uses_adjustment:
        return np.empty(0, dtype=np.int64)
    end = event_start - round(spec.adjustment_gap_hours * NS_PER_HOUR)
    start = end - round(spec.adjustment_hours * NS_PER_HOUR)
    return window_starts(start, end, anchor, step)


def _day_slot_table(
    utc: np.ndarray,
    kwh: np.ndarray,
    minutes: int,
    tz: str,
    first_day: int,
    n_days: int,
    anchor: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat (day x slot) mean kW table and, per cell, whether all its readings are there.

    A cell that does not exist on its day (spring-forward) counts as complete; a
    fall-back cell is complete only with both readings.
    """
    step = minutes * NS_PER_MINUTE
    slots = NS_PER_DAY // step
    # UTC offsets are within a day, so this slice holds every reading of those local days.
    low = first_day * NS_PER_DAY - NS_PER_DAY
    high = (first_day + n_days + 1) * NS_PER_DAY
    lo_at, hi_at = np.searchsorted(utc, [low, high])
    part_utc, part_kwh = utc[lo_at:hi_at], kwh[lo_at:hi_at]
    present = ~np.isnan(part_kwh)
    part_utc, part_kwh = part_utc[present], part_kwh[present]

    wall = wall_ns(part_utc, tz)
    row = wall // NS_PER_DAY - first_day
    inside = (row >= 0) & (row < n_days)
    cell = row[inside] * slots + (wall[inside] % NS_PER_DAY) // step
    size = n_days * slots
    kw_sum = np.bincount(cell, weights=part_kwh[inside] * (60.0 / minutes), minlength=size)
    count = np.bincount(cell, minlength=size)
    table = np.divide(kw_sum, count, out=np.full(size, np.nan), where=count > 0)

    grid_first = low + (-(low - anchor)) % step
    expected = expected_cells(grid_first, high, step, tz, first_day, n_days)
    return table, count >= expected


def _cells(rows: np.ndarray, cells: np.ndarray, slots: int) -> np.ndarray:
    """Flat table positions of ``cells`` (relative day x slot numbers) for each row."""
    rel, slot = np.divmod(cells, slots)
    return (rows[:, None] + rel[None, :]) * slots + slot[None, :]


def _day_numbers(dates: Iterable[datetime.date]) -> np.ndarray:
    return np.fromiter((d.toordinal() - _EPOCH_ORDINAL for d in dates), dtype=np.int64)


def _date(day_number: int | np.integer) -> datetime.date:
    return datetime.date.fromordinal(int(day_number) + _EPOCH_ORDINAL)


def _day_type_mask(
    spec: BaselineSpec, days: np.ndarray, event_day: int, holiday_days: np.ndarray
) -> np.ndarray:
    """Which ``days`` are like days for the spec's ``day_type``."""
    if spec.day_type == "any":
        return np.ones(days.shape, dtype=bool)
    business = ((days + _EPOCH_WEEKDAY) % 7 < 5) & ~np.isin(days, holiday_days)
    day_type = spec.day_type
    if day_type == "same":
        event_is_business = (event_day + _EPOCH_WEEKDAY) % 7 < 5 and event_day not in holiday_days
        day_type = "weekday" if event_is_business else "weekend"
    return business if day_type == "weekday" else ~business


def _pool(
    spec: BaselineSpec,
    eligible_at: np.ndarray,
    day_mean_kw: np.ndarray,
    cand_day: np.ndarray,
    warnings: list[str],
) -> np.ndarray:
    """Positions of the pool days, most recent first, after the low-usage rule."""
    pool = eligible_at[: spec.pool_days]
    if spec.low_usage_fraction is None or pool.size == 0:
        return pool
    seed_kw = float(day_mean_kw[pool].mean())
    threshold_kw = spec.low_usage_fraction * seed_kw
    kept = eligible_at[day_mean_kw[eligible_at] >= threshold_kw][: spec.pool_days]
    dropped = np.setdiff1d(pool, kept)
    if dropped.size:
        dates = ", ".join(str(_date(day)) for day in np.sort(cand_day[dropped])[::-1])
        warnings.append(
            f"low-usage day(s) replaced (event-window mean below {threshold_kw:.3f} kW, "
            f"{spec.low_usage_fraction:g} x seed {seed_kw:.3f} kW): {dates}"
        )
    return kept


def _select(spec: BaselineSpec, pool: np.ndarray, day_mean_kw: np.ndarray) -> np.ndarray:
    """Positions of the selected days, most recent first."""
    count = pool.size
    keep = min(spec.select_days, count)
    if spec.selection == "all" or keep == count:
        return pool
    if spec.selection == "most_recent":
        return pool[:keep]
    # Stable sort on the pool (most recent first) breaks ties in favour of recent days.
    by_mean = pool[np.argsort(-day_mean_kw[pool], kind="stable")]
    if spec.selection == "highest":
        chosen = by_mean[:keep]
    else:
        drop_high = (count - keep) // 2
        chosen = by_mean[drop_high : drop_high + keep]
    return np.sort(chosen)


def _adjust(
    spec: BaselineSpec,
    event_unadjusted: np.ndarray,
    window_unadjusted: np.ndarray,
    window_actual: np.ndarray,
    warnings: list[str],
) -> tuple[float, np.ndarray]:
    """Return (adjustment, adjusted baseline kW) per the spec's rule 5."""
    if not spec.uses_adjustment:
        return 0.0, event_unadjusted.copy()
    multiplicative = spec.adjustment == "multiplicative"
    neutral = 1.0 if multiplicative else 0.0
    usable = ~np.isnan(window_actual) & ~np.isnan(window_unadjusted)
    if not usable.any():
        warnings.append("no event-day readings in the adjustment window; adjustment not applied")
        return neutral, event_unadjusted.copy()
    if not usable.all():
        warnings.append(
            f"{int((~usable).sum())} of {usable.size} adjustment-window interval(s) missing; "
            "the adjustment uses the rest"
        )
    actual, unadjusted = window_actual[usable], window_unadjusted[usable]
    cap = spec.adjustment_cap
    if multiplicative:
        total = float(unadjusted.sum())
        if total == 0:
            warnings.append("baseline is zero over the adjustment window; factor set to 1")
            factor = 1.0
        else:
            factor = float(actual.sum()) / total
        if cap is not None:
            factor = min(max(factor, 1.0 - cap), 1.0 + cap)
        if spec.adjustment_direction == "up_only":
            factor = max(factor, 1.0)
        return factor, event_unadjusted * factor
    delta = float(actual.mean() - unadjusted.mean())
    if cap is not None:
        limit = cap * abs(float(unadjusted.mean()))
        delta = min(max(delta, -limit), limit)
    if spec.adjustment_direction == "up_only":
        delta = max(delta, 0.0)
    return delta, event_unadjusted + delta
