"""Payment rules for demand-response settlements: from measured kW to settlement lines.

A small, pure library (stdlib only: no Django, no I/O, no clock). Settlement runs,
models, pages and exports are built on top of it; it only computes.

How to use it::

    rules = rules_in_effect(program_rule_versions, period_start)
    site = SitePeriod(
        site_key=site.pk,
        committed_kw=Decimal("120"),
        months=(dt.date(2026, 7, 1),),
        events=(
            EventOutcome.from_performance(
                performance, event_key=event.pk, event_date=dt.date(2026, 7, 14),
                committed_kw=Decimal("120"),
            ),
            EventOutcome(
                event_key=other.pk, event_date=dt.date(2026, 7, 21), committed_kw=Decimal("120"),
                reduction_kwh=Decimal("204"), average_reduction_kw=Decimal("102"),
            ),
        ),
    )
    lines = settle_site(site, rules) + [enablement_line(site_key=..., amount=..., ...)]
    total(lines)                                   # $, the sum of the rounded lines
    difference(approved_lines, lines)              # a restatement's lines

Inputs:

- :class:`PaymentRules`: one effective-dated version of a program's rules (rates,
  performance-factor method, limits, event treatments); :func:`rules_in_effect` picks
  the version in effect on a date. ``to_dict`` / ``from_dict`` store it as JSON.
- :class:`EventOutcome`: one site's outcome in one event: per-interval reduction kW
  (with the interval minutes) or the reduction kWh and average kW, the event's committed
  kW, kWh above a firm service level, whether it was a test and whether the site opted
  out. :class:`SitePeriod`: one site's committed kW, the months of the period and its
  events.

Outputs: :class:`LineItem` (kind, site / event key, reference, quantity, unit, rate,
amount, explanation, details). Line builders: :func:`settle_site` (all of them;
:func:`settle_sites` for many sites under the same rules, in one call), or one
kind at a time: :func:`capacity_line` (kind ``capacity``, or ``penalty`` when the factor
is negative), :func:`energy_lines`, :func:`season_line`, :func:`excess_energy_lines`;
for amounts computed elsewhere :func:`enablement_line`, :func:`clawback_line`,
:func:`adjustment_line` (:func:`amount_line`). :func:`total` and :func:`difference`
work on any lines. :func:`assess_event` and :func:`performance_factor` expose the
intermediate steps for review pages.

Units: kW is mean power over an interval; kWh = kW x interval minutes / 60; a capacity
quantity is kW-month (committed kW x months paid) or kW-season; rates are $ per unit.

Precision: inputs become Decimal (floats by their shortest repr, e.g. ``0.1`` ->
``Decimal("0.1")``); every intermediate value (kWh, average kW, performance ratios,
factors, quantities, unrounded amounts) keeps the full precision of the current decimal
context (28 significant digits by default). The only rounding is the amount, to cents
half up, when a :class:`LineItem` is created, so a total is the sum of rounded lines.
Explanations show kW and kWh with three places and ratios with three (six, marked
``≈``, when three are not exact); that is display only.
"""

from settlements.payments.calculate import (
    PerformanceFactor,
    capacity_line,
    energy_lines,
    excess_energy_lines,
    factor_from_ratio,
    performance_factor,
    season_line,
    settle_site,
    settle_sites,
)
from settlements.payments.lines import (
    KINDS,
    LineItem,
    adjustment_line,
    amount_line,
    clawback_line,
    difference,
    enablement_line,
    total,
)
from settlements.payments.outcomes import (
    EventAssessment,
    EventOutcome,
    SitePeriod,
    assess_event,
    assess_events,
)
from settlements.payments.rules import PaymentRules, rules_in_effect

__all__ = [
    "KINDS",
    "EventAssessment",
    "EventOutcome",
    "LineItem",
    "PaymentRules",
    "PerformanceFactor",
    "SitePeriod",
    "adjustment_line",
    "amount_line",
    "assess_event",
    "assess_events",
    "capacity_line",
    "clawback_line",
    "difference",
    "enablement_line",
    "energy_lines",
    "excess_energy_lines",
    "factor_from_ratio",
    "performance_factor",
    "rules_in_effect",
    "season_line",
    "settle_site",
    "settle_sites",
    "total",
]
