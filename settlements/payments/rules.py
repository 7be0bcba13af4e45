"""A program's payment rules: one frozen, effective-dated version per change."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

from settlements.payments._numbers import to_decimal, to_optional_decimal

CapacityUnit = Literal["kW-month", "kW-season"]
FactorMethod = Literal["linear", "piecewise", "threshold"]
Interpolation = Literal["linear", "step"]
NegativeReductions = Literal["net", "floor_interval", "floor_event"]
OptedOutEvents = Literal["exclude", "zero_performance", "as_measured"]
TestEvents = Literal["include", "exclude"]

CAPACITY_UNITS: tuple[str, ...] = ("kW-month", "kW-season")
FACTOR_METHODS: tuple[str, ...] = ("linear", "piecewise", "threshold")
INTERPOLATIONS: tuple[str, ...] = ("linear", "step")
NEGATIVE_REDUCTIONS: tuple[str, ...] = ("net", "floor_interval", "floor_event")
OPTED_OUT_EVENTS: tuple[str, ...] = ("exclude", "zero_performance", "as_measured")
TEST_EVENTS: tuple[str, ...] = ("include", "exclude")

_RATES = ("capacity_rate", "energy_rate", "season_rate", "excess_energy_rate")
_LIMITS = (
    "capacity_factor_floor",
    "capacity_factor_cap",
    "energy_floor_per_event",
    "energy_cap_per_event",
    "season_floor",
    "season_cap",
    "excess_charge_cap_per_event",
)
_CHOICES = (
    ("capacity_unit", CAPACITY_UNITS),
    ("factor_method", FACTOR_METHODS),
    ("interpolation", INTERPOLATIONS),
    ("negative_reductions", NEGATIVE_REDUCTIONS),
    ("opted_out_events", OPTED_OUT_EVENTS),
    ("test_events", TEST_EVENTS),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentRules:
    """One version of a program's payment rules, in effect from ``effective_from``.

    Rates (``None`` means the program has no such line; all are >= 0):

    - ``capacity_rate``: $ per kW per ``capacity_unit`` (``"kW-month"`` or
      ``"kW-season"``), paid on the committed kW times the performance factor.
    - ``energy_rate``: $ per kWh reduced during each event.
    - ``season_rate``: $ per kW-season of average event kW reduction over the season's
      events (pay-for-performance).
    - ``excess_energy_rate``: $ per kWh used above the firm service level during events,
      charged (a negative line).

    Performance factor of the capacity payment, from the performance ratio (delivered kW
    / committed kW per event, averaged over the period's counted events; 1 when there are
    none):

    - ``factor_method="linear"``: the ratio, floored at 0 and capped at 1.
    - ``"piecewise"``: ``breakpoints``, (ratio, factor) pairs with strictly increasing
      ratios; factors may be negative (a penalty). With ``interpolation="linear"`` the
      factor is interpolated between neighbouring breakpoints; with ``"step"`` it is the
      factor of the last breakpoint at or below the ratio. Below the first breakpoint the
      first factor applies and above the last the last one (flat on both sides).
    - ``"threshold"``: an event whose ratio is below ``threshold_ratio`` voids the
      capacity payment of its month and its own energy payment; otherwise the factor is 1.

    Limits (``None`` means none): ``capacity_factor_floor`` / ``capacity_factor_cap`` bound
    the factor after the method; ``energy_floor_per_event`` / ``energy_cap_per_event``
    bound each event's energy payment, $; ``season_floor`` / ``season_cap`` bound the
    season payment, $; ``excess_charge_cap_per_event`` bounds each event's excess charge,
    $ (a positive magnitude).

    Event treatments:

    - ``negative_reductions``: ``"net"`` (intervals with load above the baseline offset
      the others within the event), ``"floor_interval"`` (each interval's reduction is
      floored at 0 kW; needs per-interval reductions), ``"floor_event"`` (each event's
      reduction kWh and average kW are floored at 0).
    - ``opted_out_events``: ``"exclude"`` (the event is left out of every line),
      ``"zero_performance"`` (it counts with 0 kW, 0 kWh, ratio 0; an excess charge is
      still as measured), ``"as_measured"`` (it counts like any other event).
    - ``test_events``: ``"include"`` (like any other event) or ``"exclude"`` (left out of
      every line).

    ``version`` is a free label (e.g. ``"2026-v2"``); a settlement run records the rules it
    used (``SettlementRun.rules``).
    Raises ``ValueError`` (``TypeError`` for a wrong type) when the values are not a
    coherent set of rules. Numbers may be given as Decimal, int or str; floats are refused
    here so that a rate is never a binary approximation.
    """

    effective_from: dt.date
    version: str = ""
    capacity_rate: Decimal | None = None
    capacity_unit: CapacityUnit = "kW-month"
    factor_method: FactorMethod = "linear"
    breakpoints: tuple[tuple[Decimal, Decimal], ...] = ()
    interpolation: Interpolation = "linear"
    threshold_ratio: Decimal | None = None
    capacity_factor_floor: Decimal | None = None
    capacity_factor_cap: Decimal | None = None
    energy_rate: Decimal | None = None
    energy_floor_per_event: Decimal | None = None
    energy_cap_per_event: Decimal | None = None
    season_rate: Decimal | None = None
    season_floor: Decimal | None = None
    season_cap: Decimal | None = None
    excess_energy_rate: Decimal | None = None
    excess_charge_cap_per_event: Decimal | None = None
    negative_reductions: NegativeReductions = "net"
    opted_out_events: OptedOutEvents = "as_measured"
    test_events: TestEvents = "include"

    def __post_init__(self) -> None:
        if isinstance(self.effective_from, dt.datetime) or not isinstance(
            self.effective_from, dt.date
        ):
            raise TypeError(f"effective_from must be a date, got {self.effective_from!r}")
        for name in (*_RATES, *_LIMITS, "threshold_ratio"):
            object.__setattr__(self, name, _rule_number(name, getattr(self, name)))
        object.__setattr__(self, "breakpoints", _breakpoints(self.breakpoints))
        for name, allowed in _CHOICES:
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        for name in _RATES:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        self._check_factor_method()
        self._check_limits()

    def _check_factor_method(self) -> None:
        if self.factor_method == "piecewise" and not self.breakpoints:
            raise ValueError("factor_method 'piecewise' needs breakpoints (ratio, factor)")
        if self.factor_method != "piecewise" and self.breakpoints:
            raise ValueError("breakpoints are only used by factor_method 'piecewise'")
        if self.factor_method == "threshold" and self.threshold_ratio is None:
            raise ValueError("factor_method 'threshold' needs threshold_ratio")
        if self.factor_method != "threshold" and self.threshold_ratio is not None:
            raise ValueError("threshold_ratio is only used by factor_method 'threshold'")
        if self.threshold_ratio is not None and self.threshold_ratio < 0:
            raise ValueError(f"threshold_ratio must not be negative, got {self.threshold_ratio}")

    def _check_limits(self) -> None:
        for floor_name, cap_name in (
            ("capacity_factor_floor", "capacity_factor_cap"),
            ("energy_floor_per_event", "energy_cap_per_event"),
            ("season_floor", "season_cap"),
        ):
            floor, cap = getattr(self, floor_name), getattr(self, cap_name)
            if floor is not None and cap is not None and floor > cap:
                raise ValueError(f"{floor_name} ({floor}) is above {cap_name} ({cap})")
        cap = self.excess_charge_cap_per_event
        if cap is not None and cap < 0:
            raise ValueError(f"excess_charge_cap_per_event must not be negative, got {cap}")

    @property
    def paid_per_season(self) -> bool:
        """Whether the rules pay by the season: capacity in $/kW-season, or a season
        pay-for-performance rate. Such a program is settled with one season run; a month
        run would pay a whole season's rate for one month, and a season payment on that
        month's events alone."""
        return (
            self.capacity_rate is not None and self.capacity_unit == "kW-season"
        ) or self.season_rate is not None

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dict: Decimals as strings, the date in ISO form."""
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif field.name == "breakpoints":
                value = [[str(ratio), str(factor)] for ratio, factor in value]
            elif field.name == "effective_from":
                value = value.isoformat()
            data[field.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentRules:
        """Rules from a dict as written by :meth:`to_dict` (missing keys take defaults).

        Raises ``ValueError`` naming unknown keys, so that a misspelt setting is never
        silently ignored.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown payment rule setting(s): {', '.join(unknown)}")
        values = dict(data)
        if isinstance(values.get("effective_from"), str):
            values["effective_from"] = dt.date.fromisoformat(values["effective_from"])
        if "breakpoints" in values:
            values["breakpoints"] = tuple(tuple(pair) for pair in values["breakpoints"])
        return cls(**values)


def rules_in_effect(versions: Iterable[PaymentRules], on: dt.date) -> PaymentRules:
    """The version with the latest ``effective_from`` on or before ``on``.

    A settlement period uses the rules in effect on its first day. Raises ``LookupError``
    when no version is in effect yet and ``ValueError`` when two versions share an
    ``effective_from`` (which one applies would be ambiguous).
    """
    by_date: dict[dt.date, PaymentRules] = {}
    for rules in versions:
        if rules.effective_from in by_date:
            raise ValueError(f"two payment rule versions take effect on {rules.effective_from}")
        by_date[rules.effective_from] = rules
    in_effect = [day for day in by_date if day <= on]
    if not in_effect:
        raise LookupError(f"no payment rules in effect on {on}")
    return by_date[max(in_effect)]


def _rule_number(name: str, value: object) -> Decimal | None:
    if isinstance(value, float):
        raise TypeError(f"{name} must be a Decimal, int or str, not a float ({value!r})")
    return to_optional_decimal(name, value)


def _breakpoints(pairs: object) -> tuple[tuple[Decimal, Decimal], ...]:
    if not isinstance(pairs, Iterable) or isinstance(pairs, str):
        raise TypeError(f"breakpoints must be (ratio, factor) pairs, got {pairs!r}")
    result: list[tuple[Decimal, Decimal]] = []
    for pair in pairs:
        if not isinstance(pair, Iterable) or isinstance(pair, str) or len(tuple(pair)) != 2:
            raise TypeError(f"each breakpoint must be a (ratio, factor) pair, got {pair!r}")
        ratio, factor = tuple(pair)
        result.append(
            (
                to_decimal("breakpoint ratio", _no_float(ratio)),
                to_decimal("factor", _no_float(factor)),
            )
        )
    for (low, _), (high, _) in zip(result, result[1:], strict=False):
        if high <= low:
            raise ValueError("breakpoint ratios must be strictly increasing")
    return tuple(result)


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise TypeError(f"breakpoints must be Decimal, int or str, not a float ({value!r})")
    return value
