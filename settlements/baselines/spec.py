"""Parameters of an "X of Y like days plus an adjustment" baseline."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

Selection = Literal["all", "highest", "middle", "most_recent"]
DayType = Literal["same", "weekday", "weekend", "any"]
Adjustment = Literal["none", "additive", "multiplicative"]
AdjustmentDirection = Literal["both", "up_only"]

SELECTIONS: tuple[str, ...] = ("all", "highest", "middle", "most_recent")
DAY_TYPES: tuple[str, ...] = ("same", "weekday", "weekend", "any")
ADJUSTMENTS: tuple[str, ...] = ("none", "additive", "multiplicative")
ADJUSTMENT_DIRECTIONS: tuple[str, ...] = ("both", "up_only")

_INT_FIELDS = ("pool_days", "select_days", "lookback_days", "min_days")
_FLOAT_FIELDS = ("adjustment_hours", "adjustment_gap_hours")
_OPTIONAL_FLOAT_FIELDS = ("low_usage_fraction", "adjustment_cap")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineSpec:
    """One day-matching baseline method; every published method is a value of this.

    - ``pool_days`` (Y): how many eligible like days form the pool.
    - ``select_days`` (X): how many pool days are averaged.
    - ``selection``: ``"all"`` (every pool day; needs X = Y), ``"highest"`` (the X days
      with the highest event-window mean kW), ``"middle"`` (drop (Y - X) / 2 highest and
      (Y - X) / 2 lowest; needs Y - X even), ``"most_recent"`` (the X most recent).
    - ``day_type``: ``"same"`` (a weekday non-holiday event uses weekday non-holidays; a
      weekend or holiday event uses weekend days and holidays), ``"weekday"`` (Monday to
      Friday, not holidays), ``"weekend"`` (Saturdays, Sundays and holidays), ``"any"``.
    - ``lookback_days``: calendar days searched back from the day before the event.
    - ``min_days``: fewest eligible days that still give a baseline (with a warning).
    - ``low_usage_fraction``: ``None`` or a fraction (0.25): pool days whose event-window
      mean kW is below this fraction of the initial pool's mean are replaced.
    - ``adjustment``: ``"none"``, ``"additive"`` (kW added) or ``"multiplicative"``.
    - ``adjustment_hours``: length of the adjustment window, hours.
    - ``adjustment_gap_hours``: hours between the end of that window and the event start.
    - ``adjustment_cap``: ``None`` or a fraction: additive |delta| <= cap x window mean
      baseline kW; multiplicative factor clipped to [1 - cap, 1 + cap].
    - ``adjustment_direction``: ``"both"`` or ``"up_only"`` (never lowers the baseline).

    Raises ``ValueError`` (``TypeError`` for a wrong type) when the values do not make a
    coherent method.
    """

    pool_days: int = 10
    select_days: int = 10
    selection: Selection = "all"
    day_type: DayType = "same"
    lookback_days: int = 45
    min_days: int = 1
    low_usage_fraction: float | None = None
    adjustment: Adjustment = "none"
    adjustment_hours: float = 0.0
    adjustment_gap_hours: float = 0.0
    adjustment_cap: float | None = None
    adjustment_direction: AdjustmentDirection = "both"

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        # JSON gives 3 for 3.0: store floats so that equal specs compare and hash equal.
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in _OPTIONAL_FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _as_float(name, value))
        self._check_choices()
        self._check_days()
        self._check_adjustment()

    def _check_choices(self) -> None:
        for name, allowed in (
            ("selection", SELECTIONS),
            ("day_type", DAY_TYPES),
            ("adjustment", ADJUSTMENTS),
            ("adjustment_direction", ADJUSTMENT_DIRECTIONS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")

    def _check_days(self) -> None:
        if self.pool_days < 1:
            raise ValueError(f"pool_days must be at least 1, got {self.pool_days}")
        if not 1 <= self.select_days <= self.pool_days:
            raise ValueError(
                f"select_days must be between 1 and pool_days ({self.pool_days}), "
                f"got {self.select_days}"
            )
        if self.selection == "all" and self.select_days != self.pool_days:
            raise ValueError(
                "selection 'all' averages every pool day: select_days must equal pool_days"
            )
        if self.selection == "middle" and (self.pool_days - self.select_days) % 2:
            raise ValueError(
                "selection 'middle' drops as many high days as low days: "
                "pool_days - select_days must be even"
            )
        if self.lookback_days < self.pool_days:
            raise ValueError(
                f"lookback_days ({self.lookback_days}) must be at least "
                f"pool_days ({self.pool_days})"
            )
        if not 1 <= self.min_days <= self.pool_days:
            raise ValueError(
                f"min_days must be between 1 and pool_days ({self.pool_days}), got {self.min_days}"
            )
        if self.low_usage_fraction is not None and not 0 < self.low_usage_fraction < 1:
            raise ValueError(
                f"low_usage_fraction must be between 0 and 1, got {self.low_usage_fraction}"
            )

    def _check_adjustment(self) -> None:
        if self.adjustment_hours < 0:
            raise ValueError(f"adjustment_hours must not be negative, got {self.adjustment_hours}")
        if self.adjustment_gap_hours < 0:
            raise ValueError(
                f"adjustment_gap_hours must not be negative, got {self.adjustment_gap_hours}"
            )
        if self.adjustment != "none" and self.adjustment_hours == 0:
            raise ValueError(f"an {self.adjustment} adjustment needs adjustment_hours > 0")
        if self.adjustment_cap is not None and self.adjustment_cap < 0:
            raise ValueError(f"adjustment_cap must not be negative, got {self.adjustment_cap}")

    @property
    def uses_adjustment(self) -> bool:
        """Whether the method adjusts the baseline with event-day readings."""
        return self.adjustment != "none"

    def to_dict(self) -> dict[str, Any]:
        """Every parameter as a JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineSpec:
        """Build a spec from a complete dict as written by :meth:`to_dict`.

        Raises ``ValueError`` naming unknown or missing keys, so that a stored method is
        never silently completed with defaults.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown baseline parameter(s): {', '.join(unknown)}")
        missing = sorted(names - set(data))
        if missing:
            raise ValueError(f"missing baseline parameter(s): {', '.join(missing)}")
        return cls(**data)


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)
