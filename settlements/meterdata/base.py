"""Shared record types of the meter data parsers: problems, series and the chunk layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Columns of every chunk, in order, whatever the source format.
COLUMNS: tuple[str, ...] = (
    "meter_ref",
    "interval_start",
    "interval_minutes",
    "kwh",
    "quality",
    "direction",
    "line",
)

#: ``Problem.scope`` values.
SCOPE_ROW = "row"  # the row (or one wide-format cell) was left out of the chunks
SCOPE_DAY = "day"  # a local day has the wrong number of intervals; its rows are kept
SCOPE_SERIES = "series"  # a Green Button series was skipped as a whole
SCOPE_FILE = "file"  # the file cannot be read (further); no more rows come

#: Energy flow of a row. CSV formats carry consumption only.
DELIVERED = "delivered"
RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the file that the parser could not turn into a reading.

    ``line`` is the 1-based line of the source file (for Green Button XML, the line of the
    element concerned); ``0`` only when no line applies (an empty file). ``code`` is a short
    machine-readable name listed in the package docstring; ``message`` is for people and names
    the offending value. ``scope`` says what the problem did to the output (see ``SCOPE_*``).
    """

    line: int
    code: str
    message: str
    scope: str = SCOPE_ROW


@dataclass(frozen=True, slots=True)
class Series:
    """One Green Button series: the readings of one (usage point, reading type) pair.

    ``key`` is the value of ``meter_ref`` on the rows of this series. ``usage_point_href`` and
    ``usage_point_title`` identify the usage point (the importer maps either one to a meter).
    ``direction`` is ``"delivered"`` (flowDirection 1), ``"received"`` (19) or another ESPI
    flow name. ``kwh_per_unit`` converts one raw ``value`` to kWh (``10**powerOfTenMultiplier``
    scaled from Wh). ``skipped_reason`` is empty for series whose rows are yielded; otherwise it
    says why the series is not energy in kWh (gas, another unit, cumulative register reads).
    ``readings`` counts the IntervalReading elements found for the series.
    """

    key: str
    usage_point_href: str
    usage_point_title: str
    reading_type_href: str
    direction: str
    uom: str
    power_of_ten_multiplier: int
    interval_seconds: int | None
    service_kind: str
    commodity: str
    kwh_per_unit: float
    skipped_reason: str
    readings: int
    line: int


class UnknownFormatError(ValueError):
    """The first bytes of a file match none of the supported meter data formats."""


def empty_chunk() -> pd.DataFrame:
    """Return a chunk with no rows and the dtypes of ``COLUMNS``."""
    return make_chunk(
        meter_ref=np.array([], dtype=object),
        interval_start_ns=np.array([], dtype=np.int64),
        interval_minutes=np.array([], dtype=np.int64),
        kwh=np.array([], dtype=np.float64),
        quality=np.array([], dtype=object),
        direction=DELIVERED,
        line=np.array([], dtype=np.int64),
    )


def make_chunk(
    *,
    meter_ref: np.ndarray | pd.Series | str,
    interval_start_ns: np.ndarray,
    interval_minutes: np.ndarray | int,
    kwh: np.ndarray,
    quality: np.ndarray | pd.Series | str,
    direction: np.ndarray | str,
    line: np.ndarray,
) -> pd.DataFrame:
    """Build one output chunk from arrays of equal length.

    ``interval_start_ns`` holds UTC epoch nanoseconds; scalars are broadcast. Returns a frame
    with a fresh ``RangeIndex`` and exactly the columns and dtypes of ``COLUMNS``.
    """
    n = len(line)

    def _text(value: np.ndarray | pd.Series | str) -> pd.Series:
        if isinstance(value, str):
            value = np.full(n, value, dtype=object)
        return pd.Series(np.asarray(value, dtype=object), dtype="str", copy=False)

    minutes = (
        np.full(n, interval_minutes, dtype=np.int64)
        if isinstance(interval_minutes, int)
        else np.asarray(interval_minutes, dtype=np.int64)
    )
    if isinstance(direction, str):
        flows = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[direction])
    else:
        flows = pd.Categorical(np.asarray(direction, dtype=object))
    starts = pd.DatetimeIndex(np.asarray(interval_start_ns, dtype="datetime64[ns]")).tz_localize(
        "UTC"
    )
    return pd.DataFrame(
        {
            "meter_ref": _text(meter_ref),
            "interval_start": pd.Series(starts, copy=False),
            "interval_minutes": minutes,
            "kwh": np.asarray(kwh, dtype=np.float64),
            "quality": _text(quality),
            "direction": flows,
            "line": np.asarray(line, dtype=np.int64),
        },
        copy=False,
    )
