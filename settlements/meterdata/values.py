"""Vectorized value checks shared by the CSV formats."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from settlements.meterdata.base import SCOPE_ROW, Problem
from settlements.meterdata.localtime import NS_PER_MINUTE

_NAN_SPELLINGS = {"nan", "+nan", "-nan"}
MAX_INTERVAL_MINUTES = 1440


class ProblemRows:
    """Collects row problems of one chunk; each row gets at most one problem (the first)."""

    def __init__(self, lines: np.ndarray) -> None:
        self.lines = lines
        self.dropped = np.zeros(len(lines), dtype=bool)
        self.problems: list[Problem] = []

    def drop(self, mask: np.ndarray) -> None:
        """Leave rows out without reporting them (blank lines)."""
        self.dropped |= mask

    def flag(self, mask: np.ndarray, code: str, message: Callable[[int], str]) -> None:
        """Report and leave out the rows of ``mask`` not already left out.

        ``message`` receives the row position within the chunk and returns the text.
        """
        new = mask & ~self.dropped
        if not new.any():
            return
        for index in np.flatnonzero(new).tolist():
            self.problems.append(Problem(int(self.lines[index]), code, message(index), SCOPE_ROW))
        self.dropped |= new

    def keep(self) -> np.ndarray:
        """Return the mask of rows still in the chunk."""
        return ~self.dropped


def parse_kwh(column: pd.Series, bad: ProblemRows, *, name: str = "kwh") -> np.ndarray:
    """Return the column as float64; flag empty (``missing_kwh``) and non-numeric values.

    Negative, infinite and NaN numbers pass: the importer decides per meter what to do.
    """
    if column.dtype.kind in "fiu":
        return column.to_numpy(dtype=np.float64)
    text = column.astype(object).to_numpy(dtype=object)
    stripped = np.array([str(v).strip() for v in text], dtype=object)
    numbers = pd.to_numeric(pd.Series(stripped, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64
    )
    unparsed = np.isnan(numbers)
    if unparsed.any():
        spelled_nan = np.array(
            [str(v).lower() in _NAN_SPELLINGS for v in stripped[unparsed]], dtype=bool
        )
        unparsed[np.flatnonzero(unparsed)[spelled_nan]] = False
    empty = stripped == ""
    bad.flag(empty, f"missing_{name}", lambda i: f"{name} is empty")
    bad.flag(
        unparsed & ~empty,
        f"invalid_{name}",
        lambda i: f"{name} {text[i]!r} is not a number",
    )
    return numbers


def parse_interval_minutes(column: pd.Series, bad: ProblemRows) -> np.ndarray:
    """Return interval lengths in minutes as int64; flag non-integers and values out of 1-1440.

    Flagged rows get 0 in the returned array.
    """
    if column.dtype.kind in "iu":
        minutes = column.to_numpy(dtype=np.int64)
        text = minutes.astype(object)
    else:
        text = column.astype(object).to_numpy(dtype=object)
        numbers = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64
        )
        whole = np.isfinite(numbers) & (np.floor(numbers) == numbers)
        minutes = np.where(whole, numbers, 0).astype(np.int64)
    invalid = (minutes <= 0) | (minutes > MAX_INTERVAL_MINUTES)
    bad.flag(
        invalid,
        "invalid_interval_minutes",
        lambda i: f"interval_minutes {text[i]!r} is not a whole number of minutes in 1-1440",
    )
    return np.where(invalid, 0, minutes)


def aligned(start_ns: np.ndarray, minutes: np.ndarray, tz: str | None) -> np.ndarray:
    """Return True where an interval start falls on a multiple of its interval length.

    Lengths that divide 15 minutes are checked against UTC (every zone offset in use is a
    multiple of 15 minutes); longer ones (30, 60, 1440) against the wall clock of ``tz`` when
    given, so that hourly data in a +05:30 zone is aligned on local hours.
    """
    epoch_minutes = start_ns // NS_PER_MINUTE
    safe = np.where(minutes > 0, minutes, 1)
    result = epoch_minutes % safe == 0
    local = (15 % safe != 0) & (minutes > 0)
    if tz is not None and local.any():
        utc = pd.DatetimeIndex(start_ns[local].view("datetime64[ns]")).tz_localize("UTC")
        wall = utc.tz_convert(tz).tz_localize(None).asi8 // NS_PER_MINUTE
        result[local] = wall % safe[local] == 0
    return result


def text_column(raw: pd.DataFrame, name: str) -> np.ndarray | str:
    """Return the text of column ``name`` as an object array, or ``""`` when it is absent."""
    if name not in raw.columns:
        return ""
    return np.asarray(raw[name].astype(object), dtype=object)
