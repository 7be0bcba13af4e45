"""How well a baseline method predicts a site's load on days without an event.

A baseline is a forecast of what the site would have used had there been no event. On a
day with no event the forecast can be checked: run the method as if that day were an
event day and compare it with what the meter read. Doing this over the most recent like
days gives each site an accuracy figure per method, so that a program can pick the
method that fits the site and flag sites that no method forecasts well.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from settlements.baselines._intervals import NS_PER_MINUTE, prepare_readings, values_at
from settlements.baselines.engine import BaselineResult, compute_baseline
from settlements.baselines.errors import InsufficientData
from settlements.baselines.spec import BaselineSpec

# Sites whose best method misses the actual load by more than 20% (relative RMSE) get
# flagged for review: at that error a credited reduction is mostly forecast noise.
ACCURACY_FLAG_THRESHOLD = 0.20

EventWindow = tuple[datetime.time, datetime.time]


@dataclasses.dataclass(frozen=True, eq=False)
class DayAccuracy:
    """One simulated event day.

    - ``date``: the local date tested.
    - ``intervals``: event-window intervals compared (both baseline and actual present).
    - ``mean_actual_kw`` / ``mean_baseline_kw``: means over those intervals, kW.
    - ``bias_kw``: mean of baseline - actual, kW (positive: the baseline is too high).
    - ``rmse_kw``: root mean square of baseline - actual, kW.
    - ``adjustment``: the adjustment the method applied that day (see BaselineResult).
    - ``warnings``: the baseline's own warnings for that day.
    """

    date: datetime.date
    intervals: int
    mean_actual_kw: float
    mean_baseline_kw: float
    bias_kw: float
    rmse_kw: float
    adjustment: float
    warnings: tuple[str, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class AccuracyResult:
    """A baseline method's accuracy on a site's recent non-event days.

    Over every compared interval of every tested day (error = baseline - actual, kW):

    - ``rmse_kw``: root mean square error, kW; ``relative_rmse`` = rmse_kw / mean_actual_kw.
    - ``bias_kw``: mean error, kW (positive: the method over-forecasts, which over-credits
      reductions); ``relative_bias`` = bias_kw / mean_actual_kw.
    - ``mean_actual_kw``: mean actual load over the compared intervals, kW.

    The relative figures are NaN when no day could be tested or the mean actual load is
    not positive (a warning says which). ``days`` holds the tested days, most recent
    first; ``skipped_days`` the test days for which the method had too few baseline days
    (:class:`InsufficientData`), most recent first.
    """

    spec: BaselineSpec
    event_window: EventWindow
    relative_rmse: float
    relative_bias: float
    rmse_kw: float
    bias_kw: float
    mean_actual_kw: float
    days: tuple[DayAccuracy, ...]
    skipped_days: tuple[datetime.date, ...]
    warnings: tuple[str, ...]

    @property
    def days_tested(self) -> int:
        """How many days were simulated and compared."""
        return len(self.days)

    @property
    def days_skipped(self) -> int:
        """How many test days had too little history for the method."""
        return len(self.skipped_days)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The most accurate method for a site and whether the site needs review.

    ``name`` is the best preset (None when no preset could be tested); ``flagged`` is
    True when that preset's relative RMSE is above the threshold or no preset could be
    tested, and ``reason`` says which in a sentence for the manager's page.
    """

    name: str | None
    relative_rmse: float
    flagged: bool
    reason: str


def baseline_accuracy(
    readings: pd.Series,
    spec: BaselineSpec,
    *,
    tz: str,
    event_window: EventWindow,
    test_days: int = 20,
    excluded_dates: Iterable[datetime.date] = (),
    holidays: Iterable[datetime.date] = (),
    interval_minutes: int | None = None,
) -> AccuracyResult:
    """Back-test ``spec`` on the site's most recent ``test_days`` eligible non-event days.

    ``readings`` is kWh per interval on a tz-aware DatetimeIndex of interval starts (as
    for :func:`compute_baseline`); ``event_window`` is a (start, end) pair of local
    wall-clock times in ``tz`` (end ``time(0)`` means midnight at the end of the day).

    Test days are found walking back from the last local day with readings: days of the
    spec's day type (``"weekday"``: Monday to Friday except holidays; ``"weekend"``:
    Saturdays, Sundays and holidays; ``"same"`` and ``"any"``: every day, each judged
    against its own like days), not in ``excluded_dates`` (pass the site's event days
    and any other abnormal days), with a reading for every interval of the event window.
    Each test day is computed with :func:`compute_baseline` exactly as a real event over
    the window would be, so its baseline uses only days before it (earlier test days
    included, as they were ordinary days) and the event-day adjustment reads that day's
    own load. A test day for which the method raises :class:`InsufficientData` is
    skipped and counted, not replaced by an older day.

    Returns an :class:`AccuracyResult` (kW and fractions, see there). Raises
    ``ValueError`` for a bad window or ``test_days`` and whatever
    :func:`compute_baseline` raises for malformed readings.
    """
    if isinstance(test_days, bool) or not isinstance(test_days, int) or test_days < 1:
        raise ValueError(f"test_days must be a positive int, got {test_days!r}")
    start_time, end_time = _check_window(event_window)
    utc, kwh, minutes = prepare_readings(readings, interval_minutes)
    excluded = frozenset(excluded_dates)
    holiday_set = frozenset(holidays)
    step = minutes * NS_PER_MINUTE

    days: list[DayAccuracy] = []
    skipped: list[datetime.date] = []
    errors: list[np.ndarray] = []
    actuals: list[np.ndarray] = []
    for date, start, end in _test_days(
        utc, kwh, step, tz, start_time, end_time, spec, excluded, holiday_set, test_days
    ):
        try:
            baseline = compute_baseline(
                readings,
                start,
                end,
                spec,
                tz=tz,
                excluded_dates=excluded,
                holidays=holiday_set,
                interval_minutes=minutes,
            )
        except InsufficientData:
            skipped.append(date)
            continue
        day, error, actual = _day_accuracy(date, baseline, utc, kwh, minutes)
        days.append(day)
        errors.append(error)
        actuals.append(actual)
    return _summarise(spec, (start_time, end_time), test_days, days, skipped, errors, actuals)


def compare_presets(
    readings: pd.Series,
    presets: Mapping[str, BaselineSpec],
    *,
    tz: str,
    event_window: EventWindow,
    test_days: int = 20,
    excluded_dates: Iterable[datetime.date] = (),
    holidays: Iterable[datetime.date] = (),
    interval_minutes: int | None = None,
) -> list[tuple[str, AccuracyResult]]:
    """:func:`baseline_accuracy` for each named spec, most accurate first.

    Sorted by relative RMSE (lowest first), ties broken by the smaller absolute relative
    bias, then by the order of ``presets``; results with a NaN relative RMSE come last.
    Compare presets of one day type (weekday methods with weekday methods): each tests
    the days of its own type.
    """
    excluded = tuple(excluded_dates)
    holiday_list = tuple(holidays)
    results = [
        (
            name,
            baseline_accuracy(
                readings,
                spec,
                tz=tz,
                event_window=event_window,
                test_days=test_days,
                excluded_dates=excluded,
                holidays=holiday_list,
                interval_minutes=interval_minutes,
            ),
        )
        for name, spec in presets.items()
    ]
    return sorted(results, key=lambda item: _rank_key(item[1]))


def recommend(
    results: Iterable[tuple[str, AccuracyResult]],
    *,
    threshold: float = ACCURACY_FLAG_THRESHOLD,
) -> Recommendation:
    """The most accurate preset in ``results`` (as from :func:`compare_presets`).

    The site is flagged when the best relative RMSE is above ``threshold`` (default
    :data:`ACCURACY_FLAG_THRESHOLD`, 0.20) or when no preset could be tested at all.
    """
    ranked = sorted(results, key=lambda item: _rank_key(item[1]))
    if not ranked or not math.isfinite(ranked[0][1].relative_rmse):
        return Recommendation(
            name=None,
            relative_rmse=math.nan,
            flagged=True,
            reason="no baseline method could be tested on this site's recent days",
        )
    name, best = ranked[0]
    error = best.relative_rmse
    if error > threshold:
        reason = (
            f"the most accurate method, {name}, misses the site's actual load by "
            f"{error:.0%} (relative RMSE over {best.days_tested} day(s)), above the "
            f"{threshold:.0%} limit"
        )
    else:
        reason = (
            f"{name} forecasts the site's load within {error:.0%} (relative RMSE over "
            f"{best.days_tested} day(s))"
        )
    return Recommendation(name=name, relative_rmse=error, flagged=error > threshold, reason=reason)


def _rank_key(result: AccuracyResult) -> tuple[bool, float, float]:
    rmse, bias = result.relative_rmse, result.relative_bias
    if not math.isfinite(rmse):
        return (True, math.inf, math.inf)
    return (False, rmse, abs(bias) if math.isfinite(bias) else math.inf)


def _check_window(event_window: EventWindow) -> EventWindow:
    try:
        start_time, end_time = event_window
    except (TypeError, ValueError):
        raise ValueError("event_window must be a (start, end) pair of datetime.time") from None
    if not isinstance(start_time, datetime.time) or not isinstance(end_time, datetime.time):
        raise ValueError("event_window must be a (start, end) pair of datetime.time")
    if start_time.tzinfo is not None or end_time.tzinfo is not None:
        raise ValueError("event_window times are wall-clock times in tz: give them without tzinfo")
    if end_time != datetime.time(0) and end_time <= start_time:
        raise ValueError("event_window must end after it starts (or at midnight, time(0))")
    return start_time, end_time


def _local_instant(
    date: datetime.date, clock: datetime.time, tz: str, *, first: bool
) -> pd.Timestamp:
    """A wall-clock time on a local date; DST: the earlier repeated label for a start,
    the later for an end, and a skipped label moves forward to the next real time."""
    naive = pd.Timestamp(datetime.datetime.combine(date, clock))
    return naive.tz_localize(tz, ambiguous=first, nonexistent="shift_forward")


def _test_days(
    utc: np.ndarray,
    kwh: np.ndarray,
    step: int,
    tz: str,
    start_time: datetime.time,
    end_time: datetime.time,
    spec: BaselineSpec,
    excluded: frozenset[datetime.date],
    holidays: frozenset[datetime.date],
    wanted: int,
) -> list[tuple[datetime.date, pd.Timestamp, pd.Timestamp]]:
    """The most recent eligible days (most recent first) with their event start and end."""
    if utc.size == 0:
        return []
    present = utc[~np.isnan(kwh)]
    if present.size == 0:
        return []
    first_date = pd.Timestamp(int(present[0]), tz="UTC").tz_convert(tz).date()
    date = pd.Timestamp(int(present[-1]), tz="UTC").tz_convert(tz).date()
    found: list[tuple[datetime.date, pd.Timestamp, pd.Timestamp]] = []
    one_day = datetime.timedelta(days=1)
    while date >= first_date and len(found) < wanted:
        if date not in excluded and _is_test_day_type(spec, date, holidays):
            end_date = date + one_day if end_time == datetime.time(0) else date
            start = _local_instant(date, start_time, tz, first=True)
            end = _local_instant(end_date, end_time, tz, first=False)
            wanted_utc = np.arange(start.value, end.value, step, dtype=np.int64)
            if wanted_utc.size and not np.isnan(values_at(utc, kwh, wanted_utc)).any():
                found.append((date, start, end))
        date -= one_day
    return found


def _is_test_day_type(
    spec: BaselineSpec, date: datetime.date, holidays: frozenset[datetime.date]
) -> bool:
    if spec.day_type in ("same", "any"):
        return True
    business = date.weekday() < 5 and date not in holidays
    return business if spec.day_type == "weekday" else not business


def _day_accuracy(
    date: datetime.date,
    baseline: BaselineResult,
    utc: np.ndarray,
    kwh: np.ndarray,
    minutes: int,
) -> tuple[DayAccuracy, np.ndarray, np.ndarray]:
    event_utc = baseline.baseline_kw.index.as_unit("ns").asi8
    actual = values_at(utc, kwh, event_utc) * (60.0 / minutes)
    predicted = baseline.baseline_kw.to_numpy(dtype=np.float64)
    compared = ~np.isnan(actual) & ~np.isnan(predicted)
    error = predicted[compared] - actual[compared]
    nan = math.nan
    day = DayAccuracy(
        date=date,
        intervals=int(compared.sum()),
        mean_actual_kw=float(actual[compared].mean()) if error.size else nan,
        mean_baseline_kw=float(predicted[compared].mean()) if error.size else nan,
        bias_kw=float(error.mean()) if error.size else nan,
        rmse_kw=float(np.sqrt(np.mean(error**2))) if error.size else nan,
        adjustment=baseline.adjustment,
        warnings=baseline.warnings,
    )
    return day, error, actual[compared]


def _summarise(
    spec: BaselineSpec,
    event_window: EventWindow,
    wanted: int,
    days: list[DayAccuracy],
    skipped: list[datetime.date],
    errors: list[np.ndarray],
    actuals: list[np.ndarray],
) -> AccuracyResult:
    warnings: list[str] = []
    found = len(days) + len(skipped)
    if found < wanted:
        warnings.append(
            f"only {found} eligible test day(s) found of the {wanted} wanted in the readings"
        )
    if skipped:
        warnings.append(
            f"{len(skipped)} test day(s) skipped: too few baseline days before them "
            f"({', '.join(str(date) for date in skipped)})"
        )
    error = np.concatenate(errors) if errors else np.empty(0)
    actual = np.concatenate(actuals) if actuals else np.empty(0)
    nan = math.nan
    rmse_kw = float(np.sqrt(np.mean(error**2))) if error.size else nan
    bias_kw = float(error.mean()) if error.size else nan
    mean_actual_kw = float(actual.mean()) if actual.size else nan
    if not error.size:
        warnings.append("no day could be tested; accuracy unknown")
        relative_rmse = relative_bias = nan
    elif mean_actual_kw <= 0:
        warnings.append(
            f"mean actual load is {mean_actual_kw:.3f} kW; relative errors are undefined"
        )
        relative_rmse = relative_bias = nan
    else:
        relative_rmse = rmse_kw / mean_actual_kw
        relative_bias = bias_kw / mean_actual_kw
    return AccuracyResult(
        spec=spec,
        event_window=event_window,
        relative_rmse=relative_rmse,
        relative_bias=relative_bias,
        rmse_kw=rmse_kw,
        bias_kw=bias_kw,
        mean_actual_kw=mean_actual_kw,
        days=tuple(days),
        skipped_days=tuple(skipped),
        warnings=tuple(warnings),
    )
