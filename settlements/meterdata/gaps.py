"""Gaps in a meter's interval series (reported, never filled)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def find_gaps(
    interval_starts: pd.DatetimeIndex | pd.Series,
    minutes: int,
    *,
    expected_start: pd.Timestamp | None = None,
    expected_end: pd.Timestamp | None = None,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Return the missing stretches of one meter's readings as ``(gap_start, gap_end)`` pairs.

    ``interval_starts`` are tz-aware UTC interval starts of one meter, sorted ascending
    (duplicates are tolerated); ``minutes`` is the interval length. Each gap is half-open:
    ``gap_start`` is the start of the first missing interval and ``gap_end`` the start of the
    next present one, so the gap holds ``(gap_end - gap_start) / minutes`` intervals. Working in
    UTC makes DST days need no special case. ``expected_start`` (inclusive) and
    ``expected_end`` (exclusive) also report missing intervals before the first and after the
    last reading. Returns an empty list when nothing is missing. Raises ``ValueError`` for
    unsorted or naive input.
    """
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    index = pd.DatetimeIndex(interval_starts)
    if index.tz is None:
        raise ValueError("interval_starts must be tz-aware (UTC)")
    index = index.tz_convert("UTC").as_unit("ns")
    step = pd.Timedelta(minutes=minutes)
    gaps: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    if len(index) == 0:
        if expected_start is not None and expected_end is not None:
            if expected_end > expected_start:
                gaps.append((expected_start.tz_convert("UTC"), expected_end.tz_convert("UTC")))
        return gaps
    values = index.asi8
    steps = np.diff(values)
    if (steps < 0).any():
        raise ValueError("interval_starts must be sorted")
    if expected_start is not None and index[0] > expected_start:
        gaps.append((expected_start.tz_convert("UTC"), index[0]))
    for position in np.flatnonzero(steps > step.value).tolist():
        gaps.append((index[position] + step, index[position + 1]))
    if expected_end is not None and index[-1] + step < expected_end:
        gaps.append((index[-1] + step, expected_end.tz_convert("UTC")))
    return gaps
