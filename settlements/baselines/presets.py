"""Published baseline methods as presets of :class:`BaselineSpec`.

A program stores a preset name plus overrides (``spec_from_preset``), so every parameter
below can be changed per program, for instance when a tariff revision moves a window.
Weekday and weekend methods are separate presets, as the sources define them; a program
that wants one preset for every event can override ``day_type="same"``.

Where the sources leave a detail open (minimum days, the window of an event-day
adjustment) the value chosen is stated next to the preset.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from settlements.baselines.spec import BaselineSpec

# CAISO Business Practice Manual for Demand Response, section "Customer Load Baseline
# Methodology" (10-in-10 day baseline): the 10 most recent non-event, non-holiday
# weekdays within a 45-day lookback (at least 5), averaged, with a load point adjustment:
# a ratio of actual to baseline load over the three hours before the hour preceding the
# event (hours -4 to -2), capped at +/-20%.
CAISO_10_OF_10 = BaselineSpec(
    pool_days=10,
    select_days=10,
    selection="all",
    day_type="weekday",
    lookback_days=45,
    min_days=5,
    adjustment="multiplicative",
    adjustment_hours=3.0,
    adjustment_gap_hours=1.0,
    adjustment_cap=0.20,
    adjustment_direction="both",
)

# CAISO Business Practice Manual for Demand Response, section "Customer Load Baseline
# Methodology" (weekend/holiday baseline): the 4 most recent weekend days or holidays,
# averaged, with the same +/-20% load point adjustment. Lookback 45 days as for
# weekdays; minimum 2 days is this platform's choice.
CAISO_WEEKEND_4_OF_4 = BaselineSpec(
    pool_days=4,
    select_days=4,
    selection="all",
    day_type="weekend",
    lookback_days=45,
    min_days=2,
    adjustment="multiplicative",
    adjustment_hours=3.0,
    adjustment_gap_hours=1.0,
    adjustment_cap=0.20,
    adjustment_direction="both",
)

# PJM Manual 11 (Energy & Ancillary Services Market Operations), section 10 "Demand
# Resource Participation", Customer Baseline Load: weekday CBL = the highest 4 of the 5
# most recent weekdays within 45 calendar days, skipping event days, holidays and
# low-usage days (event-period usage below 25% of the 5-day average), with the Symmetric
# Additive Adjustment over the 3 hours ending 1 hour before the event start, uncapped.
# Minimum 4 days is this platform's choice.
PJM_HIGH_4_OF_5 = BaselineSpec(
    pool_days=5,
    select_days=4,
    selection="highest",
    day_type="weekday",
    lookback_days=45,
    min_days=4,
    low_usage_fraction=0.25,
    adjustment="additive",
    adjustment_hours=3.0,
    adjustment_gap_hours=1.0,
    adjustment_cap=None,
    adjustment_direction="both",
)

# PJM Manual 11, section 10, Customer Baseline Load: Saturday, Sunday and holiday CBL =
# the highest 2 of the 3 most recent like days within 45 calendar days, with the same
# low-usage rule and Symmetric Additive Adjustment. PJM keeps Saturdays apart from
# Sundays/holidays; here "weekend" pools them (override lookback or exclusions to
# separate them).
PJM_WEEKEND_HIGH_2_OF_3 = BaselineSpec(
    pool_days=3,
    select_days=2,
    selection="highest",
    day_type="weekend",
    lookback_days=45,
    min_days=2,
    low_usage_fraction=0.25,
    adjustment="additive",
    adjustment_hours=3.0,
    adjustment_gap_hours=1.0,
    adjustment_cap=None,
    adjustment_direction="both",
)

# NYISO Emergency Demand Response Program Manual and Installed Capacity Manual
# (Special Case Resources), "Average Day Customer Baseline Load": the 10 most recent
# weekdays within 30 days (at least 5), excluding event days and days whose event-period
# usage is below 25% of the initial 10-day seed average, then the 5 highest; with the
# weather-sensitive adjustment: a ratio of actual to CBL load over the two hours
# beginning four hours before the event (hours -4 to -2), limited to +/-20%.
NYISO_HIGH_5_OF_10 = BaselineSpec(
    pool_days=10,
    select_days=5,
    selection="highest",
    day_type="weekday",
    lookback_days=30,
    min_days=5,
    low_usage_fraction=0.25,
    adjustment="multiplicative",
    adjustment_hours=2.0,
    adjustment_gap_hours=2.0,
    adjustment_cap=0.20,
    adjustment_direction="both",
)

# NYISO Emergency Demand Response Program Manual, "Average Day Customer Baseline Load",
# weekend CBL: the highest 2 of the 3 most recent like weekend days, with the same 25%
# low-usage rule and weather-sensitive adjustment. Lookback 30 days as for weekdays.
NYISO_WEEKEND_HIGH_2_OF_3 = BaselineSpec(
    pool_days=3,
    select_days=2,
    selection="highest",
    day_type="weekend",
    lookback_days=30,
    min_days=2,
    low_usage_fraction=0.25,
    adjustment="multiplicative",
    adjustment_hours=2.0,
    adjustment_gap_hours=2.0,
    adjustment_cap=0.20,
    adjustment_direction="both",
)

# ERCOT Emergency Response Service Technical Requirements & Scope of Work, section
# "Baselines for ERS Loads", and ERCOT's "Default Baseline Methodology" (Middle 8-of-10
# Preceding Like Days, with an event-day adjustment): the 10 most recent like days,
# dropping the highest and the lowest, averaged. The event-day adjustment here is
# additive over the 3 hours ending 1 hour before the event; that window is this
# platform's default, to be checked against the program's current ERCOT documents.
ERCOT_MIDDLE_8_OF_10 = BaselineSpec(
    pool_days=10,
    select_days=8,
    selection="middle",
    day_type="same",
    lookback_days=45,
    min_days=5,
    adjustment="additive",
    adjustment_hours=3.0,
    adjustment_gap_hours=1.0,
    adjustment_cap=None,
    adjustment_direction="both",
)

PRESETS: Mapping[str, BaselineSpec] = MappingProxyType(
    {
        "caiso_10_of_10": CAISO_10_OF_10,
        "caiso_weekend_4_of_4": CAISO_WEEKEND_4_OF_4,
        "pjm_high_4_of_5": PJM_HIGH_4_OF_5,
        "pjm_weekend_high_2_of_3": PJM_WEEKEND_HIGH_2_OF_3,
        "nyiso_high_5_of_10": NYISO_HIGH_5_OF_10,
        "nyiso_weekend_high_2_of_3": NYISO_WEEKEND_HIGH_2_OF_3,
        "ercot_middle_8_of_10": ERCOT_MIDDLE_8_OF_10,
    }
)


def spec_from_preset(name: str, overrides: Mapping[str, Any] | None = None) -> BaselineSpec:
    """The preset ``name`` with ``overrides`` applied (a program's stored method).

    Raises ``ValueError`` for an unknown preset name or override key, and whatever
    :class:`BaselineSpec` raises when the overridden values are incoherent.
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline preset {name!r}; expected one of {', '.join(sorted(PRESETS))}"
        ) from None
    overrides = dict(overrides or {})
    allowed = {field.name for field in dataclasses.fields(BaselineSpec)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(
            f"unknown override(s) for baseline preset {name!r}: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return dataclasses.replace(preset, **overrides)


def nerc_holidays(first_year: int, last_year: int) -> tuple[datetime.date, ...]:
    """The NERC holidays ("Additional Off-Peak Days") of ``first_year`` to ``last_year``.

    The holidays PJM Manual 11 skips in its Customer Baseline Load and the usual US reading
    of "holiday" in a baseline method: New Year's Day (1 January), Memorial Day (the last
    Monday of May), Independence Day (4 July), Labor Day (the first Monday of September),
    Thanksgiving Day (the fourth Thursday of November) and Christmas Day (25 December). A
    fixed date that falls on a Sunday is observed on the Monday after it; one that falls on
    a Saturday stays on the Saturday (no Friday is observed).

    Returns local dates in calendar order, for the ``holidays`` argument of
    :func:`compute_baseline`. Raises ``ValueError`` when ``last_year`` precedes
    ``first_year``.
    """
    if last_year < first_year:
        raise ValueError(f"last_year ({last_year}) is before first_year ({first_year})")
    days: list[datetime.date] = []
    for year in range(first_year, last_year + 1):
        days += [
            _observed(datetime.date(year, 1, 1)),
            _weekday_on_or_before(datetime.date(year, 5, 31), 0),
            _observed(datetime.date(year, 7, 4)),
            _weekday_on_or_after(datetime.date(year, 9, 1), 0),
            _weekday_on_or_after(datetime.date(year, 11, 1), 3) + datetime.timedelta(weeks=3),
            _observed(datetime.date(year, 12, 25)),
        ]
    return tuple(days)


def _observed(day: datetime.date) -> datetime.date:
    return day + datetime.timedelta(days=1) if day.weekday() == 6 else day


def _weekday_on_or_after(day: datetime.date, weekday: int) -> datetime.date:
    return day + datetime.timedelta(days=(weekday - day.weekday()) % 7)


def _weekday_on_or_before(day: datetime.date, weekday: int) -> datetime.date:
    return day - datetime.timedelta(days=(day.weekday() - weekday) % 7)
