"""What happened at one site in one event, and how the rules count it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from math import isfinite
from typing import Any, Literal

from settlements.payments._frozen import unchecked
from settlements.payments._numbers import to_decimal, to_reading
from settlements.payments.rules import PaymentRules

Key = str | int
Treatment = Literal["counted", "zero_performance", "excluded"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventOutcome:
    """One site's measured outcome in one event.

    - ``event_key``: the caller's key for the event (opaque, copied onto lines).
    - ``event_date``: the event's local date; it places the event in a month.
    - ``committed_kw``: kW committed for this event (> 0); the ratio's denominator.
    - The reduction, given one of two ways:

      - ``reduction_kw``: mean kW reduction per interval (baseline - actual, negative where
        load rose), Decimals or floats, ``None``/NaN for a missing interval, with
        ``interval_minutes``; or
      - ``reduction_kwh`` and ``average_reduction_kw`` already summed by the caller (the
        ``"floor_interval"`` treatment cannot be applied to these).

    - ``excess_kwh``: kWh used above the firm service level during the event (>= 0), for
      firm-service-level programs; ``None`` otherwise.
    - ``is_test``, ``opted_out``: how the program's rules count the event.

    Floats become Decimals by their shortest repr. Raises ``ValueError`` (``TypeError``)
    for an incoherent outcome.
    """

    event_key: Key
    event_date: dt.date
    committed_kw: Decimal
    reduction_kw: tuple[Decimal | None, ...] | None = None
    interval_minutes: int | None = None
    reduction_kwh: Decimal | None = None
    average_reduction_kw: Decimal | None = None
    excess_kwh: Decimal | None = None
    is_test: bool = False
    opted_out: bool = False

    def __post_init__(self) -> None:
        event_date = self.event_date
        if type(event_date) is not dt.date and (
            isinstance(event_date, dt.datetime) or not isinstance(event_date, dt.date)
        ):
            raise TypeError(f"event_date must be a date, got {event_date!r}")
        setter = object.__setattr__
        committed = self.committed_kw
        if type(committed) is not Decimal or not committed.is_finite():
            committed = to_decimal("committed_kw", committed)
            setter(self, "committed_kw", committed)
        if committed <= 0:
            raise ValueError(f"committed_kw must be positive, got {committed}")
        # None and finite Decimals stay as they are; floats (as performance rows store
        # them) by their shortest repr; the rest through to_decimal. Written out: a season
        # run checks ~10,000 outcomes.
        kwh, average = self.reduction_kwh, self.average_reduction_kw
        if kwh is not None and (type(kwh) is not Decimal or not kwh.is_finite()):
            kwh = _finite_decimal("reduction_kwh", kwh)
            setter(self, "reduction_kwh", kwh)
        if average is not None and (type(average) is not Decimal or not average.is_finite()):
            average = _finite_decimal("average_reduction_kw", average)
            setter(self, "average_reduction_kw", average)
        excess = self.excess_kwh
        if excess is not None:
            if type(excess) is not Decimal or not excess.is_finite():
                excess = to_decimal("excess_kwh", excess)
                setter(self, "excess_kwh", excess)
            if excess < 0:
                raise ValueError(f"excess_kwh must not be negative, got {excess}")
        if self.reduction_kw is not None:
            if kwh is not None or average is not None:
                raise ValueError(
                    "give either reduction_kw per interval or reduction_kwh and "
                    "average_reduction_kw, not both"
                )
            minutes = self.interval_minutes
            if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
                raise ValueError(
                    f"reduction_kw per interval needs interval_minutes > 0, got {minutes!r}"
                )
            readings = tuple(to_reading("reduction_kw", value) for value in self.reduction_kw)
            object.__setattr__(self, "reduction_kw", readings)
        elif kwh is None or average is None:
            raise ValueError(
                "give reduction_kw per interval (with interval_minutes) or both "
                "reduction_kwh and average_reduction_kw"
            )

    @classmethod
    def from_totals(
        cls,
        event_key: Key,
        event_date: dt.date,
        committed_kw: Decimal,
        reduction_kwh: Decimal | float,
        average_reduction_kw: Decimal | float,
        *,
        is_test: bool = False,
        opted_out: bool = False,
    ) -> EventOutcome:
        """An outcome given as totals (``reduction_kwh`` and ``average_reduction_kw``, floats
        as performance rows store them, or Decimals), the same as ``EventOutcome(...)`` with
        those fields, made with fewer steps: a season run makes ~10,000.

        ``committed_kw`` must be a positive finite Decimal (the caller has checked it: it
        is not checked again); ``event_date`` a date. Raises ``ValueError`` for a
        reduction that is not finite, as ``__init__`` does.
        """
        # Finite floats by their shortest repr, written out (the rule of _finite_decimal).
        if type(reduction_kwh) is float and isfinite(reduction_kwh):
            kwh = Decimal(repr(reduction_kwh))
        else:
            kwh = _finite_decimal("reduction_kwh", reduction_kwh)
        if type(average_reduction_kw) is float and isfinite(average_reduction_kw):
            average = Decimal(repr(average_reduction_kw))
        else:
            average = _finite_decimal("average_reduction_kw", average_reduction_kw)
        return unchecked(
            cls,
            {
                "event_key": event_key,
                "event_date": event_date,
                "committed_kw": committed_kw,
                "reduction_kw": None,
                "interval_minutes": None,
                "reduction_kwh": kwh,
                "average_reduction_kw": average,
                "excess_kwh": None,
                "is_test": is_test,
                "opted_out": opted_out,
            },
        )

    @classmethod
    def from_performance(
        cls,
        performance: Any,
        *,
        event_key: Key,
        event_date: dt.date,
        committed_kw: Decimal,
        excess_kwh: Decimal | float | None = None,
        is_test: bool = False,
        opted_out: bool = False,
    ) -> EventOutcome:
        """An outcome from a baselines ``PerformanceResult`` (its per-interval reduction).

        Reads only ``performance.reduction_kw`` (NaN for missing intervals) and
        ``performance.interval_minutes``, so this package needs no pandas import.
        """
        return cls(
            event_key=event_key,
            event_date=event_date,
            committed_kw=committed_kw,
            reduction_kw=tuple(performance.reduction_kw.tolist()),
            interval_minutes=int(performance.interval_minutes),
            excess_kwh=excess_kwh,  # type: ignore[arg-type]
            is_test=is_test,
            opted_out=opted_out,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SitePeriod:
    """One site's settlement period.

    - ``site_key``: the caller's key for the site (opaque, copied onto lines).
    - ``committed_kw``: kW committed for the period (> 0); for a commitment that changed
      within the period pass its time-weighted mean.
    - ``months``: the months of the period, any day in each (normalised to the 1st); the
      number of kW-months and the months a threshold failure can void. A season-based
      program (``kW-season`` capacity or a season rate) is settled with the whole season.
    - ``events``: the site's event outcomes in the period; each event's date must fall
      in one of ``months``.
    """

    site_key: Key
    committed_kw: Decimal
    months: tuple[dt.date, ...]
    events: tuple[EventOutcome, ...] = ()

    def __post_init__(self) -> None:
        setter = object.__setattr__
        committed = self.committed_kw
        if type(committed) is not Decimal or not committed.is_finite():
            committed = to_decimal("committed_kw", committed)
            setter(self, "committed_kw", committed)
        if committed <= 0:
            raise ValueError(f"committed_kw must be positive, got {committed}")
        months = tuple(_first_of_month(day) for day in self.months)
        if not months:
            raise ValueError("a settlement period has at least one month")
        spans = {(month.year, month.month) for month in months}
        if len(spans) != len(months):
            raise ValueError("a month is listed twice")
        setter(self, "months", tuple(sorted(months)))
        events = tuple(self.events)
        if len({event.event_key for event in events}) != len(events):
            raise ValueError("an event is listed twice for the site")
        for event in events:
            day = event.event_date
            if (day.year, day.month) not in spans:
                raise ValueError(f"event {event.event_key} on {day} is outside the period")
        setter(self, "events", events)


@dataclasses.dataclass(frozen=True)
class EventAssessment:
    """How one event counts under the rules, before any money.

    - ``treatment``: ``"counted"`` (as measured), ``"zero_performance"`` (an opt-out
      counted as 0 kW) or ``"excluded"`` (left out of every line).
    - ``reduction_kwh``: kWh reduced after the negative-reduction treatment (0 unless
      counted).
    - ``average_kw``: mean kW reduction over intervals with data, after the treatment
      (0 unless counted).
    - ``performance_ratio``: ``average_kw / committed_kw``, full precision (0 unless
      counted).
    - ``note``: why the event is excluded or zeroed, or how negatives were treated.
    - ``intervals`` / ``missing_intervals`` / ``floored_intervals``: counts (0 for totals).
    """

    outcome: EventOutcome
    treatment: Treatment
    reduction_kwh: Decimal
    average_kw: Decimal
    performance_ratio: Decimal
    note: str
    intervals: int
    missing_intervals: int
    floored_intervals: int

    @property
    def counted(self) -> bool:
        """Whether the event enters the performance ratio and the energy payment."""
        return self.treatment != "excluded"


def assess_event(outcome: EventOutcome, rules: PaymentRules) -> EventAssessment:
    """Apply the rules' test-event, opt-out and negative-reduction treatments to one event.

    kWh = sum over intervals with data of kW x minutes / 60; average kW = their mean (0 kW
    when no interval has data). Full Decimal precision, nothing rounded. Raises
    ``ValueError`` when ``"floor_interval"`` meets an outcome given only as totals.
    """
    zero = Decimal(0)
    if outcome.reduction_kw is None:
        intervals = missing = 0
        if not outcome.is_test and not outcome.opted_out:
            # Most events: totals, measured as they are (the common case, kept short).
            kwh, average, note, floored = _treated_reduction(outcome, rules)
            return _assessment(
                outcome, "counted", kwh, average, average / outcome.committed_kw, note, 0, 0, 0
            )
    else:
        intervals = len(outcome.reduction_kw)
        missing = sum(1 for kw in outcome.reduction_kw if kw is None)
    unmeasured = (zero, zero, zero)
    if outcome.is_test and rules.test_events == "exclude":
        note = "test event, excluded by the program's rules"
        return EventAssessment(outcome, "excluded", *unmeasured, note, intervals, missing, 0)
    if outcome.opted_out and rules.opted_out_events == "exclude":
        note = "opted out, excluded by the program's rules"
        return EventAssessment(outcome, "excluded", *unmeasured, note, intervals, missing, 0)
    if outcome.opted_out and rules.opted_out_events == "zero_performance":
        note = "opted out, counted as 0 kW by the program's rules"
        return EventAssessment(
            outcome, "zero_performance", *unmeasured, note, intervals, missing, 0
        )
    kwh, average, note, floored = _treated_reduction(outcome, rules)
    ratio = average / outcome.committed_kw
    return EventAssessment(
        outcome, "counted", kwh, average, ratio, note, intervals, missing, floored
    )


def _assessment(
    outcome: EventOutcome,
    treatment: Treatment,
    reduction_kwh: Decimal,
    average_kw: Decimal,
    performance_ratio: Decimal,
    note: str,
    intervals: int,
    missing_intervals: int,
    floored_intervals: int,
) -> EventAssessment:
    """``EventAssessment(...)`` without the frozen dataclass's one ``__setattr__`` per
    field: a season run assesses ~10,000 events."""
    return unchecked(
        EventAssessment,
        {
            "outcome": outcome,
            "treatment": treatment,
            "reduction_kwh": reduction_kwh,
            "average_kw": average_kw,
            "performance_ratio": performance_ratio,
            "note": note,
            "intervals": intervals,
            "missing_intervals": missing_intervals,
            "floored_intervals": floored_intervals,
        },
    )


def assess_events(events: Iterable[EventOutcome], rules: PaymentRules) -> list[EventAssessment]:
    """:func:`assess_event` for each event, in the given order."""
    return [assess_event(event, rules) for event in events]


def _treated_reduction(
    outcome: EventOutcome, rules: PaymentRules
) -> tuple[Decimal, Decimal, str, int]:
    treatment = rules.negative_reductions
    zero = Decimal(0)
    if outcome.reduction_kw is None:
        if treatment == "floor_interval":
            raise ValueError(
                f"event {outcome.event_key}: negative_reductions 'floor_interval' needs "
                "per-interval reductions, not totals"
            )
        kwh, average = outcome.reduction_kwh, outcome.average_reduction_kw
        assert kwh is not None and average is not None
        floored = 0
        note = ""
    else:
        values: Sequence[Decimal] = [kw for kw in outcome.reduction_kw if kw is not None]
        floored = sum(1 for kw in values if kw < 0) if treatment == "floor_interval" else 0
        if treatment == "floor_interval":
            values = [max(kw, zero) for kw in values]
        minutes = outcome.interval_minutes
        assert minutes is not None
        total_kw = sum(values, zero)
        kwh = total_kw * minutes / 60
        average = total_kw / len(values) if values else zero
        note = f"{floored} negative interval(s) floored at 0 kW" if floored else ""
    if treatment == "floor_event" and (kwh < 0 or average < 0):
        note = "net reduction below zero, floored at 0"
        kwh, average = max(kwh, zero), max(average, zero)
    return kwh, average, note, floored


def _finite_decimal(name: str, value: object) -> Decimal:
    """A finite float by its shortest repr (``to_decimal``'s rule, without its detours);
    anything else through ``to_decimal``."""
    if type(value) is float and math.isfinite(value):
        return Decimal(repr(value))
    return to_decimal(name, value)


def _first_of_month(day: object) -> dt.date:
    if type(day) is dt.date:
        return day.replace(day=1)
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"months must be dates, got {day!r}")
    return day.replace(day=1)
