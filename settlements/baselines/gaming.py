"""Flags for a computed baseline that a settlement reviewer should look at.

Day-matching baselines can be moved by the participant's own load: running extra load on
days likely to be baseline days raises the baseline (and the reduction credited), and
load that is already down before an event starts pulls an event-day adjustment down. The
checks here only flag; they change no number, and each flag's message says what it means
for the participant.

Checks and their thresholds (all parameters of :func:`gaming_flags`):

- ``inflated_baseline_day``: a selected baseline day whose event-window mean kW is
  anomalously high against the site's usual load. Usual load = the median of the
  event-window mean kW over the reference days: every day in the spec's lookback before
  the event that is of the same class as the tested day (business day, or weekend day or
  holiday), not excluded, and has every event-window reading. The robust z-score is
  0.6745 x (day - median) / MAD (MAD = median absolute deviation from the median;
  Iglewicz and Hoaglin's modified z-score); when MAD is 0 it is
  (day - median) / (1.253314 x mean absolute deviation), and 0 when that is 0 too. A day
  is flagged when z > ``robust_z_threshold`` (3.5) and the day is also more than
  ``min_excess_fraction`` (10%) above the median, so that a very steady site is not
  flagged for a small excess. Not checked with fewer than ``min_reference_days`` (5)
  reference days.
- ``pre_event_load_drop``: for a method with an event-day adjustment, the event day's
  actual mean kW over the adjustment window is below (1 - ``pre_event_drop_fraction``)
  (0.7 by default) x the unadjusted baseline's mean kW over the same intervals. Only
  intervals with both values count; not checked when there are none or the baseline
  mean there is not positive.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from settlements.baselines._intervals import (
    NS_PER_DAY,
    NS_PER_MINUTE,
    interval_starts,
    nan_mean,
    prepare_readings,
    values_at,
    wall_ns,
)
from settlements.baselines.engine import (
    _EPOCH_ORDINAL,
    _EPOCH_WEEKDAY,
    BaselineResult,
    _adjustment_window,
    _cells,
    _day_numbers,
    _day_slot_table,
)

INFLATED_BASELINE_DAY = "inflated_baseline_day"
PRE_EVENT_LOAD_DROP = "pre_event_load_drop"

# Iglewicz and Hoaglin: 0.6745 makes the MAD of normal data comparable with its standard
# deviation; 1.253314 (sqrt(pi / 2)) does the same for the mean absolute deviation.
_MAD_SCALE = 0.6745
_MEAN_AD_SCALE = 1.253314


@dataclasses.dataclass(frozen=True)
class GamingFlag:
    """One finding: ``code`` (a constant of this module), a ``message`` for the
    participant and the reviewer, and the figures behind it in ``detail`` (kW, dates as
    ISO strings, thresholds)."""

    code: str
    message: str
    detail: dict[str, Any]


def gaming_flags(
    readings: pd.Series,
    result: BaselineResult,
    *,
    tz: str,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
    excluded_dates: Iterable[datetime.date] = (),
    holidays: Iterable[datetime.date] = (),
    robust_z_threshold: float = 3.5,
    min_excess_fraction: float = 0.10,
    min_reference_days: int = 5,
    pre_event_drop_fraction: float = 0.3,
) -> list[GamingFlag]:
    """Check a computed baseline for inflated baseline days and a pre-event load drop.

    ``readings`` (kWh per interval, tz-aware index) and ``result`` are what
    :func:`compute_baseline` was given and returned for [event_start, event_end) with
    ``tz``, ``excluded_dates`` and ``holidays``. Returns the flags, baseline days first
    (most recent first), then the adjustment window's; an empty list when nothing is
    unusual. The rules and thresholds are in this module's docstring. Raises
    ``ValueError`` when the event window is not the one the baseline was computed for
    or a threshold is out of range.
    """
    if robust_z_threshold <= 0 or min_excess_fraction < 0 or min_reference_days < 1:
        raise ValueError("robust_z_threshold and min_reference_days must be positive")
    if not 0 < pre_event_drop_fraction < 1:
        raise ValueError(
            f"pre_event_drop_fraction must be between 0 and 1, got {pre_event_drop_fraction}"
        )
    minutes = result.interval_minutes
    utc, kwh, _ = prepare_readings(readings, minutes)
    step = minutes * NS_PER_MINUTE
    slots = NS_PER_DAY // step
    anchor = int(utc[0]) if utc.size else pd.Timestamp(event_start).value
    event_utc = interval_starts(event_start, event_end, anchor, step)
    if not np.array_equal(result.baseline_kw.index.as_unit("ns").asi8, event_utc):
        raise ValueError("the baseline was computed for a different event window")
    spec = result.spec
    window_utc = _adjustment_window(spec, int(event_utc[0]), anchor, step)

    used_wall = wall_ns(np.concatenate([event_utc, window_utc]), tz)
    event_day = int(used_wall[0] // NS_PER_DAY)
    used_rel = used_wall // NS_PER_DAY - event_day
    used_slot = (used_wall % NS_PER_DAY) // step
    lookback = spec.lookback_days
    min_rel, max_rel = int(min(used_rel.min(), 0)), int(used_rel.max())
    first_day = event_day - lookback + min_rel
    n_days = lookback + max_rel - min_rel
    table, cell_ok = _day_slot_table(utc, kwh, minutes, tz, first_day, n_days, anchor)

    n_event = event_utc.size
    cand_day = event_day - np.arange(1, lookback + 1, dtype=np.int64)
    cand_row = cand_day - first_day
    event_cells = np.unique(used_rel[:n_event] * slots + used_slot[:n_event])
    at_event = _cells(cand_row, event_cells, slots)
    day_mean_kw = nan_mean(table[at_event], axis=1)
    complete = cell_ok[at_event].all(axis=1)

    holiday_days = _day_numbers(holidays)
    business = ((cand_day + _EPOCH_WEEKDAY) % 7 < 5) & ~np.isin(cand_day, holiday_days)
    reference = complete & ~np.isin(cand_day, _day_numbers(excluded_dates))
    event_hours = _hours(int(event_utc[0]), int(event_utc[-1]) + step, tz)

    flags: list[GamingFlag] = []
    for selected in result.selected_days:
        position = event_day - 1 - (selected.toordinal() - _EPOCH_ORDINAL)
        if not 0 <= position < lookback:
            continue
        like = reference & (business == business[position])
        flag = _inflated_day_flag(
            selected,
            float(day_mean_kw[position]),
            day_mean_kw[like],
            event_hours,
            lookback,
            robust_z_threshold,
            min_excess_fraction,
            min_reference_days,
        )
        if flag is not None:
            flags.append(flag)

    if window_utc.size:
        selected_rows = np.array(
            [d.toordinal() - _EPOCH_ORDINAL - first_day for d in result.selected_days],
            dtype=np.int64,
        )
        window_rel, window_slot = used_rel[n_event:], used_slot[n_event:]
        unadjusted = nan_mean(
            table[(selected_rows[:, None] + window_rel[None, :]) * slots + window_slot[None, :]],
            axis=0,
        )
        actual = values_at(utc, kwh, window_utc) * (60.0 / minutes)
        flag = _pre_event_drop_flag(
            result,
            actual,
            unadjusted,
            _hours(int(window_utc[0]), int(window_utc[-1]) + step, tz),
            pre_event_drop_fraction,
        )
        if flag is not None:
            flags.append(flag)
    return flags


def _robust_z(value: float, reference: np.ndarray) -> tuple[float, float, float]:
    """(z, median, MAD) of ``value`` against ``reference`` (see the module docstring)."""
    median = float(np.median(reference))
    deviation = np.abs(reference - median)
    mad = float(np.median(deviation))
    if mad > 0:
        return _MAD_SCALE * (value - median) / mad, median, mad
    mean_ad = float(deviation.mean())
    if mean_ad > 0:
        return (value - median) / (_MEAN_AD_SCALE * mean_ad), median, mad
    return 0.0, median, mad


def _inflated_day_flag(
    date: datetime.date,
    day_kw: float,
    reference_kw: np.ndarray,
    event_hours: str,
    lookback: int,
    z_threshold: float,
    min_excess_fraction: float,
    min_reference_days: int,
) -> GamingFlag | None:
    reference_kw = reference_kw[~np.isnan(reference_kw)]
    if reference_kw.size < min_reference_days or np.isnan(day_kw):
        return None
    z, median_kw, mad_kw = _robust_z(day_kw, reference_kw)
    if z <= z_threshold or day_kw <= (1 + min_excess_fraction) * median_kw:
        return None
    message = (
        f"Baseline day {date} used {day_kw:.1f} kW on average over the event hours "
        f"({event_hours}), against the site's usual {median_kw:.1f} kW (median of "
        f"{reference_kw.size} like days in the {lookback}-day lookback; robust z-score "
        f"{z:.1f}, above {z_threshold:g}). This day is averaged into the baseline, so the "
        "baseline, and the reduction credited for this event, are higher than the site's "
        "usual load supports; the program may review the day or exclude it from the "
        "baseline."
    )
    detail = {
        "date": date.isoformat(),
        "event_window_mean_kw": day_kw,
        "reference_median_kw": median_kw,
        "reference_mad_kw": mad_kw,
        "reference_days": int(reference_kw.size),
        "robust_z": z,
        "robust_z_threshold": z_threshold,
        "min_excess_fraction": min_excess_fraction,
    }
    return GamingFlag(code=INFLATED_BASELINE_DAY, message=message, detail=detail)


def _pre_event_drop_flag(
    result: BaselineResult,
    actual: np.ndarray,
    unadjusted: np.ndarray,
    window_hours: str,
    drop_fraction: float,
) -> GamingFlag | None:
    usable = ~np.isnan(actual) & ~np.isnan(unadjusted)
    if not usable.any():
        return None
    actual_kw = float(actual[usable].mean())
    baseline_kw = float(unadjusted[usable].mean())
    if baseline_kw <= 0 or actual_kw >= (1 - drop_fraction) * baseline_kw:
        return None
    spec = result.spec
    if spec.adjustment == "multiplicative":
        effect = f"multiplicative factor {result.adjustment:.3f}"
    else:
        effect = f"additive {result.adjustment:+.1f} kW"
    message = (
        f"Before the event, in the adjustment window ({window_hours}), the site used "
        f"{actual_kw:.1f} kW on average, {1 - actual_kw / baseline_kw:.0%} below the "
        f"{baseline_kw:.1f} kW its baseline days used at those hours (flagged when more "
        f"than {drop_fraction:.0%} below). The event-day adjustment scales the baseline to "
        f"that window ({effect}), so load already reduced before the event starts "
        "(curtailment begun early, or pre-event load shifting) lowers the baseline and the "
        "reduction credited for this event."
    )
    if spec.adjustment_cap is not None or spec.adjustment_direction == "up_only":
        message += " The method's cap or up-only rule limits that effect."
    detail = {
        "window": window_hours,
        "actual_mean_kw": actual_kw,
        "unadjusted_baseline_mean_kw": baseline_kw,
        "ratio": actual_kw / baseline_kw,
        "pre_event_drop_fraction": drop_fraction,
        "adjustment": result.adjustment,
        "adjustment_kind": spec.adjustment,
        "intervals": int(usable.sum()),
    }
    return GamingFlag(code=PRE_EVENT_LOAD_DROP, message=message, detail=detail)


def _hours(start_ns: int, end_ns: int, tz: str) -> str:
    """'HH:MM-HH:MM': the local wall-clock times of a window given as UTC ns."""
    first = pd.Timestamp(start_ns, tz="UTC").tz_convert(tz)
    last = pd.Timestamp(end_ns, tz="UTC").tz_convert(tz)
    return f"{first:%H:%M}-{last:%H:%M}"
