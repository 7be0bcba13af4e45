"""Small builders for hand-made meter readings (kWh per interval, tz-aware index)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import pandas as pd

TZ = "America/New_York"


def local(text: str) -> pd.Timestamp:
    """A wall-clock time in the test zone (not for a repeated fall-back label)."""
    return pd.Timestamp(text, tz=TZ)


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def day_index(date: datetime.date, minutes: int = 60) -> pd.DatetimeIndex:
    """Every real interval start of a local day: 23, 24 or 25 hours of them."""
    start = pd.Timestamp(date).tz_localize(TZ)
    end = pd.Timestamp(date + datetime.timedelta(days=1)).tz_localize(TZ)
    return pd.date_range(start, end, freq=f"{minutes}min", inclusive="left")


def constant_days(levels_kw: Mapping[datetime.date, float], minutes: int = 60) -> pd.Series:
    """kWh readings in which each listed day holds a constant kW level all day."""
    parts = [
        pd.Series(kw * minutes / 60, index=day_index(date, minutes), dtype=float)
        for date, kw in levels_kw.items()
    ]
    return pd.concat(parts).sort_index()


def levels_by_day(first: str, last: str, kw: float | None = None) -> dict[datetime.date, float]:
    """Day -> kW for every day from first to last; the day of month unless ``kw`` given."""
    dates = pd.date_range(first, last, freq="D").date
    return {date: float(date.day if kw is None else kw) for date in dates}


def set_kw(readings: pd.Series, at: pd.Timestamp, kw: float, minutes: int = 60) -> None:
    """Set the reading at ``at`` to a kW level (stored as kWh)."""
    readings.loc[at] = kw * minutes / 60
