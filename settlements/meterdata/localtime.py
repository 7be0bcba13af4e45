"""Local wall-clock handling shared by the utility and wide formats.

Wall-clock times are carried as "naive nanoseconds": nanoseconds since 1970-01-01 00:00 of
the local clock, as if the zone were UTC. They become UTC through ``localize_wall``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from settlements.meterdata.base import SCOPE_DAY, Problem

NS_PER_MINUTE = 60 * 1_000_000_000
NS_PER_DAY = 24 * 60 * NS_PER_MINUTE
NAT = np.iinfo(np.int64).min


def localize_wall(naive_ns: np.ndarray, tz: str, dst: np.ndarray | bool) -> np.ndarray:
    """Convert local wall-clock nanoseconds to UTC epoch nanoseconds in zone ``tz``.

    ``dst`` picks the reading of a repeated (fall-back) wall time: True for the first, daylight
    occurrence, False for the second, standard one; it is ignored for other times. Returns an
    int64 array; times that do not exist (the spring-forward gap) come back as ``NAT``.
    """
    if len(naive_ns) == 0:
        return np.array([], dtype=np.int64)
    ambiguous = np.broadcast_to(np.asarray(dst, dtype=bool), naive_ns.shape)
    index = pd.DatetimeIndex(np.asarray(naive_ns, dtype=np.int64).view("datetime64[ns]"))
    local = index.tz_localize(tz, ambiguous=ambiguous, nonexistent="NaT")
    return np.asarray(local.asi8, dtype=np.int64)


def repeated_wall_times(naive_ns: np.ndarray, tz: str) -> np.ndarray:
    """Return a bool array: True where the wall time occurs twice (the fall-back hour)."""
    first = localize_wall(naive_ns, tz, True)
    second = localize_wall(naive_ns, tz, False)
    return (first != NAT) & (first != second)


class DayLengths:
    """Number of minutes in each local day of one zone, cached per date."""

    def __init__(self, tz: str) -> None:
        self._tz = tz
        self._minutes: dict[int, int] = {}

    def minutes(self, day: int) -> int:
        """Return the length in minutes of local day ``day`` (days since 1970-01-01)."""
        cached = self._minutes.get(day)
        if cached is None:
            bounds = pd.DatetimeIndex(
                np.array([day * NS_PER_DAY, (day + 1) * NS_PER_DAY], dtype="datetime64[ns]")
            ).tz_localize(self._tz, ambiguous=np.array([True, True]), nonexistent="shift_forward")
            start, end = bounds.asi8
            cached = int((end - start) // NS_PER_MINUTE)
            self._minutes[day] = cached
        return cached

    def expected_intervals(self, day: int, interval_minutes: int) -> int:
        """Return how many intervals of ``interval_minutes`` the local day ``day`` holds."""
        return self.minutes(day) // interval_minutes


def day_count_problem(
    *, line: int, label: str, day: int, found: int, expected: int, interval_minutes: int
) -> Problem:
    """Build the day-level problem for a local day with the wrong number of intervals."""
    date = pd.Timestamp(day * NS_PER_DAY).date().isoformat()
    return Problem(
        line,
        "day_interval_count",
        f"{label}local day {date} has {found} intervals of {interval_minutes} minutes; "
        f"expected {expected} for that date",
        SCOPE_DAY,
    )


class DayCounter:
    """Counts intervals per local day over a stream of rows sorted by day.

    Rows arrive chunk by chunk; a day is checked once a row of another day follows it (or at
    ``finish``), so a day split over two chunks is counted whole. A day whose rows are not
    contiguous in the file is counted as separate runs, each reported as short.
    """

    def __init__(
        self, tz: str, interval_minutes: Callable[[], int], report: Callable[[Problem], None]
    ) -> None:
        self._lengths = DayLengths(tz)
        self._interval_minutes = interval_minutes
        self._report = report
        self._day: int | None = None
        self._count = 0
        self._line = 0

    def feed(self, days: np.ndarray, lines: np.ndarray) -> None:
        """Count rows; ``days`` are local dates (days since 1970-01-01), ``lines`` their lines."""
        if len(days) == 0:
            return
        change = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [len(days)]))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            day = int(days[start])
            if day == self._day:
                self._count += end - start
                continue
            self._close()
            self._day, self._count, self._line = day, end - start, int(lines[start])

    def finish(self) -> None:
        """Check the last day."""
        self._close()
        self._day = None

    def _close(self) -> None:
        if self._day is None:
            return
        minutes = self._interval_minutes()
        expected = self._lengths.expected_intervals(self._day, minutes)
        if self._count != expected:
            self._report(
                day_count_problem(
                    line=self._line,
                    label="",
                    day=self._day,
                    found=self._count,
                    expected=expected,
                    interval_minutes=minutes,
                )
            )
