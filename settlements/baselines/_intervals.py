"""Vectorized helpers shared by the baseline engine and the measurement functions.

Everything here works on int64 nanoseconds since the Unix epoch: ``utc`` arrays are
absolute instants, ``wall`` arrays are the same instants read on a local wall clock (so a
wall value divided by one day gives the local date number and the remainder the time of
day). Working on integers keeps the hot path free of Python loops over intervals.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

NS_PER_MINUTE = 60 * 1_000_000_000
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR


def prepare_readings(
    readings: pd.Series, interval_minutes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (interval starts as UTC ns, kWh as float64, interval minutes) sorted by time.

    Raises ``TypeError`` for anything that is not a Series on a tz-aware DatetimeIndex and
    ``ValueError`` for duplicate interval starts or an interval length that does not
    divide an hour. The interval length, when not given, is the smallest step between
    consecutive readings.
    """
    if not isinstance(readings, pd.Series):
        raise TypeError("readings must be a pandas Series of kWh per interval")
    index = readings.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise TypeError("readings must be indexed by a tz-aware DatetimeIndex of interval starts")
    utc = index.as_unit("ns").asi8
    kwh = readings.to_numpy(dtype=np.float64, na_value=np.nan)
    steps = np.diff(utc)
    if steps.size and steps.min() <= 0:
        order = np.argsort(utc, kind="stable")
        utc, kwh = utc[order], kwh[order]
        steps = np.diff(utc)
        if steps.min() == 0:
            raise ValueError("readings have duplicate interval starts")
    if interval_minutes is None:
        if steps.size == 0:
            raise ValueError("cannot infer the interval length from fewer than two readings")
        smallest = int(steps.min())
        if smallest % NS_PER_MINUTE:
            raise ValueError("readings are not on a whole-minute interval grid")
        interval_minutes = smallest // NS_PER_MINUTE
    if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, int):
        raise TypeError("interval_minutes must be an int")
    if interval_minutes <= 0 or 60 % interval_minutes:
        raise ValueError(
            f"interval length must divide an hour (15 or 60 minutes); got {interval_minutes}"
        )
    return utc, kwh, interval_minutes


def timestamp_ns(value: pd.Timestamp, name: str) -> int:
    """Return a tz-aware timestamp as UTC ns; raise ``ValueError`` if it is naive."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{name} must be tz-aware")
    return int(stamp.value)


def interval_starts(
    event_start: pd.Timestamp, event_end: pd.Timestamp, grid_anchor: int, step: int
) -> np.ndarray:
    """UTC ns of every interval start in [event_start, event_end), in real time.

    A fall-back event hour therefore has its intervals twice and a spring-forward gap has
    none. Raises ``ValueError`` when the window is empty or off the readings' grid.
    """
    start = timestamp_ns(event_start, "event_start")
    end = timestamp_ns(event_end, "event_end")
    if end <= start:
        raise ValueError("event_end must be after event_start")
    if (start - grid_anchor) % step or (end - grid_anchor) % step:
        raise ValueError("event_start and event_end must fall on the readings' interval grid")
    return np.arange(start, end, step, dtype=np.int64)


def window_starts(start: int, end: int, grid_anchor: int, step: int) -> np.ndarray:
    """UTC ns of the interval starts on the grid that lie in [start, end)."""
    first = start + (-(start - grid_anchor)) % step
    return np.arange(first, end, step, dtype=np.int64)


def wall_ns(utc: np.ndarray, tz: str) -> np.ndarray:
    """Local wall-clock ns for UTC ns instants in the IANA zone ``tz``."""
    index = pd.DatetimeIndex(utc.view("M8[ns]")).tz_localize("UTC").tz_convert(tz)
    return index.tz_localize(None).asi8


@functools.lru_cache(maxsize=256)
def expected_cells(
    first: int, stop: int, step: int, tz: str, first_day: int, n_days: int
) -> np.ndarray:
    """How many times each (local day, wall-clock slot) cell occurs in real time.

    Returns a read-only int64 array of ``n_days * slots_per_day`` counts: 1 for an
    ordinary cell, 2 for a repeated fall-back label, 0 for a label skipped by a
    spring-forward change. Cached because every site read for the same event asks the same
    question.
    """
    grid = np.arange(first, stop, step, dtype=np.int64)
    wall = wall_ns(grid, tz)
    slots_per_day = NS_PER_DAY // step
    row = wall // NS_PER_DAY - first_day
    keep = (row >= 0) & (row < n_days)
    flat = row[keep] * slots_per_day + (wall[keep] % NS_PER_DAY) // step
    counts = np.bincount(flat, minlength=n_days * slots_per_day)
    counts.setflags(write=False)
    return counts


def values_at(utc: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the instants ``wanted`` (sorted ``utc``), NaN where there is no reading."""
    if utc.size == 0:
        return np.full(wanted.shape, np.nan)
    position = np.minimum(np.searchsorted(utc, wanted), utc.size - 1)
    return np.where(utc[position] == wanted, values[position], np.nan)


def utc_index(utc: np.ndarray, tz: object) -> pd.DatetimeIndex:
    """A tz-aware DatetimeIndex named ``interval_start`` for UTC ns instants."""
    index = pd.DatetimeIndex(utc.view("M8[ns]")).tz_localize("UTC")
    if tz is not None:
        index = index.tz_convert(tz)
    return index.rename("interval_start")


def nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN along ``axis``; NaN (without a RuntimeWarning) where all are NaN."""
    present = ~np.isnan(values)
    total = np.where(present, values, 0.0).sum(axis=axis)
    count = present.sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
