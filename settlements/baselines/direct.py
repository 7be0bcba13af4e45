"""Measurement types that are not day matching: firm service level, meter before/after.

Both read only the event day's own readings, by absolute instant: a fall-back hour's two
intervals are both counted and a spring-forward gap has no interval, so no local-time
table is needed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from settlements.baselines._intervals import (
    NS_PER_HOUR,
    NS_PER_MINUTE,
    interval_starts,
    prepare_readings,
    utc_index,
    values_at,
    window_starts,
)
from settlements.baselines.errors import InsufficientData


@dataclasses.dataclass(frozen=True, eq=False)
class FirmServiceLevelResult:
    """Load held at or below a firm service level (FSL) during an event.

    - ``actual_kw``: mean kW per event interval, indexed by interval start (NaN missing).
    - ``excess_kw``: max(actual - firm, 0) per interval, kW.
    - ``excess_kwh``: excess kW x minutes / 60 per interval, kWh.
    - ``total_excess_kwh``: sum of ``excess_kwh`` over intervals with data.
    - ``interval_compliant``: per interval, actual kW <= firm kW (False where missing).
    - ``compliant``: every interval has data and is at or below the level.
    - ``average_kw``: mean actual kW over intervals with data (NaN if none).
    - ``missing_intervals``: event intervals without a reading.
    """

    firm_kw: float
    actual_kw: pd.Series
    excess_kw: pd.Series
    excess_kwh: pd.Series
    total_excess_kwh: float
    interval_compliant: pd.Series
    compliant: bool
    average_kw: float
    missing_intervals: int
    interval_minutes: int


def firm_service_level(
    readings: pd.Series,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
    firm_kw: float,
    *,
    interval_minutes: int | None = None,
) -> FirmServiceLevelResult:
    """Measure a firm service level commitment: load must stay at or below ``firm_kw``.

    ``readings`` is kWh per interval on a tz-aware DatetimeIndex of interval starts (the
    interval length is inferred unless given); kW = kWh x 60 / interval minutes. The
    result is indexed by the event's interval starts in [event_start, event_end), in the
    event_start's zone. Raises ``ValueError`` for a negative or non-finite ``firm_kw``.
    """
    if not np.isfinite(firm_kw) or firm_kw < 0:
        raise ValueError(f"firm_kw must be a finite non-negative kW value, got {firm_kw!r}")
    utc, kwh, minutes = prepare_readings(readings, interval_minutes)
    step = minutes * NS_PER_MINUTE
    anchor = int(utc[0]) if utc.size else pd.Timestamp(event_start).value
    event_utc = interval_starts(event_start, event_end, anchor, step)
    actual_kw = values_at(utc, kwh, event_utc) * (60.0 / minutes)
    present = ~np.isnan(actual_kw)
    excess_kw = np.where(present, np.maximum(actual_kw - firm_kw, 0.0), np.nan)
    excess_kwh = excess_kw * minutes / 60.0
    interval_compliant = present & (np.where(present, actual_kw, 0.0) <= firm_kw)
    index = utc_index(event_utc, pd.Timestamp(event_start).tz)
    return FirmServiceLevelResult(
        firm_kw=float(firm_kw),
        actual_kw=pd.Series(actual_kw, index=index, name="actual_kw"),
        excess_kw=pd.Series(excess_kw, index=index, name="excess_kw"),
        excess_kwh=pd.Series(excess_kwh, index=index, name="excess_kwh"),
        total_excess_kwh=float(excess_kwh[present].sum()),
        interval_compliant=pd.Series(interval_compliant, index=index, name="compliant"),
        compliant=bool(interval_compliant.all()),
        average_kw=float(actual_kw[present].mean()) if present.any() else float("nan"),
        missing_intervals=int((~present).sum()),
        interval_minutes=minutes,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class MeterBeforeAfterResult:
    """Reduction measured as the drop from the load just before the event.

    - ``before_kw``: mean kW over the ``before_hours`` before event_start.
    - ``during_kw``: mean kW over [event_start, event_end).
    - ``reduction_kw``: before_kw - during_kw (negative when load rose).
    - ``missing_before`` / ``missing_during``: intervals without a reading in each window.
    - ``warnings``: notes about missing intervals.
    """

    before_kw: float
    during_kw: float
    reduction_kw: float
    missing_before: int
    missing_during: int
    interval_minutes: int
    warnings: tuple[str, ...]


def meter_before_after(
    readings: pd.Series,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
    before_hours: float = 1,
    *,
    interval_minutes: int | None = None,
) -> MeterBeforeAfterResult:
    """Mean kW in the ``before_hours`` before the event minus mean kW during it.

    ``readings`` is kWh per interval on a tz-aware DatetimeIndex of interval starts;
    kW = kWh x 60 / interval minutes. Windows are in real (absolute) time. Means use the
    intervals with readings; missing ones are counted and warned about. Raises
    :class:`InsufficientData` when either window has no reading at all and ``ValueError``
    when ``before_hours`` is not positive.
    """
    if not np.isfinite(before_hours) or before_hours <= 0:
        raise ValueError(f"before_hours must be positive, got {before_hours!r}")
    utc, kwh, minutes = prepare_readings(readings, interval_minutes)
    step = minutes * NS_PER_MINUTE
    anchor = int(utc[0]) if utc.size else pd.Timestamp(event_start).value
    during_utc = interval_starts(event_start, event_end, anchor, step)
    start = int(during_utc[0])
    before_utc = window_starts(start - round(before_hours * NS_PER_HOUR), start, anchor, step)
    kw_per_kwh = 60.0 / minutes
    before = values_at(utc, kwh, before_utc) * kw_per_kwh
    during = values_at(utc, kwh, during_utc) * kw_per_kwh
    warnings: list[str] = []
    for name, values in (("before the event", before), ("during the event", during)):
        present = int((~np.isnan(values)).sum())
        if present == 0:
            raise InsufficientData(
                f"found 0 readings {name} of the {values.size} interval(s) needed",
                found=0,
                required=values.size,
            )
        if present < values.size:
            warnings.append(f"{values.size - present} interval(s) missing {name}")
    before_kw = float(np.nanmean(before))
    during_kw = float(np.nanmean(during))
    return MeterBeforeAfterResult(
        before_kw=before_kw,
        during_kw=during_kw,
        reduction_kw=before_kw - during_kw,
        missing_before=int(np.isnan(before).sum()),
        missing_during=int(np.isnan(during).sum()),
        interval_minutes=minutes,
        warnings=tuple(warnings),
    )
