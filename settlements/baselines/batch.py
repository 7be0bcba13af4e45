"""Many sites' baselines and performances for one event, computed together.

:func:`compute_many` gives, for every site, exactly what :func:`compute_baseline` gives
(the same days, values, adjustment, warnings and :class:`InsufficientData`), but does the
work for all sites at once:

1. The readings are held as flat arrays sorted by site then time (:class:`ReadingsBatch`).
   From a long DataFrame already ordered by site and time with integer site keys this
   needs no hashing and no sort.
2. Per event (and interval length) one layout is built and cached: the event and
   adjustment-window instants, the candidate days, and for every (local day, wall-clock
   slot) cell the method reads, which instants of the interval grid fall in it (one, two
   on a fall-back day, none in a spring-forward gap). The time zone arithmetic is done
   once per event, not per site.
3. Each site's readings in the days the method can read are found with a binary search
   and laid on the grid as one row of a site x instant array (a plain copy when the site
   has no gap there). Cell values, completeness, the event-window mean kW of every
   candidate day, eligibility, the pool, the low-usage rule, the ranking (one stable
   ``argsort`` per site row) and the averaged unadjusted baseline are then array
   operations over all sites.
4. Only the adjustment (the engine's own function) and the building of each result run
   per site.

Sites the fast path cannot take exactly (a reading off the event's interval grid in the
days used, duplicate instants, an interval length that cannot be inferred, fewer than two
readings) go through :func:`compute_baseline` one by one, so results are the same either
way.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from settlements.baselines._intervals import (
    NS_PER_DAY,
    NS_PER_MINUTE,
    expected_cells,
    interval_starts,
    nan_mean,
    timestamp_ns,
    utc_index,
    values_at,
    wall_ns,
)
from settlements.baselines.engine import (
    _EPOCH_WEEKDAY,
    BaselineResult,
    _adjust,
    _adjustment_window,
    _date,
    _day_numbers,
    _day_type_mask,
    compute_baseline,
)
from settlements.baselines.errors import InsufficientData
from settlements.baselines.gaming import (
    _MAD_SCALE,
    GamingFlag,
    _hours,
    _inflated_day_flag,
    _pre_event_drop_flag,
    gaming_flags,
)
from settlements.baselines.performance import PerformanceResult, measure_performance
from settlements.baselines.spec import BaselineSpec

_NO_STEP = np.iinfo(np.int64).max


@dataclasses.dataclass(frozen=True, eq=False)
class ReadingsBatch:
    """Many sites' readings as flat arrays, sorted by site then interval start.

    - ``keys``: the site keys, in input order; site ``i`` owns rows
      ``offsets[i]:offsets[i + 1]``.
    - ``utc``: interval starts, int64 ns since the Unix epoch (UTC).
    - ``kwh``: energy per interval, kWh (float64, NaN for a missing value).

    Build one with :meth:`from_series` or :meth:`from_frame` and pass it to
    :func:`compute_many` and :func:`measure_many` so the readings are prepared once.
    """

    keys: tuple[Hashable, ...]
    offsets: np.ndarray
    utc: np.ndarray
    kwh: np.ndarray

    @classmethod
    def from_series(cls, readings_by_site: Mapping[Hashable, pd.Series]) -> ReadingsBatch:
        """From a mapping of site key to kWh Series on a tz-aware DatetimeIndex.

        Raises ``TypeError`` (naming the site) for a value that is not such a Series.
        """
        keys = tuple(readings_by_site)
        utc_parts: list[np.ndarray] = []
        kwh_parts: list[np.ndarray] = []
        for key in keys:
            readings = readings_by_site[key]
            if not isinstance(readings, pd.Series):
                raise TypeError(f"site {key!r}: readings must be a pandas Series of kWh")
            index = readings.index
            if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
                raise TypeError(
                    f"site {key!r}: readings must be indexed by a tz-aware DatetimeIndex"
                )
            utc = index.as_unit("ns").asi8
            kwh = readings.to_numpy(dtype=np.float64, na_value=np.nan)
            if utc.size > 1 and (utc[1:] < utc[:-1]).any():
                order = np.argsort(utc, kind="stable")
                utc, kwh = utc[order], kwh[order]
            utc_parts.append(utc)
            kwh_parts.append(kwh)
        sizes = np.fromiter((part.size for part in utc_parts), dtype=np.int64, count=len(keys))
        return cls(
            keys=keys,
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            utc=np.concatenate(utc_parts) if utc_parts else np.empty(0, dtype=np.int64),
            kwh=np.concatenate(kwh_parts) if kwh_parts else np.empty(0),
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        site: str = "site",
        time: str = "interval_start",
        energy: str = "kwh",
    ) -> ReadingsBatch:
        """From a long DataFrame with one row per (site, interval start, kWh).

        ``time`` must be a tz-aware datetime column. Sites keep their order of first
        appearance. Fastest when the frame is already ordered by site then time (as an
        ``ORDER BY site, interval_start`` query returns it) with numeric site keys.
        Raises ``ValueError`` for a missing column and ``TypeError`` for naive times.
        """
        missing = [name for name in (site, time, energy) if name not in frame.columns]
        if missing:
            raise ValueError(f"readings frame lacks column(s): {', '.join(missing)}")
        times = frame[time]
        if not isinstance(times.dtype, pd.DatetimeTZDtype):
            raise TypeError(f"column {time!r} must hold tz-aware interval starts")
        utc = np.ascontiguousarray(times.array.as_unit("ns").asi8)
        kwh = frame[energy].to_numpy(dtype=np.float64, na_value=np.nan)
        grouped = _grouped_runs(frame[site], utc)
        if grouped is not None:
            keys, offsets = grouped
            return cls(keys=keys, offsets=offsets, utc=utc, kwh=kwh)
        codes, uniques = pd.factorize(frame[site], sort=False)
        order = np.lexsort((utc, codes))
        counts = np.bincount(codes, minlength=len(uniques))
        return cls(
            keys=tuple(uniques.tolist()),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            utc=utc[order],
            kwh=kwh[order],
        )

    def __len__(self) -> int:
        return len(self.keys)

    def series(self, key: Hashable) -> pd.Series:
        """One site's readings as a kWh Series on a UTC DatetimeIndex (empty if unknown)."""
        at = self._positions().get(key)
        if at is None:
            utc, kwh = np.empty(0, dtype=np.int64), np.empty(0)
        else:
            rows = slice(self.offsets[at], self.offsets[at + 1])
            utc, kwh = self.utc[rows], self.kwh[rows]
        return pd.Series(kwh, index=utc_index(utc, "UTC"), name="kwh")

    def _positions(self) -> dict[Hashable, int]:
        return self._cached("positions", lambda: {key: at for at, key in enumerate(self.keys)})

    def _smallest_steps(self) -> np.ndarray:
        """Per site, the smallest step between consecutive readings, ns (0: duplicates;
        ``_NO_STEP`` with fewer than two readings)."""
        return self._cached("smallest_steps", self._compute_smallest_steps)

    def _compute_smallest_steps(self) -> np.ndarray:
        smallest = np.full(len(self.keys), _NO_STEP, dtype=np.int64)
        if self.utc.size > 1:
            steps = np.diff(self.utc)
            starts = self.offsets[1:-1]
            steps[starts[(starts > 0) & (starts < self.utc.size)] - 1] = _NO_STEP
            many = np.flatnonzero(np.diff(self.offsets) >= 2)
            if many.size:
                smallest[many] = np.minimum.reduceat(steps, self.offsets[many])
        return smallest

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        """Memoised per-batch lookups (the batch is immutable once built)."""
        cache = self.__dict__.setdefault("_cache", {})
        if name not in cache:
            cache[name] = build()
        return cache[name]


def _grouped_runs(
    sites: pd.Series, utc: np.ndarray
) -> tuple[tuple[Hashable, ...], np.ndarray] | None:
    """(keys, offsets) when numeric ``sites`` come in contiguous runs ordered by time
    within each run; None otherwise (the caller then factorizes and sorts)."""
    if not (pd.api.types.is_integer_dtype(sites.dtype) or pd.api.types.is_float_dtype(sites.dtype)):
        return None
    values = sites.to_numpy()
    if values.size == 0:
        return (), np.zeros(1, dtype=np.int64)
    if pd.isna(values).any():
        return None
    change = values[1:] != values[:-1]
    if not (change | (utc[1:] >= utc[:-1])).all():
        return None
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    keys = values[starts]
    if np.unique(keys).size != keys.size:
        return None
    offsets = np.concatenate([starts, [values.size]]).astype(np.int64)
    return tuple(keys.tolist()), offsets


Readings = Mapping[Hashable, pd.Series] | pd.DataFrame | ReadingsBatch


def compute_many(
    readings: Readings,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
    spec: BaselineSpec,
    *,
    tz: str,
    excluded_dates_by_site: Mapping[Hashable, Iterable[datetime.date]] | None = None,
    holidays: Iterable[datetime.date] = (),
    interval_minutes: int | None = None,
) -> dict[Hashable, BaselineResult | InsufficientData]:
    """:func:`compute_baseline` for every site, for one event, in one vectorized pass.

    ``readings``: a mapping of site key to kWh Series (tz-aware index), a long DataFrame
    with columns ``site``, ``interval_start`` (tz-aware) and ``kwh``, or a
    :class:`ReadingsBatch`. ``excluded_dates_by_site`` maps a site key to its excluded
    local dates (sites not in it have none); ``holidays`` apply to every site; the other
    arguments are those of :func:`compute_baseline`.

    Returns a dict in the sites' order: the :class:`BaselineResult`, or the
    :class:`InsufficientData` that :func:`compute_baseline` would have raised for that
    site. Any other error a site's readings cause (``ValueError``/``TypeError``, as from
    :func:`compute_baseline`) is raised, with a note naming the site.
    """
    if not isinstance(spec, BaselineSpec):
        raise TypeError("spec must be a BaselineSpec (see PRESETS and spec_from_preset)")
    batch = _as_batch(readings)
    start_ns = timestamp_ns(event_start, "event_start")
    end_ns = timestamp_ns(event_end, "event_end")
    if end_ns <= start_ns:
        raise ValueError("event_end must be after event_start")
    excluded = dict(excluded_dates_by_site or {})
    holiday_list = tuple(holidays)
    minutes = _site_minutes(batch, interval_minutes, start_ns)

    results: dict[Hashable, BaselineResult | InsufficientData] = {}
    slow: list[int] = np.flatnonzero(minutes == 0).tolist()
    for group_minutes in np.unique(minutes[minutes > 0]):
        sites = np.flatnonzero(minutes == group_minutes)
        group_results, off_grid = _compute_group(
            batch,
            sites,
            int(group_minutes),
            event_start,
            end_ns,
            spec,
            tz,
            excluded,
            holiday_list,
        )
        results.update(group_results)
        slow.extend(off_grid)
    for at in slow:
        key = batch.keys[at]
        try:
            results[key] = compute_baseline(
                batch.series(key),
                event_start,
                event_end,
                spec,
                tz=tz,
                excluded_dates=excluded.get(key, ()),
                holidays=holiday_list,
                interval_minutes=interval_minutes,
            )
        except InsufficientData as error:
            results[key] = error
        except (TypeError, ValueError) as error:
            error.add_note(f"site {key!r}")
            raise
    return {key: results[key] for key in batch.keys}


def measure_many(
    baselines: Mapping[Hashable, BaselineResult | InsufficientData],
    readings: Readings,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
) -> dict[Hashable, PerformanceResult | InsufficientData]:
    """:func:`measure_performance` for every site in ``baselines`` (as from compute_many).

    ``readings`` is as for :func:`compute_many` (pass the same :class:`ReadingsBatch` to
    prepare the readings once). An :class:`InsufficientData` in ``baselines`` is passed
    through unchanged. Returns a dict in ``baselines``' order. Errors that
    :func:`measure_performance` raises (a baseline for another event window, duplicate
    readings) are raised with a note naming the site.
    """
    batch = _as_batch(readings)
    start_ns = timestamp_ns(event_start, "event_start")
    end_ns = timestamp_ns(event_end, "event_end")
    positions = batch._positions()
    smallest = batch._smallest_steps()
    utc, kwh, offsets = batch.utc, batch.kwh, batch.offsets
    bounds = np.array([start_ns, end_ns], dtype=np.int64)
    on_event_grid: dict[tuple[int, int], tuple[pd.DatetimeIndex, bool]] = {}
    out: dict[Hashable, PerformanceResult | InsufficientData] = {}
    for key, baseline in baselines.items():
        if isinstance(baseline, InsufficientData):
            out[key] = baseline
            continue
        minutes = baseline.interval_minutes
        step = minutes * NS_PER_MINUTE
        at = positions.get(key)
        index = baseline.baseline_kw.index
        # compute_many gives every site the same index object: check it once.
        checked = (id(index), step)
        if checked not in on_event_grid:
            event_utc = index.as_unit("ns").asi8
            on_event_grid[checked] = (
                index,
                (end_ns - start_ns) % step == 0
                and np.array_equal(event_utc, np.arange(start_ns, end_ns, step, dtype=np.int64)),
            )
        fast = (
            on_event_grid[checked][1]
            and at is not None
            and offsets[at + 1] > offsets[at]
            and smallest[at] > 0
            and (int(utc[offsets[at]]) - start_ns) % step == 0
        )
        if not fast:
            try:
                out[key] = measure_performance(baseline, batch.series(key), event_start, event_end)
            except (TypeError, ValueError) as error:
                error.add_note(f"site {key!r}")
                raise
            continue
        first, stop = offsets[at], offsets[at + 1]
        lo, hi = first + np.searchsorted(utc[first:stop], bounds)
        if hi - lo == len(index) and smallest[at] >= step:
            actual_kw = kwh[lo:hi] * (60.0 / minutes)
        else:
            event_utc = np.arange(start_ns, end_ns, step, dtype=np.int64)
            actual_kw = values_at(utc[lo:hi], kwh[lo:hi], event_utc) * (60.0 / minutes)
        out[key] = _performance(baseline, actual_kw, minutes)
    return out


def gaming_flags_many(
    baselines: Mapping[Hashable, BaselineResult | InsufficientData],
    readings: Readings,
    *,
    tz: str,
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
    excluded_dates_by_site: Mapping[Hashable, Iterable[datetime.date]] | None = None,
    holidays: Iterable[datetime.date] = (),
    robust_z_threshold: float = 3.5,
    min_excess_fraction: float = 0.10,
    min_reference_days: int = 5,
    pre_event_drop_fraction: float = 0.3,
) -> dict[Hashable, list[GamingFlag]]:
    """:func:`gaming_flags` for every site in ``baselines`` (as from compute_many).

    ``readings`` is as for :func:`compute_many` (pass the same :class:`ReadingsBatch`);
    ``excluded_dates_by_site`` and ``holidays`` as there; the thresholds are those of
    :func:`gaming_flags`. Returns, in ``baselines``' order, each site's list of flags
    (empty when nothing is unusual), exactly as :func:`gaming_flags` gives it; sites whose
    entry is an :class:`InsufficientData` are left out. Raises what :func:`gaming_flags`
    raises (a threshold out of range; for a site, a baseline computed for another event
    window), a site's error with a note naming it.

    The day tables are those of :func:`compute_many`, for all sites at once; the reference
    days' median and MAD are computed per site and class of day with one sort. Only the
    flags found (and a site whose reference days have no spread) are built per site.
    """
    if robust_z_threshold <= 0 or min_excess_fraction < 0 or min_reference_days < 1:
        raise ValueError("robust_z_threshold and min_reference_days must be positive")
    if not 0 < pre_event_drop_fraction < 1:
        raise ValueError(
            f"pre_event_drop_fraction must be between 0 and 1, got {pre_event_drop_fraction}"
        )
    thresholds = _Thresholds(
        robust_z_threshold, min_excess_fraction, min_reference_days, pre_event_drop_fraction
    )
    batch = _as_batch(readings)
    start_ns = timestamp_ns(event_start, "event_start")
    end_ns = timestamp_ns(event_end, "event_end")
    excluded = dict(excluded_dates_by_site or {})
    holiday_list = tuple(holidays)
    positions = batch._positions()
    smallest = batch._smallest_steps()
    utc, offsets = batch.utc, batch.offsets
    on_event_grid: dict[tuple[int, int], bool] = {}
    groups: dict[tuple[BaselineSpec, int], list[tuple[Hashable, int]]] = {}
    slow: list[Hashable] = []
    for key, baseline in baselines.items():
        if not isinstance(baseline, BaselineResult):
            continue
        step = baseline.interval_minutes * NS_PER_MINUTE
        index = baseline.baseline_kw.index
        checked = (id(index), step)
        if checked not in on_event_grid:
            on_event_grid[checked] = (end_ns - start_ns) % step == 0 and np.array_equal(
                index.as_unit("ns").asi8, np.arange(start_ns, end_ns, step, dtype=np.int64)
            )
        at = positions.get(key)
        # The same conditions as compute_many's: readings anchored on the event's grid
        # (gaming_flags anchors on the first reading), no duplicates.
        if (
            on_event_grid[checked]
            and at is not None
            and offsets[at + 1] > offsets[at]
            and smallest[at] > 0
            and (int(utc[offsets[at]]) - start_ns) % step == 0
        ):
            groups.setdefault((baseline.spec, baseline.interval_minutes), []).append((key, at))
        else:
            slow.append(key)
    flags: dict[Hashable, list[GamingFlag]] = {}
    for (spec, minutes), members in groups.items():
        found, left = _gaming_group(
            batch, baselines, members, spec, minutes, start_ns, end_ns, tz,
            excluded, holiday_list, thresholds,
        )  # fmt: skip
        flags.update(found)
        slow.extend(left)
    for key in slow:
        try:
            flags[key] = gaming_flags(
                batch.series(key),
                baselines[key],
                tz=tz,
                event_start=event_start,
                event_end=event_end,
                excluded_dates=excluded.get(key, ()),
                holidays=holiday_list,
                robust_z_threshold=robust_z_threshold,
                min_excess_fraction=min_excess_fraction,
                min_reference_days=min_reference_days,
                pre_event_drop_fraction=pre_event_drop_fraction,
            )
        except (TypeError, ValueError) as error:
            error.add_note(f"site {key!r}")
            raise
    return {key: flags[key] for key in baselines if key in flags}


@dataclasses.dataclass(frozen=True)
class _Thresholds:
    robust_z: float
    min_excess_fraction: float
    min_reference_days: int
    pre_event_drop_fraction: float


def _gaming_group(
    batch: ReadingsBatch,
    baselines: Mapping[Hashable, BaselineResult | InsufficientData],
    members: list[tuple[Hashable, int]],
    spec: BaselineSpec,
    minutes: int,
    start_ns: int,
    end_ns: int,
    tz: str,
    excluded: Mapping[Hashable, Iterable[datetime.date]],
    holidays: tuple[datetime.date, ...],
    thresholds: _Thresholds,
) -> tuple[dict[Hashable, list[GamingFlag]], list[Hashable]]:
    """gaming_flags for ``members`` (key, batch position) of one method and interval
    length; also returns the keys left to gaming_flags itself (readings off the grid, or
    selected days that are not candidates in compute_baseline's order)."""
    step = minutes * NS_PER_MINUTE
    layout = _layout(start_ns, end_ns, tz, step, spec)
    lookback = spec.lookback_days
    left: list[Hashable] = []
    kept: list[tuple[Hashable, int, np.ndarray]] = []
    for key, at in members:
        days = _day_numbers(baselines[key].selected_days)
        position = layout.event_day - 1 - days
        if position.size and (
            position.min() < 0 or position.max() >= lookback or (np.diff(position) <= 0).any()
        ):
            left.append(key)
        else:
            kept.append((key, at, position))
    kwh_grid, off_grid = _on_grid_rows(
        batch, np.array([at for _, at, _ in kept], dtype=np.int64), layout, step
    )
    if off_grid:
        off = set(off_grid)
        on = np.array([at not in off for _, at, _ in kept], dtype=bool)
        left.extend(key for key, at, _ in kept if at in off)
        kept = [member for member in kept if member[1] not in off]
        kwh_grid = kwh_grid[on]
    n_sites = len(kept)
    if not n_sites:
        return {}, left
    kw_per_kwh = 60.0 / minutes
    table, cell_ok = _cell_tables(kwh_grid, layout, kw_per_kwh)
    n_event = layout.event_utc.size
    # Contiguous per site, so that each day's mean adds its cells in the order (and with
    # the pairwise summation) of gaming_flags' own per-site table: the same figures to the
    # last bit.
    day_mean_kw = nan_mean(np.ascontiguousarray(table[:, layout.event_cells_at]), axis=2)
    reference = cell_ok[:, layout.event_cells_at].all(axis=2)
    for row, (key, _, _) in enumerate(kept):
        dates = excluded.get(key)
        if dates:
            reference[row] &= ~np.isin(layout.cand_day, _day_numbers(dates))
    cand_day = layout.cand_day
    business = ((cand_day + _EPOCH_WEEKDAY) % 7 < 5) & ~np.isin(cand_day, _day_numbers(holidays))
    selected = np.zeros((n_sites, lookback), dtype=bool)
    for row, (_, _, position) in enumerate(kept):
        selected[row, position] = True

    # Per site and class of day (business or not): the reference days' median and MAD,
    # then each selected day's robust z, with _robust_z's arithmetic. A day that may be
    # flagged, or whose reference has no spread (another formula), is decided by
    # gaming's own function, which also words the flag.
    decide = np.zeros((n_sites, lookback), dtype=bool)
    for day_class in (True, False):
        in_class = business == day_class
        if not (selected & in_class[None, :]).any():
            continue
        values = np.where(reference & in_class[None, :], day_mean_kw, np.nan)
        median_kw, count = _row_medians(values)
        mad_kw, _ = _row_medians(np.abs(values - median_kw[:, None]))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = _MAD_SCALE * (day_mean_kw - median_kw[:, None]) / mad_kw[:, None]
        candidate = (
            selected
            & in_class[None, :]
            & (count >= thresholds.min_reference_days)[:, None]
            & ~np.isnan(day_mean_kw)
        )
        spread = (mad_kw > 0)[:, None]
        # A small margin: the exact decision is gaming's, never this screen's.
        may_flag = (z > thresholds.robust_z - 1e-6) & (
            day_mean_kw > (1 + thresholds.min_excess_fraction) * median_kw[:, None] * (1 - 1e-9)
        )
        decide |= candidate & (~spread | may_flag)

    event_hours = _hours(int(layout.event_utc[0]), int(layout.event_utc[-1]) + step, tz)
    window = layout.window_utc
    if window.size:
        window_hours = _hours(int(window[0]), int(window[-1]) + step, tz)
        values = np.ascontiguousarray(table[:, layout.instant_cells_at[:, n_event:]])
        present = selected[:, :, None] & ~np.isnan(values)
        total = np.where(present, values, 0.0).sum(axis=1)
        used = present.sum(axis=1)
        window_unadjusted = np.divide(total, used, out=np.full(total.shape, np.nan), where=used > 0)
        window_actual = kwh_grid[:, layout.instant_at[n_event:]] * kw_per_kwh

    found: dict[Hashable, list[GamingFlag]] = {}
    for row, (key, _, position) in enumerate(kept):
        baseline = baselines[key]
        site_flags: list[GamingFlag] = []
        for date, at in zip(baseline.selected_days, position.tolist(), strict=True):
            if not decide[row, at]:
                continue
            like = reference[row] & (business == business[at])
            flag = _inflated_day_flag(
                date,
                float(day_mean_kw[row, at]),
                day_mean_kw[row][like],
                event_hours,
                lookback,
                thresholds.robust_z,
                thresholds.min_excess_fraction,
                thresholds.min_reference_days,
            )
            if flag is not None:
                site_flags.append(flag)
        if window.size:
            flag = _pre_event_drop_flag(
                baseline,
                window_actual[row],
                window_unadjusted[row],
                window_hours,
                thresholds.pre_event_drop_fraction,
            )
            if flag is not None:
                site_flags.append(flag)
        found[key] = site_flags
    return found, left


def _row_medians(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the median of the non-NaN values as ``np.median`` gives it (NaN for none),
    and how many there are."""
    count = (~np.isnan(values)).sum(axis=1)
    ordered = np.sort(values, axis=1)  # NaN last
    rows = np.arange(values.shape[0])
    lower = ordered[rows, np.maximum((count - 1) // 2, 0)]
    upper = ordered[rows, count // 2]
    median = np.where(count % 2 == 1, lower, (lower + upper) / 2)
    return np.where(count > 0, median, np.nan), count


def _as_batch(readings: Readings) -> ReadingsBatch:
    if isinstance(readings, ReadingsBatch):
        return readings
    if isinstance(readings, pd.DataFrame):
        return ReadingsBatch.from_frame(readings)
    if isinstance(readings, Mapping):
        return ReadingsBatch.from_series(readings)
    raise TypeError(
        "readings must be a mapping of site to Series, a long DataFrame "
        "[site, interval_start, kwh] or a ReadingsBatch"
    )


def _site_minutes(batch: ReadingsBatch, interval_minutes: int | None, start_ns: int) -> np.ndarray:
    """Each site's interval length in minutes as compute_baseline would take it, or 0
    where the fast path cannot take the site: no length to infer, duplicate instants, a
    length that does not divide an hour, or a first reading (the grid anchor) off the
    event start's grid."""
    smallest = batch._smallest_steps()
    sizes = np.diff(batch.offsets)
    if interval_minutes is not None:
        if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, int):
            raise TypeError("interval_minutes must be an int")
        if interval_minutes <= 0 or 60 % interval_minutes:
            raise ValueError(
                f"interval length must divide an hour (15 or 60 minutes); got {interval_minutes}"
            )
        minutes = np.full(len(batch), interval_minutes, dtype=np.int64)
        ok = (smallest > 0) & (sizes >= 2)
    else:
        whole = (smallest % NS_PER_MINUTE == 0) & (smallest != _NO_STEP) & (smallest > 0)
        minutes = np.where(whole, smallest // NS_PER_MINUTE, 0)
        ok = whole & (60 % np.maximum(minutes, 1) == 0) & (minutes <= 60)
    first = batch.utc[np.minimum(batch.offsets[:-1], max(batch.utc.size - 1, 0))]
    if batch.utc.size:
        step = np.maximum(minutes, 1) * NS_PER_MINUTE
        ok &= (first - start_ns) % step == 0
    return np.where(ok, minutes, 0)


@dataclasses.dataclass(frozen=True, eq=False)
class _Layout:
    """Everything about one event that does not depend on a site's readings.

    Cells are (local day, used wall-clock slot) pairs numbered day x width + slot
    position; grid positions count intervals from ``grid_first``.
    """

    event_utc: np.ndarray
    window_utc: np.ndarray
    event_day: int
    cand_day: np.ndarray
    cand_dates: tuple[datetime.date, ...]
    low: int
    high: int
    grid_first: int
    grid_size: int
    single_cells: np.ndarray  # cells holding one instant ...
    single_at: np.ndarray  # ... and its grid position
    double_cells: np.ndarray  # fall-back cells holding two instants ...
    double_at: np.ndarray  # ... and their grid positions, (n, 2), earlier first
    n_cells: int
    expected: np.ndarray  # readings each cell must have: 1, 2, or 0 in a DST gap
    instant_at: np.ndarray  # grid position of each event + window instant
    used_cells_at: np.ndarray  # (candidate, used cell) -> cell
    event_cells_at: np.ndarray  # (candidate, event cell) -> cell
    instant_cells_at: np.ndarray  # (candidate, event + window instant) -> cell


@functools.lru_cache(maxsize=64)
def _layout(start_ns: int, end_ns: int, tz: str, step: int, spec: BaselineSpec) -> _Layout:
    """The per-event tables, built exactly as compute_baseline builds them per site."""
    slots = NS_PER_DAY // step
    event_utc = interval_starts(
        pd.Timestamp(start_ns, tz="UTC"), pd.Timestamp(end_ns, tz="UTC"), start_ns, step
    )
    window_utc = _adjustment_window(spec, start_ns, start_ns, step)
    used_utc = np.concatenate([event_utc, window_utc])
    used_wall = wall_ns(used_utc, tz)
    event_day = int(used_wall[0] // NS_PER_DAY)
    used_rel = used_wall // NS_PER_DAY - event_day
    used_slot = (used_wall % NS_PER_DAY) // step
    lookback = spec.lookback_days
    min_rel, max_rel = int(min(used_rel.min(), 0)), int(used_rel.max())
    first_day = event_day - lookback + min_rel
    n_days = lookback + max_rel - min_rel
    cand_day = event_day - np.arange(1, lookback + 1, dtype=np.int64)
    cand_row = cand_day - first_day

    used_slots = np.unique(used_slot)
    slot_pos = np.full(slots, -1, dtype=np.int64)
    slot_pos[used_slots] = np.arange(used_slots.size)
    width = used_slots.size

    # compute_baseline reads every reading in [low, high) (rule 1's local days).
    low = first_day * NS_PER_DAY - NS_PER_DAY
    high = (first_day + n_days + 1) * NS_PER_DAY
    grid_first = low + (-(low - start_ns)) % step
    grid = np.arange(grid_first, high, step, dtype=np.int64)
    wall = wall_ns(grid, tz)
    row = wall // NS_PER_DAY - first_day
    pos = slot_pos[(wall % NS_PER_DAY) // step]
    inside = np.flatnonzero((row >= 0) & (row < n_days) & (pos >= 0))
    cell = row[inside] * width + pos[inside]
    cells, first_at, occurrences = np.unique(cell, return_index=True, return_counts=True)
    second = np.ones(cell.size, dtype=bool)
    second[first_at] = False
    single = occurrences == 1
    double_cells = cells[~single]
    double_at = np.column_stack(
        [inside[first_at[~single]], np.empty(double_cells.size, dtype=np.int64)]
    )
    if double_cells.size:
        later_cell, later_at = cell[second], inside[second]
        double_at[:, 1] = later_at[np.searchsorted(later_cell, double_cells)]
    full_expected = expected_cells(grid_first, high, step, tz, first_day, n_days)

    def cells_at(rel: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return (cand_row[:, None] + rel[None, :]) * width + slot_pos[slot][None, :]

    n_event = event_utc.size
    used_cells = np.unique(used_rel * slots + used_slot)
    event_cells = np.unique(used_rel[:n_event] * slots + used_slot[:n_event])
    layout = _Layout(
        event_utc=event_utc,
        window_utc=window_utc,
        event_day=event_day,
        cand_day=cand_day,
        cand_dates=tuple(_date(day) for day in cand_day),
        low=low,
        high=high,
        grid_first=grid_first,
        grid_size=grid.size,
        single_cells=cells[single],
        single_at=inside[first_at[single]],
        double_cells=double_cells,
        double_at=double_at,
        n_cells=n_days * width,
        expected=full_expected.reshape(n_days, slots)[:, used_slots].ravel(),
        instant_at=(used_utc - grid_first) // step,
        used_cells_at=cells_at(*np.divmod(used_cells, slots)),
        event_cells_at=cells_at(*np.divmod(event_cells, slots)),
        instant_cells_at=cells_at(used_rel, used_slot),
    )
    for value in vars(layout).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return layout


def _on_grid_rows(
    batch: ReadingsBatch, sites: np.ndarray, layout: _Layout, step: int
) -> tuple[np.ndarray, list[int]]:
    """Site x grid-position kWh (NaN where there is no reading) over [low, high), and
    the sites with a reading off the grid there (left to compute_baseline)."""
    utc, kwh, offsets = batch.utc, batch.kwh, batch.offsets
    smallest = batch._smallest_steps()
    size = layout.grid_size
    grid_last = layout.grid_first + (size - 1) * step
    bounds = np.array([layout.low, layout.high], dtype=np.int64)
    on_grid = np.full((sites.size, size), np.nan)
    off_grid: list[int] = []
    for row, at in enumerate(sites.tolist()):
        first, stop = offsets[at], offsets[at + 1]
        lo, hi = first + np.searchsorted(utc[first:stop], bounds)
        if (
            hi - lo == size
            and smallest[at] >= step
            and utc[lo] == layout.grid_first
            and utc[hi - 1] == grid_last
        ):
            on_grid[row] = kwh[lo:hi]  # every grid instant, in order: a plain copy
            continue
        position, remainder = np.divmod(utc[lo:hi] - layout.grid_first, step)
        if remainder.any():
            off_grid.append(at)
            continue
        on_grid[row, position] = kwh[lo:hi]
    return on_grid, off_grid


def _cell_tables(
    kwh_grid: np.ndarray, layout: _Layout, kw_per_kwh: float
) -> tuple[np.ndarray, np.ndarray]:
    """Site x cell mean kW (NaN where a cell has no reading) and, per cell, whether all its
    readings are there (a fall-back cell needs both; a spring-forward gap needs none).

    Cell means as compute_baseline's bincount makes them: readings of a cell summed in
    time order from 0.0, divided by how many there are.
    """
    n_sites = kwh_grid.shape[0]
    table = np.full((n_sites, layout.n_cells), np.nan)
    count = np.zeros((n_sites, layout.n_cells), dtype=np.int64)
    single = kwh_grid[:, layout.single_at] * kw_per_kwh
    table[:, layout.single_cells] = single
    count[:, layout.single_cells] = ~np.isnan(single)
    if layout.double_cells.size:
        earlier = kwh_grid[:, layout.double_at[:, 0]] * kw_per_kwh
        later = kwh_grid[:, layout.double_at[:, 1]] * kw_per_kwh
        present = (~np.isnan(earlier)).astype(np.int64) + ~np.isnan(later)
        total = np.nan_to_num(earlier, nan=0.0) + np.nan_to_num(later, nan=0.0)
        table[:, layout.double_cells] = np.divide(
            total, present, out=np.full(total.shape, np.nan), where=present > 0
        )
        count[:, layout.double_cells] = present
    return table, count >= layout.expected


def _compute_group(
    batch: ReadingsBatch,
    sites: np.ndarray,
    minutes: int,
    event_start: pd.Timestamp,
    end_ns: int,
    spec: BaselineSpec,
    tz: str,
    excluded: Mapping[Hashable, Iterable[datetime.date]],
    holidays: tuple[datetime.date, ...],
) -> tuple[dict[Hashable, BaselineResult | InsufficientData], list[int]]:
    """compute_baseline for ``sites`` (of one interval length, anchored on the event's
    grid); also returns the sites found to have readings off the grid."""
    step = minutes * NS_PER_MINUTE
    layout = _layout(int(pd.Timestamp(event_start).value), end_ns, tz, step, spec)
    kwh_grid, off_grid = _on_grid_rows(batch, sites, layout, step)
    if off_grid:
        keep = ~np.isin(sites, off_grid)
        sites, kwh_grid = sites[keep], kwh_grid[keep]
    n_event = layout.event_utc.size
    kw_per_kwh = 60.0 / minutes
    table, cell_ok = _cell_tables(kwh_grid, layout, kw_per_kwh)
    actual = kwh_grid[:, layout.instant_at] * kw_per_kwh

    complete = cell_ok[:, layout.used_cells_at].all(axis=2)
    day_mean_kw = nan_mean(table[:, layout.event_cells_at], axis=2)
    like = _day_type_mask(spec, layout.cand_day, layout.event_day, _day_numbers(holidays))
    eligible = like[None, :] & complete
    if excluded:
        for row, at in enumerate(sites.tolist()):
            dates = excluded.get(batch.keys[at])
            if dates:
                eligible[row] &= ~np.isin(layout.cand_day, _day_numbers(dates))

    first_pool = eligible & (np.cumsum(eligible, axis=1) <= spec.pool_days)
    pool, low_usage = _low_usage_pool(spec, eligible, first_pool, day_mean_kw, layout.cand_dates)
    selected = _select_many(spec, pool, day_mean_kw)

    values = table[:, layout.instant_cells_at]
    present = selected[:, :, None] & ~np.isnan(values)
    total = np.where(present, values, 0.0).sum(axis=1)
    used = present.sum(axis=1)
    unadjusted = np.divide(total, used, out=np.full(total.shape, np.nan), where=used > 0)

    index = utc_index(layout.event_utc, pd.Timestamp(event_start).tz)
    pool_size = pool.sum(axis=1)
    results: dict[Hashable, BaselineResult | InsufficientData] = {}
    for row, at in enumerate(sites.tolist()):
        key = batch.keys[at]
        found = int(pool_size[row])
        if found < spec.min_days:
            results[key] = InsufficientData(
                f"found {found} eligible baseline day(s) within {spec.lookback_days} days "
                f"before {_date(layout.event_day)}; the method needs at least {spec.min_days}",
                found=found,
                required=spec.min_days,
            )
            continue
        warnings: list[str] = []
        if row in low_usage:
            warnings.append(low_usage[row])
        if found < spec.pool_days:
            warnings.append(
                f"only {found} eligible day(s) found of the {spec.pool_days} wanted within "
                f"{spec.lookback_days} days; the baseline uses the days found"
            )
        event_unadjusted = unadjusted[row, :n_event]
        missing = int(np.isnan(event_unadjusted).sum())
        if missing:
            warnings.append(f"{missing} event interval(s) have no baseline value")
        adjustment, baseline = _adjust(
            spec, event_unadjusted, unadjusted[row, n_event:], actual[row, n_event:], warnings
        )
        results[key] = BaselineResult(
            baseline_kw=pd.Series(baseline, index=index, name="baseline_kw"),
            unadjusted_kw=pd.Series(event_unadjusted, index=index, name="unadjusted_kw"),
            adjustment=adjustment,
            candidate_days=tuple(layout.cand_dates[p] for p in np.flatnonzero(pool[row])),
            selected_days=tuple(layout.cand_dates[p] for p in np.flatnonzero(selected[row])),
            warnings=tuple(warnings),
            spec=spec,
            interval_minutes=minutes,
        )
    return results, off_grid


def _low_usage_pool(
    spec: BaselineSpec,
    eligible: np.ndarray,
    first_pool: np.ndarray,
    day_mean_kw: np.ndarray,
    cand_dates: tuple[datetime.date, ...],
) -> tuple[np.ndarray, dict[int, str]]:
    """The pool after the low-usage rule, and each affected site's warning (engine rule 2).

    The seed is the mean of exactly the same values in the same order as in
    compute_baseline (sites are grouped by pool size), so ties at the threshold resolve
    the same way.
    """
    if spec.low_usage_fraction is None:
        return first_pool, {}
    first_size = first_pool.sum(axis=1)
    seed_kw = np.full(eligible.shape[0], np.nan)
    for size in np.unique(first_size[first_size > 0]):
        rows = np.flatnonzero(first_size == size)
        seed_kw[rows] = day_mean_kw[rows][first_pool[rows]].reshape(-1, size).mean(axis=1)
    threshold_kw = spec.low_usage_fraction * seed_kw
    with np.errstate(invalid="ignore"):
        kept = eligible & (day_mean_kw >= threshold_kw[:, None])
    pool = kept & (np.cumsum(kept, axis=1) <= spec.pool_days)
    pool[first_size == 0] = False
    dropped = first_pool & ~pool
    warnings: dict[int, str] = {}
    for at in np.flatnonzero(dropped.any(axis=1)):
        dates = ", ".join(str(cand_dates[p]) for p in np.flatnonzero(dropped[at]))
        warnings[int(at)] = (
            f"low-usage day(s) replaced (event-window mean below {threshold_kw[at]:.3f} kW, "
            f"{spec.low_usage_fraction:g} x seed {seed_kw[at]:.3f} kW): {dates}"
        )
    return pool, warnings


def _select_many(spec: BaselineSpec, pool: np.ndarray, day_mean_kw: np.ndarray) -> np.ndarray:
    """Per site, which pool days are averaged (engine rule 3), as a boolean mask."""
    pool_size = pool.sum(axis=1)
    keep = np.minimum(spec.select_days, pool_size)
    if spec.selection == "all":
        return pool.copy()
    if spec.selection == "most_recent":
        return pool & (np.cumsum(pool, axis=1) <= keep[:, None])
    # Stable sort: ties go to the more recent day, as in compute_baseline. Pool days come
    # first (a NaN mean last among them); days outside the pool (NaN key) after them.
    sort_key = np.where(pool, -day_mean_kw, np.nan)
    sort_key[pool & np.isnan(day_mean_kw)] = np.inf
    order = np.argsort(sort_key, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pool.shape[1])[None, :], axis=1)
    if spec.selection == "highest":
        first = np.zeros_like(keep)
    else:
        first = (pool_size - keep) // 2
    return pool & (rank >= first[:, None]) & (rank < (first + keep)[:, None])


def _performance(
    baseline: BaselineResult, actual_kw: np.ndarray, minutes: int
) -> PerformanceResult:
    """measure_performance's arithmetic on an already gathered actual kW row."""
    index = baseline.baseline_kw.index
    baseline_kw = baseline.baseline_kw.to_numpy(dtype=np.float64)
    reduction_kw = baseline_kw - actual_kw
    reduction = reduction_kw[~np.isnan(reduction_kw)]
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
