"""Turning a baseline and the event's actual readings into a measured reduction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from settlements.baselines._intervals import (
    NS_PER_MINUTE,
    interval_starts,
    prepare_readings,
    values_at,
)
from settlements.baselines.engine import BaselineResult


@dataclasses.dataclass(frozen=True, eq=False)
class PerformanceResult:
    """Measured load reduction against a baseline.

    - ``baseline_kw``, ``actual_kw``, ``reduction_kw``: mean kW per interval, indexed by
      the event's interval starts (the baseline's index); ``reduction_kw`` = baseline -
      actual, NaN where the actual reading is missing. Negative values (load above the
      baseline) are kept as they are; settlement decides their treatment.
    - ``reduction_kwh``: sum over intervals with data of reduction kW x minutes / 60.
    - ``average_reduction_kw``: mean of ``reduction_kw`` over intervals with data (NaN if
      none).
    - ``max_reduction_kw``: the largest single-interval reduction, kW (NaN if none).
    - ``missing_intervals``: event intervals with no actual reading.
    - ``interval_minutes``: the interval length.
    """

    baseline_kw: pd.Series
    actual_kw: pd.Series
    reduction_kw: pd.Series
    reduction_kwh: float
    average_reduction_kw: float
    max_reduction_kw: float
    missing_intervals: int
    interval_minutes: int


def measure_performance(
    baseline: BaselineResult,
    readings: pd.Series,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
) -> PerformanceResult:
    """Compare a baseline with the actual readings over [event_start, event_end).

    ``readings`` is kWh per interval on a tz-aware DatetimeIndex of interval starts, of
    the same interval length as the baseline; actual kW = kWh x 60 / interval minutes.
    Intervals are matched by absolute instant, so a fall-back hour's two intervals are
    each measured and a spring-forward gap has none. Raises ``ValueError`` when the event
    window is not the one the baseline was computed for.
    """
    minutes = baseline.interval_minutes
    utc, kwh, _ = prepare_readings(readings, minutes)
    step = minutes * NS_PER_MINUTE
    anchor = int(utc[0]) if utc.size else pd.Timestamp(event_start).value
    event_utc = interval_starts(event_start, event_end, anchor, step)
    index = baseline.baseline_kw.index
    if not np.array_equal(index.as_unit("ns").asi8, event_utc):
        raise ValueError("the baseline was computed for a different event window")

    baseline_kw = baseline.baseline_kw.to_numpy(dtype=np.float64)
    actual_kw = values_at(utc, kwh, event_utc) * (60.0 / minutes)
    reduction_kw = baseline_kw - actual_kw
    measured = ~np.isnan(reduction_kw)
    reduction = reduction_kw[measured]
    return PerformanceResult(
        baseline_kw=pd.Series(baseline_kw, index=index, name="baseline_kw"),
        actual_kw=pd.Series(actual_kw, index=index, name="actual_kw"),
        reduction_kw=pd.Series(reduction_kw, index=index, name="reduction_kw"),
        reduction_kwh=float(reduction.sum() * minutes / 60.0),
        average_reduction_kw=float(reduction.mean()) if reduction.size else float("nan"),
        max_reduction_kw=float(reduction.max()) if reduction.size else float("nan"),
        missing_intervals=int(np.isnan(actual_kw).sum()),
        interval_minutes=minutes,
    )
